"""SavedModel and TFLite conversion (always through a SavedModel), for every quantization mode."""

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bigmodels.convert.int16x8 import convert_int16x8_integer_input
from bigmodels.convert.names import shorten_tensor_names
from bigmodels.models.layers import MirrorPairs

QUANTIZATION_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")


DEFAULT_IMAGE_MODES = ("float32", "dynamic", "float16", "int8")


DEFAULT_TEXT_MODES = QUANTIZATION_MODES


def parse_quantization(text: str, allowed=QUANTIZATION_MODES) -> list[str]:
    """Parses "float32,int8" into a list, refusing unknown modes with a clear message."""
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in allowed]
    if unknown or not modes:
        raise ValueError(
            f"unknown quantization mode(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(allowed)}"
        )
    return modes


QAT_MODES = ("int8",)  # a quantization-aware model's fake-quant ranges are int8 scales


def parse_qat_quantization(text: str | None) -> list[str]:
    """The modes a quantization-aware run exports: int8 only, refused in one line otherwise."""
    modes = parse_quantization(text or ",".join(QAT_MODES))
    others = [mode for mode in modes if mode not in QAT_MODES]
    if others:
        raise ValueError(
            f"quantization-aware training makes a full-int8 file (its learned ranges are int8 scales); "
            f"--quantization {','.join(others)} would ignore them: use --quantization int8, or leave out QAT"
        )
    return modes


def float_input_twin(model):
    """The same network with a float32 input, for full-integer conversion.

    A Keras functional model casts its input to the Input's dtype, so a uint8 model cannot be
    calibrated on float pixel values; full-integer TFLite needs a float input to quantize.
    """

    twin_input = keras.Input(shape=model.input_shape[1:], dtype="float32", name=model.inputs[0].name)
    twin = keras.models.clone_model(model, input_tensors=twin_input)
    twin.set_weights(model.get_weights())
    return twin


def export_saved_model(model, directory: Path, *, tokenizer=None, batch: int | None = None) -> Path:
    """Writes a SavedModel whose serving signature takes the model's own input dtype, or raw
    strings when a (keras-hub) ``tokenizer`` is given: the tokenizer then runs inside the graph.

    The endpoint calls the model with ``training=False`` explicitly: ``model.export`` traces a
    model that contains a Resizing layer with BatchNormalization in training mode (batch
    statistics and moving-average updates in the graph), which TFLite then runs wrongly.
    ``batch``: a fixed batch size for the signature (None: any).
    """

    archive = keras.export.ExportArchive()
    archive.track(model)
    if tokenizer is None:
        spec = tf.TensorSpec([batch, *model.input_shape[1:]], dtype=model.inputs[0].dtype, name="inputs")
        archive.add_endpoint("serve", lambda inputs: model(inputs, training=False), input_signature=[spec])
    else:
        if not tokenizer.built:
            tokenizer.build(None)  # a tokenizer has no weights; export still asks for a built layer
        archive.track(tokenizer)
        spec = tf.TensorSpec([None], dtype=tf.string, name="texts")
        archive.add_endpoint(
            "serve", lambda texts: model(tokenizer(texts), training=False), input_signature=[spec]
        )
    archive.write_out(str(directory), verbose=False)
    return directory


def _calibration_batches(examples: np.ndarray):
    """The converter's representative dataset: one example per batch."""

    def batches():
        for example in examples:
            yield [np.asarray(example[None])]

    return batches


def convert_tflite(
    model, mode: str, representative_inputs: np.ndarray, *, keep_tensor_names: bool = False
) -> bytes:
    """Converts a Keras model to TFLite through a SavedModel.

    Args:
        model: the trained Keras model (uint8 images or int32 ids in).
        mode: "float32", "dynamic" (int8 weights), "float16" (float16 weights), "int8" (full
            integer, int8 input and output) or "int16x8" (16-bit activations, 8-bit weights).
        representative_inputs: training examples used to calibrate int8/int16x8 ranges.
        keep_tensor_names: keep the converter's long tensor names (to read the graph in a
            viewer); by default they are shortened (``shorten_tensor_names``).

    Returns:
        The TFLite flatbuffer bytes.
    """
    flatbuffer = _convert(model, mode, representative_inputs)
    return flatbuffer if keep_tensor_names else shorten_tensor_names(flatbuffer)


def _convert(model, mode: str, representative_inputs: np.ndarray) -> bytes:
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"unknown quantization mode '{mode}'; choose from {', '.join(QUANTIZATION_MODES)}")
    full_integer = mode in ("int8", "int16x8")
    # uint8 images are calibrated as float pixel values (token ids stay integers).
    floats_in = full_integer and model.inputs[0].dtype == "uint8"
    source = float_input_twin(model) if floats_in else model
    integer_ids_in = model.inputs[0].dtype in ("int32", "int64")
    with tempfile.TemporaryDirectory(prefix="bigmodels-savedmodel-") as directory:
        # A model that classifies mirrored pairs doubles its batch inside: TFLite Micro trusts the
        # file's tensor shapes, where a dynamic batch is written as 1, so the pairs' second half
        # went uncomputed. A batch of 1 makes every shape static ([2, ...] after the pairing);
        # LiteRT still resizes the input to any batch.
        export_saved_model(source, Path(directory), batch=1 if _pairs_views(model) else None)
        if mode == "int16x8" and integer_ids_in:
            return convert_int16x8_integer_input(directory, _calibration_batches(representative_inputs))
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if full_integer:
            converter.representative_dataset = _calibration_batches(
                representative_inputs.astype(np.float32) if floats_in else representative_inputs
            )
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if floats_in:
                converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        if mode == "int16x8":
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
        return converter.convert()


def _pairs_views(model) -> bool:
    """Whether ``model`` classifies each image with its mirror image (``MirrorPairs``)."""
    return any(isinstance(layer, MirrorPairs) for layer in model._flatten_layers(include_self=False))
