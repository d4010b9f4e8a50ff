"""Evaluate a trained run: accuracy, per-class precision/recall/F1, confusion matrix (DCGAN: scores).

Usage:
    python apps/evaluate.py --run saved_models/digits
    python apps/evaluate.py --run saved_models/bees --data path/to/other/bees_and_ants
    python apps/evaluate.py --run saved_models/bees --data path/to/new_photos --all

Writes RUN_DIR/evaluation.json and confusion_matrix.png (with --data:
evaluation_other_data.json and confusion_matrix_other_data.png). --data scores the source's
test split (its test/ or val/ folder, else the run's seeded share of it); --all scores every
example it has, for a folder or file of new labelled data. For a DCGAN run it recomputes
the classifier score and the Frechet distance of 2,000 samples from fixed latent vectors.
"""

import sys

import bigmodels
from bigmodels.cli import ArgumentParser, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder written by apps/train.py")
    parser.add_argument("--data", default=None, help="evaluate on this source's test split instead")
    parser.add_argument(
        "--all", action="store_true", help="score every example of --data, not only its test split"
    )
    return parser.parse_args(argv)


def main(args) -> int:
    report = bigmodels.evaluate_run(args.run, args.data, all_examples=args.all)
    task = bigmodels.task_of(bigmodels.read_run(args.run)[1]["model"])
    for line in task.evaluation_lines(report):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
