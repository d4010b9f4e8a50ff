"""Cluster a trained run's weights (K shared values per kernel, fine-tuned) into a new run folder.

Usage:
    python apps/cluster.py --run saved_models/mnist --clusters 16 --out saved_models/mnist_c16
    python apps/cluster.py --run saved_models/mnist_80 --clusters 16   # zeros stay exactly zero
    python apps/cluster.py --run saved_models/mnist --clusters 8 --init density --epochs 2

Writes OUT (default RUN_c<K>) as an ordinary run folder with plain weights (at most K distinct
values per clustered kernel, listed in metrics.json), then OUT/export/ through the same export
path as apps/export.py (the gzip sizes in report.json show the sharing).
"""

import sys

import bigmodels
from bigmodels.cli import ArgumentParser, add_export_flags, check_export_flags, export_and_report, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder written by apps/train.py (or prune)")
    parser.add_argument("--clusters", type=int, required=True, help="shared values per kernel (e.g. 16)")
    parser.add_argument("--init", default="kmeans++", help="centroids: kmeans++, linear or density")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs of the shared values")
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=None,
                        help="peak learning rate (default: a tenth of the run's)")  # fmt: skip
    parser.add_argument(
        "--layers", default="dense,conv,depthwise,embedding,transformer", help="layer kinds to cluster"
    )
    parser.add_argument("--min-weights", dest="min_weights", type=int, default=0,
                        help="kernels with fewer weights are left as they are")  # fmt: skip
    parser.add_argument("--out", default=None, help="clustered run folder (default: RUN_c<K>)")
    parser.add_argument("--overwrite", action="store_true")
    add_export_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    check_export_flags(args)
    out = args.out or f"{args.run.rstrip('/')}_c{args.clusters}"
    run_dir, metrics = bigmodels.cluster_run(
        args.run, out, clusters=args.clusters, initialization=args.init, epochs=args.epochs,
        learning_rate=args.learning_rate, kinds=[k.strip() for k in args.layers.split(",") if k.strip()],
        min_weights=args.min_weights, overwrite=args.overwrite, verbose=2,
    )  # fmt: skip
    for entry in metrics["distinct_values_per_weight"]:
        print(f"  {entry['weight']:<60}{entry['distinct']:>5} distinct values")
    return export_and_report(run_dir, args, "clustered")


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
