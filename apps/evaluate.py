"""Evaluate a run or a bundle: accuracy, per-class precision/recall/F1, confusion matrix (DCGAN: scores).

Usage:
    python apps/evaluate.py --run saved_models/digits
    python apps/evaluate.py --run saved_models/bees --data path/to/other/bees_and_ants
    python apps/evaluate.py --run saved_models/bees --data path/to/new_photos --all
    python apps/evaluate.py --run runs/reviews --data new.csv --all --text-column 1 --label-column 0
    python apps/evaluate.py --bundle saved_models/cifar10_tiny --data path/to/cifar10/test --all
    python apps/evaluate.py --bundle saved_models/sst2_text --data reviews.csv --all --out reports/sst2

Writes RUN_DIR/evaluation.json and confusion_matrix.png (with --data:
evaluation_other_data.json and confusion_matrix_other_data.png). --data scores the source's
test split (its test/ or val/ folder, else the run's seeded share of it); --all scores every
example it has, for a folder or file of new labelled data. For a DCGAN run it recomputes
the classifier score and the Frechet distance of 2,000 samples from fixed latent vectors.

--bundle scores the bundle's TFLite file (the shipped int8 file, say) as a device runs it, on
--data's own test split (a test/ or val/ folder, MNIST's t10k files, CIFAR's test batch, a tfds
test split) or, with --all, every example; it writes nothing into the bundle, and --out FOLDER
keeps evaluation.json and confusion_matrix.png.
"""

import sys

import bigmodels
from bigmodels.cli import ArgumentParser, add_text_column_flags, run_app, text_column_options

# The flags that only --bundle reads (argparse destination -> flag).
BUNDLE_ONLY = {
    "out": "--out",
    "overwrite": "--overwrite",
    "runtime": "--runtime",
    "threads": "--threads",
}


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    subject = parser.add_mutually_exclusive_group(required=True)
    subject.add_argument("--run", help="run folder written by apps/train.py")
    subject.add_argument(
        "--bundle", help="bundle folder or .zip (or a shipped name): score its TFLite file; needs --data"
    )
    parser.add_argument("--data", default=None, help="evaluate on this source's test split instead")
    parser.add_argument(
        "--all", action="store_true", help="score every example of --data, not only its test split"
    )
    bundle = parser.add_argument_group("bundles (--bundle)")
    bundle.add_argument("--out", default=None, help="new folder for evaluation.json and confusion_matrix.png")
    bundle.add_argument("--overwrite", action="store_true", help="replace an --out folder evaluate wrote")
    bundle.add_argument(
        "--runtime",
        choices=("litert", "tflm"),
        default=None,
        help="ai-edge-litert (default), or TensorFlow Lite Micro (int8 bundles) as a microcontroller runs it",
    )
    bundle.add_argument("--threads", type=int, default=None, help="runtime threads (default 1)")
    add_text_column_flags(parser).description = "(default: the columns the run or bundle was trained on)"
    args = parser.parse_args(argv)
    if args.bundle is not None and args.data is None:
        parser.error("--bundle needs --data: the labelled examples to score it on")
    given = [name for name in BUNDLE_ONLY if getattr(args, name) not in (None, False)]
    if args.run is not None and given:
        flags = ", ".join(BUNDLE_ONLY[name] for name in given)
        parser.error(f"{flags}: only for --bundle (a run's evaluation is written into the run folder)")
    return args


def main(args) -> int:
    if args.bundle is not None:
        return _evaluate_bundle(args)
    report = bigmodels.evaluate_run(
        args.run,
        args.data,
        all_examples=args.all,
        **text_column_options(args),
    )
    task = bigmodels.task_of(bigmodels.read_run(args.run)[1]["model"])
    for line in task.evaluation_lines(report):
        print(line)
    return 0


def _evaluate_bundle(args) -> int:
    report = bigmodels.evaluate_bundle(
        args.bundle,
        args.data,
        all_examples=args.all,
        out_dir=args.out,
        overwrite=args.overwrite,
        runtime=args.runtime or "litert",
        num_threads=1 if args.threads is None else args.threads,
        **text_column_options(args),
    )
    print(f"{report['model_file']} ({report['quantization']}) on {report['runtime']}, {report['test_split']}")
    for line in bigmodels.task_of(report["model_family"]).evaluation_lines(report):
        print(line)
    if args.out:
        print(f"wrote {args.out}/evaluation.json and confusion_matrix.png")
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
