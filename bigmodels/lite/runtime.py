"""Runs TFLite files on ai-edge-litert with numpy only (no TensorFlow), as a device would."""

import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def quiet_stderr():
    """Mutes file descriptor 2 (the C++ runtime's info lines); Python exceptions still raise."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class TFLiteModel:
    """A TFLite model on ``ai_edge_litert``'s interpreter that takes and returns plain values.

    Quantized inputs and outputs are handled here: real values are quantized with the
    tensor's scale and zero point on the way in, and dequantized on the way out, so every
    quantization mode is called the same way.

    Example:
        model = TFLiteModel("export/model_int8.tflite")
        probabilities = model.predict(images_uint8)  # (N, num_classes) float32
    """

    def __init__(self, model: str | Path | bytes, *, num_threads: int = 1, xnnpack: bool = True):
        """``xnnpack=False`` runs TFLite's builtin kernels only: the integer arithmetic TFLite Micro's
        kernels share (but for rare one-step differences in int8 SOFTMAX); XNNPACK, the default,
        rounds int8 differently, by a few steps on some inputs."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        content = model if isinstance(model, bytes) else Path(model).read_bytes()
        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        with quiet_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
            self._interpreter = Interpreter(
                model_content=content, num_threads=num_threads, experimental_op_resolver_type=resolver
            )
            self._interpreter.allocate_tensors()
        self.input_detail = self._interpreter.get_input_details()[0]
        self.output_detail = self._interpreter.get_output_details()[0]
        self._batch = int(self.input_detail["shape"][0])

    @property
    def input_dtype(self):
        return np.dtype(self.input_detail["dtype"])

    def _quantize_input(self, values: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        scale, zero_point = self.input_detail["quantization"]
        if np.issubdtype(dtype, np.floating):
            return values.astype(dtype)
        if scale == 0.0 or np.issubdtype(values.dtype, np.integer) and values.dtype == dtype:
            return values.astype(dtype)  # raw integer input (uint8 pixels, token ids)
        limits = np.iinfo(dtype)
        quantized = np.round(values.astype(np.float64) / scale + zero_point)
        return np.clip(quantized, limits.min, limits.max).astype(dtype)

    def _dequantize_output(self, values: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output_detail["quantization"]
        if scale == 0.0:
            return values.astype(np.float32)
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(
                self.input_detail["index"], [batch, *self.input_detail["shape"][1:]]
            )
            self._interpreter.allocate_tensors()
            self._batch = batch

    def predict(self, inputs: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Runs the model on a batch of inputs and returns float32 outputs."""
        outputs = []
        for start in range(0, len(inputs), batch_size):
            chunk = self._quantize_input(np.asarray(inputs[start : start + batch_size]))
            self._resize(len(chunk))
            self._interpreter.set_tensor(self.input_detail["index"], chunk)
            self._interpreter.invoke()
            outputs.append(self._dequantize_output(self._interpreter.get_tensor(self.output_detail["index"])))
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def latency_ms(self, example: np.ndarray, *, repeats: int = 200, warmup: int = 20) -> dict:
        """Median and p90 wall time of one single-example invoke, in milliseconds."""
        self._resize(1)
        value = self._quantize_input(np.asarray(example)[None])
        timings = []
        for index in range(warmup + repeats):
            started = time.perf_counter()
            self._interpreter.set_tensor(self.input_detail["index"], value)
            self._interpreter.invoke()
            self._interpreter.get_tensor(self.output_detail["index"])
            if index >= warmup:
                timings.append((time.perf_counter() - started) * 1000.0)
        return {"p50": float(np.median(timings)), "p90": float(np.percentile(timings, 90))}
