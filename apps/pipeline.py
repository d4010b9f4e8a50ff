"""The main job: train, export every TFLite mode, verify on ai-edge-litert, print a report.

Usage:
    python apps/pipeline.py                      # embedded digits, offline, into saved_models/demo
    python apps/pipeline.py --data ../shared/data/mnist --out saved_models/mnist --epochs 12

Exits 1 when the parity gate fails (an artifact more than --max-accuracy-drop points below Keras).
"""

import sys

from bigmodels.cli import (
    EXIT_PARITY_FAILED,
    ArgumentParser,
    add_training_flags,
    print_export_table,
    run_app,
    train_from_args,
)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_training_flags(parser, out_default="saved_models/demo")
    parser.add_argument(
        "--quantization", default=None, help="TFLite modes (default: 4 for images, all 5 for text)"
    )
    parser.add_argument("--max-accuracy-drop", dest="max_accuracy_drop", type=float, default=1.0)
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

    # Bad flags fail before training starts; None lets the export choose the family's modes.
    modes = parse_quantization(args.quantization) if args.quantization else None
    run_dir, metrics = train_from_args(args, verbose=2)
    report = export_run(
        run_dir,
        quantization=modes,
        max_accuracy_drop=args.max_accuracy_drop,
        max_pixel_difference=args.max_pixel_difference,
        bundle_artifact=args.bundle_artifact,
    )
    print(
        f"\ntrained {report['model']} on {metrics['data_source']}: {metrics['counts']} examples, "
        f"{metrics['epochs_trained']} epochs, {metrics['training_seconds']:.0f} s"
    )
    print_export_table(report)
    print(f"run folder: {run_dir} (export report: {run_dir}/export/report.json)")
    return 0 if report["parity_gate"]["passed"] else EXIT_PARITY_FAILED


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
