"""Prune a trained run (magnitude pruning, fine-tuned) into a new run folder, then export it.

Usage:
    python apps/prune.py --run saved_models/mnist --sparsity 0.8 --out saved_models/mnist_80
    python apps/prune.py --run saved_models/sst2 --sparsity 0.5 --schedule constant --epochs 3
    python apps/prune.py --run saved_models/mnist --structure 2:4 --out saved_models/mnist_24
    python apps/prune.py --run saved_models/gan --sparsity 0.5   # prunes the generator

Writes OUT (default RUN_80 for --sparsity 0.8) as an ordinary run folder with the per-weight
sparsity in metrics.json, then OUT/export/ through the same export path as apps/export.py (every
TFLite mode, the parity gate, report.json with gzip sizes, which is where the zeros show).
"""

import sys

import bigmodels
from bigmodels.cli import ArgumentParser, add_export_flags, check_export_flags, export_and_report, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder written by apps/train.py")
    parser.add_argument(
        "--sparsity", type=float, default=0.8, help="share of zeros over all pruned kinds' kernels"
    )
    parser.add_argument("--schedule", default="polynomial", help="polynomial (from 0) or constant")
    parser.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs (target reached at 70%%)")
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=None)
    parser.add_argument(
        "--layers", default="dense,conv,depthwise,embedding,transformer", help="layer kinds to prune"
    )
    parser.add_argument("--structure", default=None, help="2:4 for two of every four weights (50%%)")
    parser.add_argument(
        "--min-weights",
        dest="min_weights",
        type=int,
        default=None,
        help="kernels with fewer weights stay dense, the others make up for them (default: kernels "
        "under 1000 weights are spared when the others can stay under 95%%; 0 prunes all alike)",
    )
    distillation = parser.add_mutually_exclusive_group()
    distillation.add_argument(
        "--distill",
        dest="distill",
        action="store_true",
        default=None,
        help="a classifier is taught by its unpruned run while it is pruned (default: when the run "
        "overfits its labels, its last training accuracy over 2 points above its best validation)",
    )
    distillation.add_argument(
        "--no-distill", dest="distill", action="store_false", help="prune a classifier on the labels alone"
    )
    parser.add_argument("--out", default=None, help="pruned run folder (default: RUN_<percent>)")
    parser.add_argument("--overwrite", action="store_true")
    add_export_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    check_export_flags(args)
    suffix = "24" if args.structure == "2:4" else f"{round(args.sparsity * 100)}"
    out = args.out or f"{args.run.rstrip('/')}_{suffix}"
    run_dir, metrics = bigmodels.prune_run(
        args.run,
        out,
        sparsity=args.sparsity,
        schedule=args.schedule,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        kinds=[kind.strip() for kind in args.layers.split(",") if kind.strip()],
        structure=args.structure,
        min_weights=args.min_weights,
        distill=args.distill,
        overwrite=args.overwrite,
        verbose=2,
    )
    print(f"sparsity {metrics['sparsity']:.4f} over {len(metrics['sparsity_per_weight'])} kernels")
    for entry in metrics["sparsity_per_weight"]:
        print(f"  {entry['weight']:<60}{entry['sparsity']:>8.4f}  {entry['shape']}")
    return export_and_report(run_dir, args, "pruned")


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
