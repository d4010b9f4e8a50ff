"""Benchmark: collaborative optimization (PTQ, QAT, prune, prune+QAT, prune+cluster, prune+cluster+QAT).

Usage:
    python benchmarks/collaborative.py --family cnn --mnist ../shared/data/mnist --work /tmp/bench
    python benchmarks/collaborative.py --family text --sst2 ../shared/data/sst2 --work /tmp/bench
    python benchmarks/collaborative.py --family generator --mnist ../shared/data/mnist --work /tmp/bench

For the MNIST CNN and the SST-2 Transformer: the base run (trained as benchmarks/compression.py
trains it, or reused from --work), then each chain of the package's workflows with their
defaults (prune_run at 80%, cluster_run with 16 clusters, qat_run), each exported to full int8
and run on ai-edge-litert over the test split. One int8 row per chain: gzip bytes, accuracy,
points below the unpruned float Keras model, 1-thread latency. A chain that cannot run (QAT of a
model it cannot simulate) gets a row with the one-line reason instead of figures. Adds the
family's section under "collaborative" in benchmarks/results/compression.json.
Targets (MNIST): prune+cluster+QAT int8 <= 10,000 B gzip and <= 0.3 points below float.
The generator family (the MNIST cGAN, trained as saved_models/mnist_cgan was, scored by the
shipped mnist_cnn) has the PTQ and QAT rows: mean absolute pixel difference of the int8 file from
its Keras generator, and the file's classifier score.
"""

import argparse
import fcntl
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bigmodels import (  # noqa: E402
    TokenizerSettings,
    cluster_run,
    export_run,
    prune_run,
    qat_run,
    train_run,
)

CHAINS = {  # row name -> the steps after the base run
    "PTQ": (),
    "QAT": ("qat",),
    "prune": ("prune",),
    "prune+QAT": ("prune", "qat"),
    "prune+cluster": ("prune", "cluster"),
    "prune+cluster+QAT": ("prune", "cluster", "qat"),
}
GENERATOR_CHAINS = ("PTQ", "QAT")
SCORER = Path(__file__).resolve().parents[1] / "saved_models" / "mnist_cnn" / "run"


def train_base(family: str, args, work: Path) -> Path:
    folder = work / family
    if (folder / "metrics.json").is_file():
        return folder
    if family == "generator":
        return train_run(
            "dcgan", args.mnist, folder, epochs=10, model_args={"code_from_labels": True},
            score_classifier=str(SCORER), verbose=2,
        )[0]  # fmt: skip
    if family == "cnn":
        return train_run(
            "cnn_classifier", args.mnist, folder, epochs=15, batch_size=128, learning_rate=4e-3,
            patience=15, model_args={"variant": "compact"}, verbose=2,
        )[0]  # fmt: skip
    sst2 = Path(args.sst2)
    return train_run(
        "transformer_classifier", str(sst2 / "train.tsv"), folder, epochs=args.text_epochs,
        batch_size=32, learning_rate=2e-3, patience=4, model_args={"dropout": 0.2},
        data_options={"text_columns": ["sentence"], "label_column": "label",
                      "validation_source": str(sst2 / "dev.tsv"), "test_source": str(sst2 / "test.tsv")},
        tokenizer=TokenizerSettings(vocabulary_size=6000), verbose=2,
    )[0]  # fmt: skip


def run_step(step: str, source: Path, args) -> Path:
    """One workflow with its defaults (pruning's fine-tuning epochs can be shortened for text)."""
    out = source.with_name(f"{source.name}_{step}")
    if (out / "metrics.json").is_file():
        return out
    if step == "prune":
        return prune_run(source, out, sparsity=0.8, epochs=args.prune_epochs, verbose=2)[0]
    if step == "cluster":
        return cluster_run(source, out, clusters=16, verbose=2)[0]
    return qat_run(source, out, verbose=2)[0]


def chain_row(name: str, steps, base: Path, keras_accuracy: float, args) -> dict:
    started = time.perf_counter()
    run, sparsity = base, 0.0
    try:
        for step in steps:
            run = run_step(step, run, args)
            if step == "prune":  # clustering and QAT keep the zeros (their tests check it)
                sparsity = json.loads((run / "metrics.json").read_text())["sparsity"]
    except ValueError as error:
        return {"chain": name, "skipped": str(error)}
    report = export_run(run, quantization=["int8"], max_accuracy_drop=100, max_pixel_difference=255)
    artifact = next(a for a in report["artifacts"] if a["quantization"] == "int8")
    metrics = json.loads((run / "metrics.json").read_text())
    if "classifier_score" in metrics:  # the generator
        quality = {key: artifact[key] for key in ("mean_abs_pixel_difference", "classifier_score")}
        quality["keras_classifier_score"] = metrics["classifier_score"]
    else:
        quality = {
            "keras_accuracy": metrics["test_accuracy"],
            "int8_accuracy": artifact["accuracy"],
            "drop_points_from_unpruned_float": round((keras_accuracy - artifact["accuracy"]) * 100, 3),
        }
    return {
        "chain": name,
        "run": run.name,
        **quality,
        "sparsity": sparsity,
        "size_bytes": artifact["size_bytes"],
        "gzip_bytes": artifact["gzip_bytes"],
        "latency_ms": artifact["latency_ms"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def print_rows(rows: list[dict]) -> None:
    generator = any("classifier_score" in row for row in rows)
    quality = ("pixel diff", "score") if generator else ("int8 acc", "drop pts")
    print(f"\n{'chain':<20}{quality[0]:>10}{quality[1]:>10}{'gzip B':>9}{'ms':>8}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['chain']:<20} skipped: {row['skipped']}")
            continue
        keys = ("mean_abs_pixel_difference", "classifier_score") if generator else (
            "int8_accuracy", "drop_points_from_unpruned_float")  # fmt: skip
        print(f"{row['chain']:<20}{row[keys[0]]:>10.4f}{row[keys[1]]:>10.3f}{row['gzip_bytes']:>9}"
              f"{row['latency_ms']:>8.3f}")  # fmt: skip


def merge_section(out: Path, family: str, section: dict) -> None:
    """Read-modify-write under a lock: the two families may finish at the same time."""
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        summary = json.loads(out.read_text()) if out.is_file() else {}
        summary.setdefault("collaborative", {})[family] = section
        out.write_text(json.dumps(summary, indent=2) + "\n")
    out.with_suffix(".lock").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("cnn", "text", "generator"), required=True)
    parser.add_argument("--mnist", default=None, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--sst2", default=None, help="folder with train.tsv, dev.tsv, test.tsv")
    parser.add_argument("--work", required=True, help="run folders (reused when already there)")
    parser.add_argument("--out", default="benchmarks/results/compression.json")
    parser.add_argument("--text-epochs", dest="text_epochs", type=int, default=10)
    parser.add_argument("--prune-epochs", dest="prune_epochs", type=int, default=20)
    args = parser.parse_args()
    base = train_base(args.family, args, Path(args.work))
    keras_accuracy = json.loads((base / "metrics.json").read_text()).get("test_accuracy")
    chains = {name: CHAINS[name] for name in GENERATOR_CHAINS} if args.family == "generator" else CHAINS
    rows = [chain_row(name, steps, base, keras_accuracy, args) for name, steps in chains.items()]
    print_rows(rows)
    section = {"base_run": str(base), "unpruned_float_keras_accuracy": keras_accuracy,
               "settings": vars(args), "rows": rows}  # fmt: skip
    merge_section(Path(args.out), args.family, section)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
