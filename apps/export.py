"""Export a run to SavedModel and TFLite, verify each file on ai-edge-litert, gate on parity.

Usage:
    python apps/export.py --run saved_models/digits --quantization float32,dynamic,float16,int8

Writes RUN_DIR/export/ with saved_model/, model_<mode>.tflite and report.json. Exits 1 when an
artifact's test accuracy falls more than --max-accuracy-drop points below the Keras model.
"""

import sys

from bigmodels.cli import EXIT_PARITY_FAILED, ArgumentParser, print_export_table, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder written by apps/train.py")
    parser.add_argument(
        "--quantization",
        default=None,
        help="comma-separated TFLite modes: float32, dynamic, float16, int8, int16x8 "
        "(default: the first four for images, all five for text)",
    )
    parser.add_argument(
        "--max-accuracy-drop",
        dest="max_accuracy_drop",
        type=float,
        default=1.0,
        help="parity gate in percentage points below the Keras accuracy",
    )
    parser.add_argument(
        "--max-pixel-difference",
        dest="max_pixel_difference",
        type=float,
        default=8.0,
        help="DCGAN parity gate: mean absolute pixel difference from Keras (0-255)",
    )
    parser.add_argument(
        "--bundle-artifact",
        dest="bundle_artifact",
        default=None,
        help="TFLite file to ship in export/bundle (default: the smallest within the parity gate)",
    )
    return parser.parse_args(argv)


def main(args) -> int:
    from bigmodels.export import export_run, parse_quantization

    report = export_run(
        args.run,
        quantization=parse_quantization(args.quantization) if args.quantization else None,
        max_accuracy_drop=args.max_accuracy_drop,
        max_pixel_difference=args.max_pixel_difference,
        bundle_artifact=args.bundle_artifact,
    )
    print_export_table(report)
    print(f"report: {args.run}/export/report.json")
    return 0 if report["parity_gate"]["passed"] else EXIT_PARITY_FAILED


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
