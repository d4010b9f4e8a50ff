"""Benchmark: the DCGAN on real MNIST, scored per epoch by a CNN this package trains on MNIST.

Usage:
    python benchmarks/dcgan_mnist.py --data ../shared/data/mnist

Trains through the package's run folder (train_run: a cnn_classifier run for scoring first,
then the DCGAN, scored on 2,000 samples from fixed latent vectors after every epoch), exports
the generator in every TFLite mode (export_run: each file compared with Keras on the same
latent vectors), and writes benchmarks/results/dcgan_mnist.json plus the final sample grid
benchmarks/results/dcgan_mnist_samples.png. Wall time per epoch excludes the scoring.

By default the generator is conditioned on the digit (``--code-from-labels``, AC-GAN: the class
is read from the latent vector, and the discriminator's code head learns the real labels);
``--no-code-from-labels`` trains the plain, unconditional DCGAN.
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bigmodels import export_run, train_run  # noqa: E402

TARGET_CLASSIFIER_SCORE = 9.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--out", default="benchmarks/results/dcgan_mnist.json")
    parser.add_argument("--work", default=None, help="where run folders go (default: a temporary folder)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=2e-4)
    parser.add_argument("--latent-size", dest="latent_size", type=int, default=64)
    parser.add_argument("--base-filters", dest="base_filters", type=int, default=32)
    parser.add_argument("--discriminator-filters", dest="discriminator_filters", type=int, default=None)
    parser.add_argument("--label-smoothing", dest="label_smoothing", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--ema-momentum", dest="ema_momentum", type=float, default=0.999)
    parser.add_argument(
        "--code-from-labels",
        dest="code_from_labels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="condition the generator on the class (AC-GAN); --no-code-from-labels: a plain DCGAN",
    )
    parser.add_argument("--code-classes", dest="code_classes", type=int, default=None)
    parser.add_argument("--code-weight", dest="code_weight", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--score-classifier", dest="score_classifier", default=None, help="existing classifier run"
    )
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bigmodels-dcgan-"))

    run_dir, metrics = train_run(
        "dcgan",
        args.data,
        work / "dcgan",
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        model_args={
            "latent_size": args.latent_size,
            "base_filters": args.base_filters,
            "discriminator_filters": args.discriminator_filters,
            "label_smoothing": args.label_smoothing,
            "dropout": args.dropout,
            "ema_momentum": args.ema_momentum,
            "code_classes": args.code_classes,
            "code_weight": args.code_weight,
            "code_from_labels": args.code_from_labels,
        },
        score_classifier=args.score_classifier,
        overwrite=True,
        verbose=2,
    )
    report = export_run(run_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = out.with_name(out.stem + "_samples.png")
    shutil.copy2(run_dir / "samples" / f"epoch_{metrics['epochs_trained']:03d}.png", grid)
    best = max(metrics["score_per_epoch"], key=lambda entry: entry["classifier_score"])
    summary = {
        "benchmark": "DCGAN on MNIST (train split 54,000 images after the 10% validation hold-out)",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
        },
        "settings": vars(args),
        "score_classifier": metrics["score_classifier"],
        "real_test_images": metrics["real_test_images"],
        "num_parameters": metrics["num_parameters"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "score_per_epoch": metrics["score_per_epoch"],
        "final": {
            key: metrics[key]
            for key in ("classifier_score", "frechet_distance", "code_accuracy")
            if key in metrics
        },
        "best_epoch": best,
        "target": {
            "classifier_score": TARGET_CLASSIFIER_SCORE,
            "reached_final": metrics["classifier_score"],
            "met": metrics["classifier_score"] >= TARGET_CLASSIFIER_SCORE,
        },
        "export": {
            "artifacts": report["artifacts"],
            "chosen": report["chosen"],
            "parity_gate": report["parity_gate"],
        },
        "sample_grid": str(grid),
    }
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'epoch':>5}{'seconds':>9}{'score':>8}{'FD':>9}")
    for seconds, entry in zip(metrics["seconds_per_epoch"], metrics["score_per_epoch"], strict=False):
        print(
            f"{entry['epoch']:>5}{seconds:>9.1f}{entry['classifier_score']:>8.3f}{entry['frechet_distance']:>9.3f}"
        )
    print(f"real test images: {metrics['real_test_images']}")
    print(f"{'artifact':<28}{'pixel diff':>11}{'score':>8}{'FD':>9}{'KB':>8}")
    for artifact in report["artifacts"]:
        print(
            f"{artifact['file']:<28}{artifact['mean_abs_pixel_difference']:>11.3f}{artifact['classifier_score']:>8.3f}"
            f"{artifact['frechet_distance']:>9.3f}{artifact['size_bytes'] / 1024:>8.1f}"
        )
    verdict = "met" if summary["target"]["met"] else "NOT met"
    print(f"target classifier score >= {TARGET_CLASSIFIER_SCORE}: {verdict}")
    print(f"written: {out} and {grid}")


if __name__ == "__main__":
    main()
