"""Train a registered model on a data source into a run folder.

Usage:
    python apps/train.py --model cnn_classifier --data digits --out saved_models/digits --epochs 20
    python apps/train.py --data ../shared/data/hymenoptera --out saved_models/bees --width-multiplier 0.5

Writes RUN_DIR/model.keras, config.json, metrics.json, history.csv, logs/ (TensorBoard),
training_curves.png, evaluation.json and confusion_matrix.png.
"""

import sys

from bigmodels.cli import ArgumentParser, add_training_flags, run_app, train_from_args


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_training_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    run_dir, metrics = train_from_args(args)
    print(
        f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['num_test_examples']} examples "
        f"({metrics['num_skipped_files']} file(s) skipped); run folder: {run_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
