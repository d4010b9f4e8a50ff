"""TensorFlow Lite Micro on a desktop: run an int8 model as a microcontroller would, and measure the
smallest tensor arena it runs in (numpy and the ``tflite-micro`` package; never TensorFlow).

``tflite-micro`` (PyPI; wheels for Linux x86_64) wraps TFLM's own C++ interpreter and reference
kernels, the code a Cortex-M build compiles. Its tensors hold one example (batch 1), so
``MicroModel.predict`` runs one example per invoke.

A too small arena can crash the process instead of failing (seen with tflite-micro
0.dev20261023182759: a kernel whose buffer was refused still wrote through it), so every arena
size is tried in a forked child (``probe_arena``), and the export, a TensorFlow process, runs the
whole measurement in a process of its own (``main``, called as
``python -c "from bigmodels.lite.micro import main; main()" measure MODEL ...``).
"""

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from bigmodels.lite.runtime import TFLiteModel

ARENA_STEP = 16  # bytes: TFLM aligns its tensors to 16 bytes; arenas are measured in these steps
FIRST_ARENA_TRY = 1024
LARGEST_ARENA = 16 << 20  # more than any microcontroller has: a model that fails here cannot run
INSTALL_HINT = (
    "TensorFlow Lite Micro needs the tflite-micro package (wheels for Linux x86_64): pip install tflite-micro"
)
ARENA_METHOD = (
    "binary search over multiples of 16 bytes: each size tried by creating tflite-micro's "
    "interpreter with that arena and invoking it once on a test example, in a forked child; "
    "arena_bytes runs and arena_bytes - 16 fails"
)
MISSING_KERNEL = re.compile(r"Didn't find op for builtin opcode '(\w+)'")
FAILED_NODE = re.compile(r"Node (\w+) \(number (\d+)\) failed to (\w+)")


class MicroUnsupported(ValueError):
    """TensorFlow Lite Micro cannot run the model; ``ops`` names the op(s) it reported."""

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = ops


def tflite_micro_runtime():
    """``tflite_micro.runtime``, or a ValueError that says how to install it."""
    try:
        import tflite_micro
    except ImportError as error:
        raise ValueError(INSTALL_HINT) from error
    return tflite_micro.runtime


def tflite_micro_version() -> str | None:
    try:
        return version("tflite-micro")
    except PackageNotFoundError:
        return None


@contextlib.contextmanager
def native_messages(lines: list[str]):
    """Sends file descriptor 2 (where TFLM's C++ code prints why it failed) to a temporary file for
    the block, then appends that file's lines to ``lines``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode("utf-8", errors="replace").splitlines())


def describe_failure(lines: list[str], error: str) -> MicroUnsupported:
    """TFLM's messages -> one sentence naming the op: a missing kernel, or a kernel that refused a node."""
    text = [line.strip() for line in lines if line.strip()]
    missing = sorted({match.group(1) for match in map(MISSING_KERNEL.search, text) if match})
    if missing:
        return MicroUnsupported(f"TFLite Micro has no kernel for {', '.join(missing)}", missing)
    for index, line in enumerate(text):
        failed = FAILED_NODE.search(line)
        if failed:
            op, node, step = failed.groups()
            reason = f" ({text[index - 1].rstrip('.')})" if index else ""
            return MicroUnsupported(f"TFLite Micro's {op} kernel cannot {step} node {node}{reason}", [op])
    return MicroUnsupported(f"TFLite Micro cannot run the model: {'; '.join(text[-3:]) or error}", [])


def _detail(detail: dict) -> dict:
    """A TFLM tensor description in ai-edge-litert's form (what ``TFLiteModel`` reads)."""
    parameters = detail["quantization_parameters"]
    scales, zero_points = parameters["scales"], parameters["zero_points"]
    return {
        "index": 0,
        "shape": np.asarray(detail["shape"]),
        "dtype": np.dtype(detail["dtype"]),
        "quantization": (float(scales[0]), int(zero_points[0])) if len(scales) else (0.0, 0),
    }


class MicroModel(TFLiteModel):
    """A TFLite file on TensorFlow Lite Micro's interpreter, called like ``TFLiteModel``.

    Inputs are quantized and outputs dequantized as ``TFLiteModel`` does, so an int8 model gives
    here what it gives on ai-edge-litert's builtin kernels (``TFLiteModel(path, xnnpack=False)``).

    Raises:
        MicroUnsupported: TFLM has no kernel for one of the model's ops, or a kernel refuses a
            node (an input type it lacks), or the arena is too small; the message names the op.

    Example:
        model = MicroModel("export/model_int8.tflite")
        probabilities = model.predict(images_uint8)  # (N, num_classes) float32
    """

    def __init__(self, model: str | Path | bytes, *, arena_bytes: int = LARGEST_ARENA):
        runtime = tflite_micro_runtime()
        self.content = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.arena_bytes = int(arena_bytes)
        lines: list[str] = []
        try:
            with native_messages(lines):
                self._interpreter = runtime.Interpreter.from_bytes(self.content, arena_size=self.arena_bytes)
        except RuntimeError as error:
            raise describe_failure(lines, str(error)) from None
        self.input_detail = _detail(self._interpreter.get_input_details(0))
        self.output_detail = _detail(self._interpreter.get_output_details(0))
        self._batch = 1

    def check(self) -> "MicroModel":
        """Invokes once on zeros: some kernels refuse a node only when invoked (an input type they
        lack), and that should be known when the model is loaded, not at the first input."""
        self._invoke_each(np.zeros((1, *self.input_detail["shape"][1:]), self.input_detail["dtype"]))
        return self

    def _invoke_each(self, values: np.ndarray) -> np.ndarray:
        """Raw outputs of already quantized inputs, one invoke per example."""
        outputs = np.empty((len(values), *self.output_detail["shape"][1:]), self.output_detail["dtype"])
        lines: list[str] = []
        try:
            with native_messages(lines):
                for index, value in enumerate(values):
                    self._interpreter.set_input(np.ascontiguousarray(value[None]), 0)
                    self._interpreter.invoke()
                    outputs[index] = self._interpreter.get_output(0)[0]
        except RuntimeError as error:
            raise describe_failure(lines, str(error)) from None
        return outputs

    def predict(self, inputs: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Runs the model on every input (one invoke each) and returns float32 outputs."""
        values = np.asarray(inputs)
        if len(values) == 0:
            return np.zeros((0,), np.float32)
        return self._dequantize_output(self._invoke_each(self._quantize_input(values)))

    def latency_ms(self, example: np.ndarray, *, repeats: int = 200, warmup: int = 20) -> dict:
        """Median and p90 host time of one invoke (reference kernels: no guide to a microcontroller's)."""
        import time

        value = self._quantize_input(np.asarray(example)[None])
        timings = []
        for index in range(warmup + repeats):
            started = time.perf_counter()
            self._invoke_each(value)
            if index >= warmup:
                timings.append((time.perf_counter() - started) * 1000.0)
        return {"p50": float(np.median(timings)), "p90": float(np.percentile(timings, 90))}


def _probe_child(content: bytes, arena_bytes: int, example: np.ndarray, result: Path) -> None:
    """In the forked child: one try, its outcome written to ``result``; never returns."""
    outcome = {"runs": False, "message": "", "ops": []}
    try:
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        MicroModel(content, arena_bytes=arena_bytes).predict(example[None])
        outcome["runs"] = True
    except MicroUnsupported as error:
        outcome.update(message=str(error), ops=error.ops)
    except BaseException as error:  # noqa: BLE001  whatever fails, the parent gets an answer
        outcome["message"] = f"{type(error).__name__}: {error}"
    finally:
        try:
            result.write_text(json.dumps(outcome), encoding="utf-8")
        finally:
            os._exit(0)


def probe_arena(model: bytes, arena_bytes: int, example: np.ndarray) -> dict:
    """Whether the model allocates and runs ``example`` in an arena of ``arena_bytes``.

    Tried in a forked child, so a crash is only the child's. Call it from a process that has not
    loaded TensorFlow (forking a process with TensorFlow's threads is not safe).

    Returns:
        {"runs": bool, "message": why not, "ops": the op(s) TFLM named}.
    """
    tflite_micro_runtime()  # a missing package is reported here, not lost in the child
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="bigmodels-micro-") as folder:
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork of a threaded process
        result = Path(folder) / "probe.json"
        pid = os.fork()
        if pid == 0:
            _probe_child(model, arena_bytes, example, result)
        _, status = os.waitpid(pid, 0)
        if result.is_file():
            return json.loads(result.read_text(encoding="utf-8"))
        return {"runs": False, "message": f"TFLite Micro crashed (status {status})", "ops": []}


def measure_arena(model: bytes, example: np.ndarray) -> dict:
    """The smallest tensor arena, a multiple of 16 bytes, in which the model runs ``example``.

    Tries the largest arena first (a failure there is an op TFLM cannot run), then doubles from
    1 KiB until a size runs, then halves the gap down to 16 bytes (``probe_arena`` for each).

    Returns:
        {"arena_bytes", "probes", "smaller_arena_fails"} or, when the model cannot run,
        {"arena_bytes": None, "probes", "unsupported": {"message", "ops"}}.
    """
    tried: dict[int, dict] = {}

    def runs(size: int) -> bool:
        if size not in tried:
            tried[size] = probe_arena(model, size, example)
        return tried[size]["runs"]

    if not runs(LARGEST_ARENA):
        failure = tried[LARGEST_ARENA]
        return {
            "arena_bytes": None,
            "probes": 1,
            "unsupported": {"message": failure["message"], "ops": failure["ops"]},
        }
    low, high = 0, FIRST_ARENA_TRY  # low fails (0 trivially), high is the size to try
    while not runs(high):
        low, high = high, min(high * 2, LARGEST_ARENA)
    while high - low > ARENA_STEP:
        middle = (low + high) // (2 * ARENA_STEP) * ARENA_STEP
        low, high = (low, middle) if runs(middle) else (middle, high)
    return {
        "arena_bytes": high,
        "probes": len(tried),
        "smaller_arena_fails": high == ARENA_STEP or not tried[high - ARENA_STEP]["runs"],
    }


def tensor_summary(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(size) for size in detail["shape"]],
        "scale": scale,
        "zero_point": zero_point,
    }


def check_model(model_path: Path, inputs_path: Path, outputs_path: Path) -> dict:
    """Measures the arena, then runs every input in exactly that arena; writes the float32 outputs."""
    content = Path(model_path).read_bytes()
    inputs = np.load(inputs_path, allow_pickle=False)
    measured = measure_arena(content, inputs[0])
    if measured["arena_bytes"] is None:
        return measured
    model = MicroModel(content, arena_bytes=measured["arena_bytes"])
    np.save(outputs_path, model.predict(inputs), allow_pickle=False)
    return {
        **measured,
        "input": tensor_summary(model.input_detail),
        "output": tensor_summary(model.output_detail),
        "tflite_micro_version": tflite_micro_version(),
    }


def main(argv=None) -> int:
    """``measure MODEL --inputs X.npy --outputs Y.npy`` or ``probe MODEL ARENA --inputs X.npy``:
    one JSON line on stdout (the measurement, or {"runs"} for one arena size)."""
    parser = argparse.ArgumentParser(description="TensorFlow Lite Micro checks of a .tflite file")
    parser.add_argument("command", choices=("measure", "probe"))
    parser.add_argument("model", type=Path)
    parser.add_argument("arena_bytes", type=int, nargs="?", default=LARGEST_ARENA)
    parser.add_argument("--inputs", type=Path, required=True, help=".npy of the model's inputs")
    parser.add_argument("--outputs", type=Path, help=".npy the outputs are written to (measure)")
    args = parser.parse_args(argv)
    try:
        if args.command == "probe":
            example = np.load(args.inputs, allow_pickle=False)[0]
            result = probe_arena(args.model.read_bytes(), args.arena_bytes, example)
        else:
            result = check_model(args.model, args.inputs, args.outputs)
    except ValueError as error:  # tflite-micro is not installed
        result = {"unavailable": str(error)}
    print(json.dumps(result), flush=True)
    return 0
