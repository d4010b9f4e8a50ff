"""Export a run to SavedModel and TFLite, verify each file on ai-edge-litert, gate on parity.

Usage:
    python apps/export.py --run saved_models/digits --quantization float32,dynamic,float16,int8

Writes RUN_DIR/export/ with saved_model/, model_<mode>.tflite and report.json. Exits 1 when an
artifact's test accuracy falls more than --max-accuracy-drop points below the Keras model.
"""

import sys

from bigmodels.cli import (
    EXIT_PARITY_FAILED,
    ArgumentParser,
    add_export_flags,
    export_from_args,
    print_export_table,
    run_app,
)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder written by apps/train.py")
    add_export_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    report = export_from_args(args.run, args)
    print_export_table(report)
    print(f"report: {args.run}/export/report.json")
    return 0 if report["parity_gate"]["passed"] else EXIT_PARITY_FAILED


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
