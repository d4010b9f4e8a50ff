"""Benchmark: the cifar10_tiny recipe (MLPerf Tiny's image-classification bar) trained and exported
through the apps, measured against the bar.

Usage:
    python benchmarks/cifar10_tiny.py [--data ../shared/data] [--work ../runs] [--from-run]

Trains and exports with exactly the commands of saved_models/cifar10_tiny (REFERENCES in
benchmarks/reference_models.py), timing the training wall clock, unless --from-run reuses an
exported WORK/cifar10_tiny. Reports validation accuracy (per epoch), accuracy on the held-out
test split (the share of the training folder the commands' --test-fraction names: the real
test split is withheld from this machine), the int8 file's accuracy, size, 1-thread latency and
TensorFlow Lite Micro arena, and the multiply-accumulates per image beside ResNet-8's. Writes
benchmarks/results/cifar10_tiny.json.
"""

import argparse
import csv
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from reference_models import ROOT, formatted_commands, run_commands  # noqa: E402

# MLPerf Tiny v1.x image classification: quality target, reference model and its cost.
TARGET = {"test_accuracy": 0.85, "int8_bytes": 98_500, "resnet8_macs": 12_500_000, "training_minutes": 60}


def measure(run_dir: Path, training_seconds: float | None) -> dict:
    import bigmodels

    model = bigmodels.load_model(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((run_dir / "export" / "report.json").read_text())
    int8 = next(a for a in report["artifacts"] if a["quantization"] == "int8")
    with open(run_dir / "history.csv") as handle:
        history = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    micro = report.get("micro", {})
    macs = bigmodels.multiply_accumulates(model)
    return {
        "validation_accuracy_per_epoch": [round(v, 4) for v in history],
        "validation_accuracy_final": round(history[-1], 4),
        "keras_test_accuracy": metrics["test_accuracy"],
        "test_split": metrics["test_split"],
        "num_test_examples": metrics["num_test_examples"],
        "int8": {k: int8.get(k) for k in ("file", "size_bytes", "gzip_bytes", "accuracy", "latency_ms")},
        "micro": {
            k: micro.get(k)
            for k in ("flash_bytes", "arena_bytes", "ops", "equal_to_litert", "litert_difference")
        },
        "parameters": int(model.count_params()),
        "macs_per_image": macs,
        "training_seconds_in_fit": metrics["training_seconds"],
        "training_wall_seconds": training_seconds,
        "targets": {
            **TARGET,
            "accuracy_met_on_held_out_split": int8["accuracy"] >= TARGET["test_accuracy"],
            "size_met": int8["size_bytes"] <= TARGET["int8_bytes"],
            "macs_met": macs < TARGET["resnet8_macs"],
            "time_met": training_seconds is None or training_seconds <= TARGET["training_minutes"] * 60,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("../runs"))
    parser.add_argument("--from-run", action="store_true", help="measure an exported WORK/cifar10_tiny")
    parser.add_argument(
        "--wall-seconds",
        type=float,
        default=None,
        help="with --from-run: the train command's measured wall time",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cifar10_tiny.json")
    args = parser.parse_args()
    run_dir = (ROOT / args.work / "cifar10_tiny").resolve()
    if args.from_run:
        commands, training_seconds = (
            formatted_commands("cifar10_tiny", args.data, args.work),
            args.wall_seconds,
        )
    else:
        commands, seconds = run_commands("cifar10_tiny", args.data, args.work)
        training_seconds = seconds[0]  # the train command alone, wall clock (export is the second)
    result = {
        "benchmark": "cifar10_tiny recipe (CIFAR-10 training folder), MLPerf Tiny image classification bar",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "commands": commands,
        **measure(run_dir, training_seconds),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "validation_accuracy_per_epoch"}, indent=1))


if __name__ == "__main__":
    main()
