"""What every app shares: quiet TensorFlow logs, one-line errors with exit code 2."""

import argparse
import os
import sys

EXIT_BAD_INPUT = 2
EXIT_PARITY_FAILED = 1  # export and pipeline: an artifact fell below Keras by more than allowed

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) would bury the one line a
# user needs; real failures still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a single-line error (no usage dump) and exit code 2."""

    def error(self, message: str):
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with file descriptor 2 muted for the duration.

    TensorFlow's C++ start-up lines (oneDNN, missing CUDA) reach stderr before its logging is
    configured, so no environment variable silences them, and they would bury the one line a
    user needs. An import error still raises (and is shown) as usual.
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def run_app(main, parse_args, argv=None) -> int:
    """Runs ``main(parse_args(argv))``; bad input becomes one stderr line and exit code 2."""
    args = parse_args(argv)
    import_tensorflow_quietly()
    try:
        return int(main(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def add_training_flags(parser, *, out_default: str | None = None) -> None:
    """The flags of apps/train.py, shared by apps/pipeline.py so both accept the same options."""
    parser.add_argument("--model", default="cnn_classifier", help="registered model name")
    parser.add_argument(
        "--data",
        default=None,
        help="tfds name, image folder, IDX folder, or 'digits' (embedded, the default)",
    )
    parser.add_argument(
        "--out", required=out_default is None, default=out_default, help="run folder to create"
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=3e-3)
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    parser.add_argument(
        "--augmentation", default=None, help="none, shift or shift_flip (default: chosen from the data)"
    )
    parser.add_argument(
        "--image-size",
        dest="image_size",
        type=int,
        nargs=2,
        default=None,
        metavar=("HEIGHT", "WIDTH"),
        help="size photos are resized to when loading",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    group = parser.add_argument_group("model arguments (cnn_classifier)")
    group.add_argument("--variant", default="auto", help="compact, mobile, or auto (chosen from the data)")
    group.add_argument("--width-multiplier", dest="width_multiplier", type=float, default=None)
    group.add_argument(
        "--resolution", type=int, default=None, help="resize inside the model to this square size"
    )
    group.add_argument("--dropout", type=float, default=None)


def train_from_args(args, *, verbose: int = 1):
    """Calls ``train_run`` with the flags of ``add_training_flags``; returns (run_dir, metrics)."""
    from bigmodels.runs import train_run

    model_args = {
        "variant": args.variant,
        "width_multiplier": args.width_multiplier,
        "resolution": args.resolution,
        "dropout": args.dropout,
    }
    return train_run(
        args.model,
        args.data,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        augmentation=args.augmentation,
        image_size=args.image_size,
        model_args=model_args,
        overwrite=args.overwrite,
        verbose=verbose,
    )


def print_export_table(report: dict) -> None:
    """The short per-artifact table the export and pipeline apps print."""
    print(f"keras accuracy {report['keras_accuracy']:.4f} on {report['num_test_examples']} test examples")
    print(f"{'artifact':<26}{'accuracy':>9}{'agree':>8}{'size KB':>9}{'gzip KB':>9}{'ms/ex':>8}")
    for artifact in report["artifacts"]:
        print(
            f"{artifact['file']:<26}{artifact['accuracy']:>9.4f}{artifact['agreement']:>8.4f}"
            f"{artifact['size_bytes'] / 1024:>9.1f}{artifact['gzip_bytes'] / 1024:>9.1f}"
            f"{artifact['latency_ms']:>8.3f}"
        )
    gate = report["parity_gate"]
    for failure in gate["failures"]:
        print(
            f"error: parity gate failed: {failure['file']} is {failure['drop_points']:.2f} points "
            f"below Keras (allowed {gate['max_accuracy_drop_points']})",
            file=sys.stderr,
        )
