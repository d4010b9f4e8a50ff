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


def choose_smallest(candidates: list[dict], criterion: str) -> dict:
    """The smallest of the TFLite files that passed the gate (``criterion`` says which), and why."""
    if not candidates:
        return {"file": None, "reason": f"no TFLite file is {criterion}"}
    best = min(candidates, key=lambda a: (a["size_bytes"], a["latency_ms"]))
    return {
        "file": best["file"],
        "reason": (
            f"smallest of the {len(candidates)} TFLite file(s) {criterion}: "
            f"{best['size_bytes'] / 1024:.1f} KB, {best['latency_ms']:.3f} ms per example"
        ),
    }


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
