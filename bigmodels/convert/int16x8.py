"""16-bit-activation (int16x8) TFLite conversion for models whose input is integer token ids.

TensorFlow's converter cannot do this on its own (TF 2.21, the same failure as
tensorflow/tensorflow#60799): its 16x8 quantizer asks for calibration ranges of the int32
ids feeding the embedding GATHER, which calibration never records, and stops. Two more
problems follow once that is passed: its int16 SQUARED_DIFFERENCE (inside LayerNormalization)
has no int16 kernel in the runtime, and the attention mask's -1e9 fill gives the softmax input
a range so wide that every real score rounds to the same int16 value.

So this module runs the converter's own steps by hand, fixing each on the way:
float TFLite -> SQUARED_DIFFERENCE rewritten as SUB then MUL -> calibration -> ranges for the
integer tensors (never used: they are not quantized) and a floor for mask-filled ranges ->
the 16x8 quantizer, with float fallback for ops that have no 16-bit kernel.
"""

import copy

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated
from tensorflow.lite.python.optimize import calibrator
from tensorflow.lite.tools import flatbuffer_utils

# A calibrated minimum below this is a mask fill value (-1e9), not a real activation.
MASK_FILL_THRESHOLD = -1e4


def _schema():

    return schema_py_generated


def _opcode_index(model, builtin: int) -> int:
    schema = _schema()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _operator(opcode_index: int, inputs: list[int], outputs: list[int], kind: str):
    schema = _schema()
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, inputs, outputs
    op.builtinOptionsType = getattr(schema.BuiltinOptions, f"{kind}Options")
    op.builtinOptions = getattr(schema, f"{kind}OptionsT")()
    return op


def _rewrite_squared_difference(model) -> None:
    """(a - b)^2 as SUB then MUL, both of which have int16 kernels."""
    schema = _schema()
    operator = schema.BuiltinOperator
    squared = [
        index
        for index, code in enumerate(model.operatorCodes)
        if max(code.builtinCode, code.deprecatedBuiltinCode) == operator.SQUARED_DIFFERENCE
    ]
    if not squared:
        return
    multiply = _opcode_index(model, operator.MUL)
    for index in squared:  # reuse the entry, so no unused opcode is left behind
        code = model.operatorCodes[index]
        code.builtinCode = code.deprecatedBuiltinCode = operator.SUB
        code.version = 1
    for subgraph in model.subgraphs:
        rewritten = []
        for op in subgraph.operators:
            if op.opcodeIndex not in squared:
                rewritten.append(op)
                continue
            difference = copy.deepcopy(subgraph.tensors[op.outputs[0]])
            difference.name = (difference.name or b"") + b"/difference"
            difference.quantization = None
            subgraph.tensors.append(difference)
            difference_index = len(subgraph.tensors) - 1
            subtract = _operator(op.opcodeIndex, list(op.inputs), [difference_index], "Sub")
            square = _operator(multiply, [difference_index] * 2, list(op.outputs), "Mul")
            rewritten += [subtract, square]
        subgraph.operators = rewritten


def _fix_calibrated_ranges(model) -> None:
    schema = _schema()
    integer_types = (schema.TensorType.INT32, schema.TensorType.INT64, schema.TensorType.BOOL)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            quantization = tensor.quantization
            has_range = quantization is not None and quantization.min is not None and len(quantization.min)
            if tensor.type in integer_types and not has_range:
                quantization = quantization or schema.QuantizationParametersT()
                quantization.min, quantization.max = [0.0], [1.0]
                tensor.quantization = quantization
            elif has_range and len(quantization.min) == 1 and quantization.min[0] < MASK_FILL_THRESHOLD:
                # The fill saturates to this floor, where exp() is already 0 in a softmax.
                quantization.min = [-max(64.0, 4.0 * abs(float(quantization.max[0])))]


def convert_int16x8_integer_input(saved_model_dir: str, representative_dataset) -> bytes:
    """int16 activations, int8 weights, int32 ids in, float32 probabilities out.

    Args:
        saved_model_dir: a SavedModel whose serving signature takes integer ids.
        representative_dataset: a callable yielding ``[ids]`` batches, as the converter takes.

    Returns:
        The TFLite flatbuffer bytes.
    """

    float_model = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir).convert()
    model = flatbuffer_utils.convert_bytearray_to_object(float_model)
    _rewrite_squared_difference(model)
    rewritten = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    calibrated = calibrator.Calibrator(calibrator.add_intermediate_tensors(rewritten)).calibrate(
        representative_dataset
    )
    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    _fix_calibrated_ranges(model)
    fixed = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    quantized = calibrator.Calibrator(fixed)._calibrator.QuantizeModel(
        np.dtype(np.float32).num,  # input: the ids stay int32 (only float inputs are quantized)
        np.dtype(np.float32).num,  # output: probabilities as float32
        True,  # allow float fallback for ops without an int16 kernel (mask logic, DIV)
        np.dtype(np.int16).num,  # activations
        np.dtype(np.int64).num,  # bias type for 16-bit activations
        False,  # per-channel weights
        False,
    )
    return bytes(quantized)
