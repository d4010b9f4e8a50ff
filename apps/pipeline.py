"""The main job: train, (distil,) (prune,) export every TFLite mode, verify, print one report.

Usage:
    python apps/pipeline.py                      # embedded digits, offline, into saved_models/demo
    python apps/pipeline.py --data ../shared/data/mnist --out saved_models/mnist --epochs 12
    python apps/pipeline.py --data ../shared/data/mnist --out saved_models/mnist --prune 0.8
    python apps/pipeline.py --data reviews.csv --text-column text --label-column label \\
        --out saved_models/reviews --distill width=32 --prune 0.5

Each stage is its own run folder (OUT, OUT_student, OUT[_student]_pruned) with its own export;
the report ends with one table of every artifact of every stage. Exits 1 when a parity gate
fails (an artifact more than --max-accuracy-drop points below its Keras model).
"""

import sys

import bigmodels
from bigmodels.cli import (
    EXIT_PARITY_FAILED,
    ArgumentParser,
    add_export_flags,
    add_training_flags,
    check_export_flags,
    export_from_args,
    parse_model_arguments,
    print_export_table,
    print_stage_table,
    run_app,
    train_from_args,
)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_training_flags(parser, out_default="saved_models/demo")
    add_export_flags(parser)
    parser.add_argument("--distill", default=None, metavar="STUDENT_CONFIG", help="e.g. width=32")
    parser.add_argument("--prune", type=float, default=None, metavar="SPARSITY", help="e.g. 0.8")
    parser.add_argument("--prune-epochs", dest="prune_epochs", type=int, default=8)
    return parser.parse_args(argv)


def main(args) -> int:
    check_export_flags(args)  # bad flags fail before training starts
    student_args = parse_model_arguments(args.distill) if args.distill else None

    def export(run_dir):
        return export_from_args(run_dir, args)

    run_dir, metrics = train_from_args(args, verbose=2)
    stages = [("trained", run_dir, export(run_dir))]
    if student_args:
        student_dir, _ = bigmodels.distill_run(
            run_dir, f"{run_dir}_student", student_args=student_args, overwrite=args.overwrite, verbose=2
        )
        stages.append(("distilled", student_dir, export(student_dir)))
    if args.prune is not None:
        source = stages[-1][1]
        pruned_dir, _ = bigmodels.prune_run(
            source, f"{source}_pruned", sparsity=args.prune, epochs=args.prune_epochs,
            overwrite=args.overwrite, verbose=2,
        )  # fmt: skip
        stages.append(("pruned", pruned_dir, export(pruned_dir)))
    report = stages[-1][2]
    print(
        f"\ntrained {report['model']} on {metrics['data_source']}: {metrics['counts']} examples, "
        f"{metrics['epochs_trained']} epochs, {metrics['training_seconds']:.0f} s"
    )
    print_export_table(report)
    if len(stages) > 1:
        print_stage_table(stages)
    for _, stage_dir, _ in stages:
        print(f"run folder: {stage_dir} (export report: {stage_dir}/export/report.json)")
    return 0 if all(r["parity_gate"]["passed"] for _, _, r in stages) else EXIT_PARITY_FAILED


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
