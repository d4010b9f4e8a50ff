"""Quantization-aware training on Keras 3: the int8 arithmetic of TFLite, simulated while fine-tuning.

TFMOT's ``quantize_model`` refuses Keras 3 models, so this is ours, with its default 8-bit scheme:
per-output-channel symmetric int8 kernels for convolutions (narrow range, -127..127), per-tensor
symmetric int8 kernels for dense layers (what the converter gives a FULLY_CONNECTED), per-tensor
asymmetric int8 activations whose ranges are moving averages of the batches' min and max, batch
norm folded into the convolution before it (as the converter folds it) and ReLU/ReLU6 fused
into the layer whose output is quantized after it. The layers are in ``quantized_layers``.

Two ways to rebuild a model, chosen by its shape:

- a chain (each layer feeding the next, as the CNN classifiers are) of convolutions, dense
  layers, batch norm after them, ReLU, rescaling, pooling and dropout is rebuilt exactly as the
  converter computes it, batch norm folded and ReLU fused;
- any other functional model (the text models, the generator) is cloned with every kernel and
  lookup table fake-quantized and a range after every layer's float output (max pooling,
  dropout and reshapes keep their input's scale; softmax, tanh and sigmoid their fixed ones).
  A batch norm stays its own multiply-add, which the fake quantization between them keeps the
  converter from folding. Layers that hold sublayers (a Transformer encoder block) are
  simulated at their boundaries: their inner tensors get calibrated ranges, as in PTQ.

A layer it cannot simulate (recurrent layers, Lambda) is refused by name.
"""

import keras
import numpy as np
from keras import layers

from bigmodels.compress.quantized_layers import (
    QUANTIZED,
    ActivationQuantizer,
    QuantizedWeight,
    calibrate_ranges,
    quantized_layers,
    refresh_kernel_ranges,
)

PASS_THROUGH = (
    layers.MaxPooling2D,
    layers.Dropout,
    layers.Flatten,
    layers.Reshape,
)  # keep their input's scale
OWN_OUTPUT_RANGE = (layers.Rescaling, layers.GlobalAveragePooling2D, layers.AveragePooling2D, layers.ReLU)
FOLDABLE = (layers.Conv2D, layers.Dense)  # the chain rebuild folds a batch norm into these
FIXED_RANGE_ACTIVATIONS = ("softmax", "tanh", "sigmoid")  # the converter fixes their output scale
# TFLite quantizes recurrent cells with its own internal scheme, and a Lambda cannot be rebuilt.
REFUSED = (layers.RNN, layers.Bidirectional, layers.Lambda)

__all__ = [
    "ActivationQuantizer",
    "calibrate_ranges",
    "quantize_model",
    "quantized_layers",
    "refresh_kernel_ranges",
]


def _folded_weights(layer, batch_norm) -> list[np.ndarray]:
    """The kernel and bias of ``layer`` with ``batch_norm`` after it folded in (as the converter
    folds them): kernel * gamma / sqrt(var + eps) per output channel, bias shifted to match."""
    kernel = np.asarray(layer.kernel.numpy())
    bias = np.asarray(layer.bias.numpy()) if layer.use_bias else np.zeros(kernel.shape[-1], kernel.dtype)
    if batch_norm is None:
        return [kernel, bias]
    gamma = batch_norm.gamma.numpy() if batch_norm.scale else np.ones_like(bias)
    beta = batch_norm.beta.numpy() if batch_norm.center else np.zeros_like(bias)
    factor = gamma / np.sqrt(batch_norm.moving_variance.numpy() + batch_norm.epsilon)
    return [kernel * factor, beta + (bias - batch_norm.moving_mean.numpy()) * factor]


def _quantized_twin(layer, batch_norm, shared_ranges: bool):
    """The quantized layer for ``layer`` (linear: its activation is applied after it, unfused)."""
    config = {**layer.get_config(), "activation": None, "use_bias": True, "shared_range": shared_ranges}
    twin = QUANTIZED[type(layer)].from_config(config)
    return twin, _folded_weights(layer, batch_norm)


def _is_chain(model) -> bool:
    """Each layer takes only the one before it."""
    for previous, layer in zip(model.layers, model.layers[1:], strict=False):
        inbound = list(layer._inbound_nodes)
        sources = {id(tensor._keras_history.operation) for node in inbound for tensor in node.input_tensors}
        if len(inbound) != 1 or sources != {id(previous)}:
            return False
    return True


def _chain_rebuilds(model) -> bool:
    """Whether the exact chain rebuild (batch norm folded, ReLU fused) covers every layer."""
    if not _is_chain(model):
        return False
    for previous, layer in zip(model.layers, model.layers[1:], strict=False):
        folded = isinstance(layer, layers.BatchNormalization) and type(previous) in FOLDABLE
        if not (folded or type(layer) in FOLDABLE or isinstance(layer, PASS_THROUGH + OWN_OUTPUT_RANGE)):
            return False
        if type(layer) in FOLDABLE and _activation_name(layer) not in ("linear", "relu", "softmax"):
            return False
    return True


def _unsupported(layer) -> ValueError:
    return ValueError(
        f"quantization-aware training cannot wrap layer '{layer.name}' ({type(layer).__name__}): "
        "TFLite quantizes recurrent layers with their own internal scheme and a Lambda cannot be "
        "rebuilt; export this run with PTQ (--quantization int8) instead"
    )


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    name = keras.activations.serialize(activation) if activation is not None else "linear"
    name = name if isinstance(name, str) else name.get("config", name)
    return name or "linear"


def _activation_after(layer):
    """(fused activation layer or None, fixed-range activation layer or None) for a layer's own
    activation: a ReLU is fused (the range is taken after it); softmax, tanh and sigmoid follow
    the range, with the scale the converter fixes for them."""
    name = _activation_name(layer)
    if name == "relu":
        return layers.ReLU(name=f"{layer.name}_relu"), None
    if name in FIXED_RANGE_ACTIVATIONS:
        return None, layers.Activation(name, name=f"{layer.name}_{name}")
    return None, None


def _is_fusable_relu(layer) -> bool:
    return isinstance(layer, layers.ReLU) and not layer.negative_slope and not layer.threshold


def quantize_model(model, *, shared_ranges: bool = False) -> keras.Model:
    """A quantization-aware copy of a functional model, ready to fine-tune.

    A chain of convolutions and dense layers (the CNN classifiers) is rebuilt as the converter
    computes it: Conv2D/Dense become ``QuantizedConv2D``/``QuantizedDense`` (a BatchNormalization
    right after one is folded into it), a ReLU right after one is fused, and an
    ``ActivationQuantizer`` follows every tensor TFLite quantizes on its own: the input,
    Rescaling, average pooling, each layer's (fused) output; max pooling and dropout keep their
    input's scale, softmax its fixed one. Any other functional model is cloned with its kernels
    and tables fake-quantized and a range after each layer (see the module's docstring). Raises
    ValueError naming the first layer it cannot simulate. ``shared_ranges`` gives every kernel
    one range for all its channels (clustered models).

    Example:
        qat = quantize_model(keras.models.load_model("run/model.keras"))
        qat.compile(...); qat.fit(...)  # then convert: the int8 file takes the learned ranges
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, REFUSED):
            raise _unsupported(layer)
    if _chain_rebuilds(model):
        return _quantize_chain(model, shared_ranges)
    return _quantize_graph(model, shared_ranges)


def _input_quantizer(tensor, name: str):
    pixels = (0.0, 255.0) if tensor.dtype == "uint8" else None
    return ActivationQuantizer(fixed_range=pixels, name=f"{name}_quant")


def _quantize_chain(model, shared_ranges: bool) -> keras.Model:
    chain = model.layers
    source = model.inputs[0]
    inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype, name=chain[0].name)
    x = _input_quantizer(source, chain[0].name)(inputs)
    index = 1
    while index < len(chain):
        layer = chain[index]
        following = chain[index + 1] if index + 1 < len(chain) else None
        if type(layer) in FOLDABLE:
            batch_norm = following if isinstance(following, layers.BatchNormalization) else None
            index += 1 + (batch_norm is not None)
            twin, weights = _quantized_twin(layer, batch_norm, shared_ranges)
            x = twin(x)
            twin.set_weights([*weights, twin.kernel_range.numpy()])
            twin.folded = batch_norm is not None  # scaled per channel: see clustering.preserving_keeper
            fused, fixed = _activation_after(layer)
            if fused is None and index < len(chain) and _is_fusable_relu(chain[index]):
                fused, index = chain[index].__class__.from_config(chain[index].get_config()), index + 1
            x = ActivationQuantizer(name=f"{layer.name}_quant")(fused(x) if fused else x)
            x = fixed(x) if fixed else x
            continue
        x = layer.__class__.from_config(layer.get_config())(x)
        if isinstance(layer, OWN_OUTPUT_RANGE):
            x = ActivationQuantizer(name=f"{layer.name}_quant")(x)
        index += 1
    return keras.Model(inputs, x, name=f"{model.name}_qat")


def _graph_twin(layer, shared_ranges: bool):
    """A fresh copy of ``layer``, its quantized form where it has one. A twin whose activation
    has a fixed output range computes without it; ``fixed_activation`` names the one that follows."""
    config = layer.get_config()
    twin_class = QUANTIZED.get(type(layer))
    if twin_class is None:
        return layer.__class__.from_config(config)
    _, fixed = _activation_after(layer)
    if fixed is not None:
        config["activation"] = None
    twin = twin_class.from_config({**config, "shared_range": shared_ranges})
    twin.fixed_activation = fixed.activation.__name__ if fixed is not None else None
    return twin


def _is_float_tensor(value) -> bool:
    return hasattr(value, "dtype") and "float" in str(value.dtype)


def _quantize_graph(model, shared_ranges: bool) -> keras.Model:
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
    quantized_inputs = {
        id(tensor): _input_quantizer(tensor, tensor.name)(tensor)
        for tensor in inputs
        if _is_float_tensor(tensor)
    }

    def quantize_inputs(value):
        return quantized_inputs.get(id(value), value)

    def call(layer, *args, **kwargs):
        args, kwargs = keras.tree.map_structure(quantize_inputs, (args, kwargs))
        outputs = layer(*args, **kwargs)
        fixed = getattr(layer, "fixed_activation", None)
        plain_fixed = (
            isinstance(layer, layers.Activation) and _activation_name(layer) in FIXED_RANGE_ACTIVATIONS
        )
        if isinstance(layer, PASS_THROUGH) or plain_fixed or not _is_float_tensor(outputs):
            return outputs
        outputs = ActivationQuantizer(name=f"{layer.name}_quant")(outputs)
        return layers.Activation(fixed, name=f"{layer.name}_{fixed}")(outputs) if fixed else outputs

    twin = keras.models.clone_model(
        model,
        input_tensors=inputs if len(inputs) > 1 else inputs[0],
        clone_function=lambda layer: _graph_twin(layer, shared_ranges),
        call_function=call,
    )
    _copy_weights(model, twin)
    single = len(twin.inputs) == 1 and len(twin.outputs) == 1
    ends = (twin.inputs[0], twin.outputs[0]) if single else (twin.inputs, twin.outputs)
    return keras.Model(*ends, name=f"{model.name}_qat")


def _copy_weights(model, twin) -> None:
    """The source's weights into its quantized clone (layers keep their names); the stored
    kernel ranges are then taken from the kernels."""
    for layer in model.layers:
        if not layer.weights or isinstance(layer, keras.layers.InputLayer):
            continue
        copy = twin.get_layer(layer.name)
        values = layer.get_weights()
        if isinstance(copy, QuantizedWeight):
            values.append(copy.kernel_range.numpy())
        copy.set_weights(values)
    refresh_kernel_ranges(twin)


def describe_quantization(model) -> dict:
    """What config.json records of a quantization-aware model: the layers whose weights are
    fake-quantized, the batch norms folded, and the layers whose own weights (and inner
    tensors) are left to the converter's calibration, as PTQ would quantize them."""
    simulated = (QuantizedWeight, ActivationQuantizer, layers.BatchNormalization)
    calibrated = [
        layer.name for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer.weights and not isinstance(layer, simulated) and not isinstance(layer, keras.Model)
    ]  # fmt: skip
    return {
        "scheme": "int8: per-channel symmetric conv kernels, per-tensor symmetric dense and transposed "
        "conv kernels and lookup tables, per-tensor asymmetric activations",
        "quantized_weights": [layer.name for layer in quantized_layers(model)],
        "folded_batch_norms": [layer.name for layer in folded_layers(model)],
        "calibrated_weights": calibrated,
    }


def folded_layers(model) -> list:
    """The quantized layers of a freshly quantized model that have a batch norm folded in."""
    return [layer for layer in quantized_layers(model) if getattr(layer, "folded", False)]
