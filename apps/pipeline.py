"""The main job: train, (distil,) (prune,) (cluster,) (QAT,) export, verify, print one report.

Usage:
    python apps/pipeline.py                      # embedded digits, offline, into saved_models/demo
    python apps/pipeline.py --data ../shared/data/mnist --out saved_models/mnist --epochs 12
    python apps/pipeline.py --data ../shared/data/mnist --out saved_models/mnist --prune 0.8
    python apps/pipeline.py --data reviews.csv --text-column text --label-column label \\
        --out saved_models/reviews --distill width=32 --prune 0.5
    python apps/pipeline.py --data ../shared/data/mnist --out saved_models/mnist \\
        --prune 0.8 --clusters 16 --qat      # collaborative optimization: one int8 file

Each stage is its own run folder (OUT, OUT_student, then _pruned, _clustered, _qat appended to
the stage before) with its own export (the QAT stage's: the full-int8 file alone);
the report ends with one table of every artifact of every stage. Exits 1 when a parity gate
fails (an artifact more than --max-accuracy-drop points below its Keras model).
"""

import sys
from functools import partial

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
    parser.add_argument("--prune-epochs", dest="prune_epochs", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=None, metavar="K", help="shared values per kernel")
    parser.add_argument("--cluster-epochs", dest="cluster_epochs", type=int, default=4)
    parser.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning last")
    parser.add_argument("--qat-epochs", dest="qat_epochs", type=int, default=3)
    return parser.parse_args(argv)


def main(args) -> int:
    check_export_flags(args, qat="among" if args.qat else None)  # bad flags fail before training starts
    if args.clusters is not None and args.clusters < 2:
        raise ValueError(
            f"--clusters must be at least 2 (1 cluster is a constant kernel), got {args.clusters}"
        )
    student_args = parse_model_arguments(args.distill) if args.distill else None

    def export(run_dir):
        return export_from_args(run_dir, args)

    # Later stages the model could not take are refused before training (a distilled student,
    # built later, is checked when its stage runs).
    check = (
        None
        if student_args or not (args.clusters or args.qat)
        else partial(bigmodels.check_compression_chain, clusters=args.clusters, qat=args.qat)
    )
    run_dir, metrics = train_from_args(args, verbose=2, before_training=check)
    stages = [("trained", run_dir, export(run_dir))]
    if student_args:
        student_dir, _ = bigmodels.distill_run(
            run_dir, f"{run_dir}_student", student_args=student_args, overwrite=args.overwrite, verbose=2
        )
        stages.append(("distilled", student_dir, export(student_dir)))
    compressions = [
        ("pruned", args.prune is not None, bigmodels.prune_run,
         {"sparsity": args.prune, "epochs": args.prune_epochs}),
        ("clustered", args.clusters is not None, bigmodels.cluster_run,
         {"clusters": args.clusters, "epochs": args.cluster_epochs}),
    ]  # fmt: skip
    for stage, asked, workflow, settings in compressions:
        if asked:
            source = stages[-1][1]
            stage_dir, _ = workflow(
                source, f"{source}_{stage}", **settings, overwrite=args.overwrite, verbose=2
            )
            stages.append((stage, stage_dir, export(stage_dir)))
    if args.qat:
        source = stages[-1][1]
        qat_dir, _ = bigmodels.qat_run(
            source, f"{source}_qat", epochs=args.qat_epochs, overwrite=args.overwrite, verbose=2
        )
        stages.append(("qat", qat_dir, export_from_args(qat_dir, args, int8_only=True)))
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
