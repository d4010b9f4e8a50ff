"""Quantization-aware training of a trained run into a new run folder, then its full-int8 export.

Usage:
    python apps/qat.py --run saved_models/mnist --out saved_models/mnist_qat
    python apps/qat.py --run saved_models/mnist_80 --epochs 3   # pruned: zeros stay zero
    python apps/qat.py --run saved_models/mnist_80_c16          # clustered: shared values kept

Fine-tunes the run's model with fake quantization (per-channel int8 kernels, int8 activations
with learned ranges, batch norm folded, ReLU fused, as the TFLite converter will do; for the text
models and the DCGAN's generator, kernels, lookup tables and every layer's output) and writes
OUT (default RUN_qat) as an ordinary run folder, then OUT/export/ with model_int8.tflite, whose
scales are the learned ranges, verified on ai-edge-litert like every file.
"""

import sys

import bigmodels
from bigmodels.cli import ArgumentParser, add_export_flags, check_export_flags, export_and_report, run_app

QUALITY = (("test_accuracy", "test accuracy"), ("classifier_score", "classifier score"))


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder written by apps/train.py (or prune/cluster)")
    parser.add_argument("--out", default=None, help="quantization-aware run folder (default: RUN_qat)")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    parser.add_argument(
        "--learning-rate",
        dest="learning_rate",
        type=float,
        default=None,
        help="peak learning rate (default: a hundredth of the run's; a clustered run's own)",
    )
    parser.add_argument("--overwrite", action="store_true")
    add_export_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    check_export_flags(args, qat="alone")
    out = args.out or f"{args.run.rstrip('/')}_qat"
    run_dir, metrics = bigmodels.qat_run(
        args.run,
        out,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        overwrite=args.overwrite,
        verbose=2,
    )
    quality = [(name, metrics[key]) for key, name in QUALITY if key in metrics]
    print("quantization-aware Keras model: " + ", ".join(f"{name} {value:.4f}" for name, value in quality))
    return export_and_report(run_dir, args, "quantization-aware")


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
