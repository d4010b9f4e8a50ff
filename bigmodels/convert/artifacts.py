"""One exported file's measurements: size, gzip size, latency, and the choice of the file to ship."""

import gzip
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from bigmodels.convert.tflite import convert_tflite
from bigmodels.lite.runtime import TFLiteModel


def gzip_size(path: Path) -> int:
    """Bytes after gzip -9: what a download over a slow link costs (and where pruning shows)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def saved_model_outputs(directory: Path, inputs: np.ndarray, *, batch: int = 256) -> tuple[np.ndarray, float]:
    """Reloads a SavedModel as a server would; returns its outputs on ``inputs`` and the median
    latency of one example in ms (TensorFlow's default thread pools)."""

    serve = tf.saved_model.load(str(directory)).signatures["serving_default"]
    outputs = np.concatenate(
        [
            next(iter(serve(tf.constant(inputs[i : i + batch])).values())).numpy()
            for i in range(0, len(inputs), batch)
        ]
    )
    timings = []
    single = tf.constant(inputs[:1])
    for index in range(60):
        started = time.perf_counter()
        serve(single)
        if index >= 10:
            timings.append((time.perf_counter() - started) * 1000.0)
    return outputs, float(np.median(timings))


# A file at most this much bigger than the smallest that runs this many times faster is shipped
# instead: on the SST-2 Transformer the int8 file was 2% smaller than the dynamic-range one and
# 1.7x slower (0.21 vs 0.13 ms), a trade no phone wants.
SIZE_SLACK, SPEED_GAIN = 1.10, 1.5


def choose_artifact(candidates: list[dict], criterion: str, latency_budget_ms: float | None = None) -> dict:
    """The file to ship of the TFLite files that passed the gate (``criterion`` says which): the
    smallest, unless one at most ``SIZE_SLACK`` times its size is ``SPEED_GAIN`` times faster
    (then the fastest of those); with the reason. With ``latency_budget_ms``, a choice over the
    budget gives way to the smallest of those at most ``SIZE_SLACK`` times the smallest's size
    that keep to it, when one does."""
    if not candidates:
        return {"file": None, "reason": f"no TFLite file is {criterion}"}
    smallest = min(candidates, key=lambda a: (a["size_bytes"], a["latency_ms"]))
    near = [a for a in candidates if a["size_bytes"] <= smallest["size_bytes"] * SIZE_SLACK]
    fastest = min(near, key=lambda a: (a["latency_ms"], a["size_bytes"]))
    faster = fastest["latency_ms"] * SPEED_GAIN <= smallest["latency_ms"]
    chosen = fastest if faster else smallest
    files = f"{len(candidates)} TFLite file(s) {criterion}"
    in_budget = [a for a in near if latency_budget_ms and a["latency_ms"] <= latency_budget_ms]
    if latency_budget_ms and chosen["latency_ms"] > latency_budget_ms and in_budget:
        chosen = min(in_budget, key=lambda a: (a["size_bytes"], a["latency_ms"]))
        reason = (
            f"smallest within {latency_budget_ms} ms per example of the {files}, at most "
            f"{SIZE_SLACK - 1:.0%} bigger than the smallest ({smallest['file']})"
        )
    elif faster:
        gain = smallest["latency_ms"] / max(fastest["latency_ms"], 1e-9)
        reason = (
            f"{gain:.1f}x faster than the smallest of the {files} ({smallest['file']}), "
            f"at most {SIZE_SLACK - 1:.0%} bigger"
        )
    else:
        reason = f"smallest of the {files}"
    figures = f"{chosen['size_bytes'] / 1024:.1f} KB, {chosen['latency_ms']:.3f} ms per example"
    return {"file": chosen["file"], "reason": f"{reason}: {figures}"}


def tflite_artifact(model, mode: str, path: Path, representative, example, latency_repeats: int):
    """Converts, writes and times one TFLite file; returns (its report entry, its runner)."""

    path.write_bytes(convert_tflite(model, mode, representative))
    runner = TFLiteModel(path, num_threads=1)
    latency = runner.latency_ms(example, repeats=latency_repeats)
    entry = {
        "file": path.name,
        "format": "tflite",
        "quantization": mode,
        "size_bytes": path.stat().st_size,
        "gzip_bytes": gzip_size(path),
        "latency_ms": round(latency["p50"], 4),
        "latency_p90_ms": round(latency["p90"], 4),
    }
    return entry, runner
