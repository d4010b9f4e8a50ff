"""Benchmark: each family's int8 file on TensorFlow Lite Micro: flash, measured tensor arena, ops.

Usage:
    python apps/train.py --data ../shared/data/mnist --out /tmp/mnist --epochs 2
    python benchmarks/micro.py --run "MNIST CNN=/tmp/mnist" --run "SST-2 Transformer=/tmp/sst2"

Each run's export/report.json supplies its "micro" entry (apps/export.py measures the arena on
tflite-micro's interpreter and compares its outputs with ai-edge-litert's); a run without one is
exported first (--quantization, int8 by default; --export re-exports every run). The figures are
set against a Cortex-M class board's budget for the model (flash <= 40 KB, arena <= 64 KB: the
issue's MNIST CNN targets). Prints a Markdown table and writes benchmarks/results/micro.json.
"""

import argparse
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bigmodels import export_run, read_run  # noqa: E402

TARGET_FLASH_BYTES = 40 * 1024
TARGET_ARENA_BYTES = 64 * 1024
FIELDS = (
    "file",
    "flash_bytes",
    "arena_bytes",
    "ops",
    "ops_supported",
    "unsupported_ops",
    "skipped",
    "equal_to_litert",
    "compared",
    "litert_difference",
    "equal_to_litert_xnnpack",
    "litert_xnnpack_difference",
)


def micro_figures(run_dir: Path, modes: list[str], export: bool) -> dict:
    """The run's micro entry, exporting the run first when asked or when it has none."""
    report_path = run_dir / "export" / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    if export or not report.get("micro", {}).get("flash_bytes"):
        report = export_run(run_dir, quantization=modes)
    _, config = read_run(run_dir)
    micro = report["micro"]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    figures = {"run": str(run_dir), "model": config["model"], "model_args": config["model_args"]}
    quality = ("test_accuracy", "classifier_score")
    figures["quality"] = {key: metrics[key] for key in quality if key in metrics}
    figures.update({key: micro[key] for key in FIELDS if key in micro})
    figures["within_targets"] = bool(
        micro.get("arena_bytes")
        and micro["flash_bytes"] <= TARGET_FLASH_BYTES
        and micro["arena_bytes"] <= TARGET_ARENA_BYTES
    )
    return figures


def table_row(name: str, figures: dict) -> str:
    arena = figures.get("arena_bytes")
    arena_text = f"{arena / 1024:.1f} KB" if arena else "-"
    compared = figures.get("compared")
    differing = figures.get("litert_difference", {}).get("examples", 0)
    parity = f"{compared - differing} of {compared}" if compared else "-"
    unsupported = ", ".join(figures.get("unsupported_ops") or []) or "-"
    return (
        f"| {name} | {figures['model']} | {figures['flash_bytes'] / 1024:.1f} KB | {arena_text} | "
        f"{len(figures['ops'])}: {', '.join(figures['ops'])} | {unsupported} | {parity} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", action="append", required=True, metavar="NAME=RUN_DIR", help="a trained run (repeatable)"
    )
    parser.add_argument("--quantization", default="int8", help="modes of an export this script makes")
    parser.add_argument("--export", action="store_true", help="export every run again")
    parser.add_argument("--out", default="benchmarks/results/micro.json")
    args = parser.parse_args()
    runs = {}
    for item in args.run:
        name, separator, folder = item.partition("=")
        if not separator:
            raise SystemExit(f"error: --run takes NAME=RUN_DIR, got '{item}'")
        runs[name] = micro_figures(Path(folder), args.quantization.split(","), args.export)
    print("| run | model | flash | arena | ops | TFLM lacks | outputs equal to ai-edge-litert's |")
    print("|---|---|---:|---:|---|---|---|")
    for name, figures in runs.items():
        print(table_row(name, figures))
    result = {
        "targets": {"flash_bytes": TARGET_FLASH_BYTES, "arena_bytes": TARGET_ARENA_BYTES},
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
