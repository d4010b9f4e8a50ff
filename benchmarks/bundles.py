"""Benchmark: one bundle per family on this machine, next to MediaPipe Model Maker's published figures.

Usage:
    python benchmarks/bundles.py --image RUN/export/bundle.zip --text RUN/export/bundle.zip \\
        --generator RUN/export/bundle.zip

Each bundle is measured by apps/benchmark.py in its own process (so peak memory is that
bundle's alone): load time, 1-thread p50 latency per example, peak resident memory, bundle
size, and the quality figure its metadata carries (test accuracy, or the classifier score).
Writes benchmarks/results/bundles.json and prints a Markdown table for the README.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Published figures of MediaPipe Model Maker's default models (its documentation).
MEDIAPIPE = {
    "text": "MediaPipe average word embedding: 776 KB, 81.0% on SST-2",
    "image": "MediaPipe EfficientNet-Lite0: 13.5 MB",
    "generator": "(MediaPipe Model Maker has no generator)",
}


def measure(bundle: str, repeats: int) -> dict:
    command = [sys.executable, str(ROOT / "apps" / "benchmark.py"), "--bundle", bundle, "--threads", "1"]
    result = subprocess.run(
        [*command, "--repeats", str(repeats)], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise SystemExit(f"error: {bundle}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def quality(figures: dict) -> str:
    metrics = figures["metrics"]
    if "test_accuracy" in metrics:
        return f"{metrics['test_accuracy']:.2%} test accuracy"
    return f"classifier score {metrics['classifier_score']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="image classifier bundle")
    parser.add_argument("--text", required=True, help="text classifier bundle")
    parser.add_argument("--generator", required=True, help="DCGAN generator bundle")
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--out", default="benchmarks/results/bundles.json")
    args = parser.parse_args()
    rows = {family: measure(getattr(args, family), args.repeats) for family in ("image", "text", "generator")}
    print("| family | model (bundle) | quality | bundle size | p50, 1 thread | peak memory | MediaPipe |")
    print("|---|---|---|---:|---:|---:|---|")
    for family, figures in rows.items():
        latency = figures["latency_per_example"]["1"]["p50_ms"]
        print(
            f"| {family} | {figures['family']} ({figures['quantization']}) | {quality(figures)} | "
            f"{figures['bundle_bytes'] / 1024:.0f} KB | {latency:.3f} ms | "
            f"{figures['peak_rss_mb']:.0f} MB | {MEDIAPIPE[family]} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bundles": rows, "mediapipe_published": MEDIAPIPE}, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
