"""Benchmark a bundle on this machine: load time, latency per example at 1/2/4 threads, peak memory.

Usage:
    python apps/benchmark.py --bundle saved_models/demo/export/bundle.zip
    python apps/benchmark.py --bundle bundle.zip --threads 1 2 4 --repeats 500 --out bench.json

Needs only numpy, Pillow and ai-edge-litert (no TensorFlow), so it runs on the device itself.
Prints and writes JSON: load_seconds, per thread count latency p50/p90 (ms, one example per
invoke, after a warm-up), peak_rss_mb (resident memory high-water mark of this process), the
model file size and the whole bundle's size.
"""

import json
import resource
import sys
import time
from pathlib import Path

from bigmodels.cli import ArgumentParser, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle folder or .zip written by apps/export.py")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=300, help="timed invokes per thread count")
    parser.add_argument("--out", default=None, help="JSON file to write (default: print only)")
    return parser.parse_args(argv)


def example_input(bundle):
    """One input as a user would give it: a sentence, or the model's input of plausible values."""
    import numpy as np

    if bundle.task == "text_classification":
        return bundle.prepare(["a short sentence to time the model with, as a user would send it"])[0]
    spec = bundle.metadata["input"]
    generator = np.random.default_rng(0)
    if bundle.task == "image_generation":
        return generator.standard_normal(spec["shape"][1:]).astype(np.float32)
    return generator.integers(0, 256, size=spec["shape"][1:]).astype(np.uint8)


def main(args) -> int:
    from bigmodels.lite import load_bundle

    if args.repeats < 1 or any(threads < 1 for threads in args.threads):
        raise ValueError("--repeats and --threads must be at least 1")
    started = time.perf_counter()
    bundle = load_bundle(args.bundle, num_threads=args.threads[0])
    load_seconds = time.perf_counter() - started
    example = example_input(bundle)
    latency = {}
    for threads in args.threads:
        runner = load_bundle(args.bundle, num_threads=threads).model
        timing = runner.latency_ms(example, repeats=args.repeats)
        latency[str(threads)] = {"p50_ms": round(timing["p50"], 4), "p90_ms": round(timing["p90"], 4)}
    model_file = bundle.folder / bundle.metadata["model_file"]
    result = {
        "bundle": str(args.bundle),
        "task": bundle.task,
        "family": bundle.metadata["family"],
        "quantization": bundle.metadata["quantization"],
        "load_seconds": round(load_seconds, 4),
        "latency_per_example": latency,
        "repeats": args.repeats,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_file_bytes": model_file.stat().st_size,
        "bundle_bytes": Path(args.bundle).stat().st_size
        if Path(args.bundle).is_file()
        else sum(p.stat().st_size for p in bundle.folder.iterdir()),
        "metrics": bundle.metadata["metrics"],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args, tensorflow=False))
