"""Train a registered model on a data source into a run folder.

Usage:
    python apps/train.py --model cnn_classifier --data digits --out saved_models/digits --epochs 20
    python apps/train.py --data ../shared/data/hymenoptera --out saved_models/bees --width-multiplier 0.5
    python apps/train.py --data photos/ --backbone mobilenet_v3_small_100_imagenet --out runs/photos
    python apps/train.py --data reviews.csv --text-column title body --label-column stars --out runs/rv
    python apps/train.py --model auto --data news.tsv --text-column 0 --label-column 1 --out runs/news
    python apps/train.py --model dcgan --data ../shared/data/mnist --out saved_models/gan --epochs 20

Writes RUN_DIR/model.keras, config.json, metrics.json, history.csv, logs/ (TensorBoard),
training_curves.png, evaluation.json and confusion_matrix.png; text runs add vocabulary.txt and
tokenizer.json, DCGAN runs samples/, score_history.json and score_classifier/.
"""

import sys

import bigmodels
from bigmodels.cli import ArgumentParser, add_training_flags, run_app, train_from_args


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_training_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    run_dir, metrics = train_from_args(args)
    task = bigmodels.task_of(metrics["model"])  # not read from run_dir: a non-chief worker has none
    print(f"{task.training_summary(metrics)}; run folder: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
