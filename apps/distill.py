"""Distil a trained classifier run into a smaller student of the same family, then export it.

Usage:
    python apps/distill.py --teacher saved_models/sst2 --student-config width=32,feedforward_size=64 \
        --out saved_models/sst2_small
    python apps/distill.py --teacher saved_models/bees --student-config '{"width_multiplier": 0.25}' \
        --out saved_models/bees_small

The student is the teacher's builder with the --student-config arguments changed, trained on the
teacher's data and split with loss alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)).
The same student is also trained alone (OUT/student_alone/), and the report compares teacher,
student alone and distilled student on accuracy and size.
"""

import sys

import bigmodels
from bigmodels.cli import (
    EXIT_PARITY_FAILED,
    ArgumentParser,
    add_export_flags,
    check_export_flags,
    export_from_args,
    parse_model_arguments,
    print_export_table,
    run_app,
)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="run folder of the trained teacher")
    parser.add_argument(
        "--student-config",
        dest="student_config",
        required=True,
        help="builder arguments that make the student smaller: key=value,... or a JSON object "
        "('{}' keeps the teacher's architecture: born-again distillation)",
    )
    parser.add_argument("--out", required=True, help="run folder of the distilled student")
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the hard-label loss")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--epochs", type=int, default=None, help="default: the teacher's")
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=None)
    parser.add_argument("--no-student-alone", dest="train_alone", action="store_false")
    parser.add_argument("--overwrite", action="store_true")
    add_export_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    check_export_flags(args)
    run_dir, metrics = bigmodels.distill_run(
        args.teacher,
        args.out,
        student_args=parse_model_arguments(args.student_config),
        alpha=args.alpha,
        temperature=args.temperature,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        train_alone=args.train_alone,
        overwrite=args.overwrite,
        verbose=2,
    )
    print(f"{'model':<20}{'test accuracy':>14}{'parameters':>12}")
    for name, entry in metrics["distillation"].items():
        print(f"{name:<20}{entry['test_accuracy']:>14.4f}{entry['num_parameters']:>12,}")
    report = export_from_args(run_dir, args)
    print_export_table(report)
    print(f"distilled run folder: {run_dir}")
    return 0 if report["parity_gate"]["passed"] else EXIT_PARITY_FAILED


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
