"""Train a registered model on a data source into a run folder.

Usage:
    python apps/train.py --model cnn_classifier --data digits --out saved_models/digits --epochs 20
    python apps/train.py --model cnn_classifier --data ../shared/data/hymenoptera --out saved_models/bees

Writes RUN_DIR/model.keras, config.json, metrics.json, history.csv, logs/ (TensorBoard),
training_curves.png, evaluation.json and confusion_matrix.png.
"""

import sys

from bigmodels.cli import ArgumentParser, add_model_flags, model_args_from, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn_classifier", help="registered model name")
    parser.add_argument(
        "--data",
        default=None,
        help="tfds name, image folder, IDX folder, or 'digits' (embedded, the default)",
    )
    parser.add_argument("--out", required=True, help="run folder to create")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=3e-3)
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    parser.add_argument(
        "--augmentation", default=None, help="none, shift or shift_flip (default: from the data)"
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
    add_model_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    from bigmodels.runs import train_run

    run_dir, metrics = train_run(
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
        model_args=model_args_from(args),
        overwrite=args.overwrite,
    )
    print(
        f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['num_test_examples']} examples "
        f"({metrics['num_skipped_files']} file(s) skipped); run folder: {run_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
