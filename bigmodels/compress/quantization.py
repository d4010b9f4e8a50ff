"""Quantization-aware training on Keras 3: the int8 arithmetic of TFLite, simulated while fine-tuning.

TFMOT's ``quantize_model`` refuses Keras 3 models, so this is ours, with its default 8-bit scheme:
per-output-channel symmetric int8 kernels for convolutions (narrow range, -127..127), per-tensor
symmetric int8 kernels for dense layers (what the converter gives a FULLY_CONNECTED), per-tensor
asymmetric int8 activations whose ranges are moving averages of the batches' min and max, batch
norm folded into the convolution before it (as the converter folds it) and ReLU/ReLU6 fused
into the layer whose output is quantized after it. The fake-quant ops are TensorFlow's
``fake_quant_with_min_max_vars(_per_channel)``: the TFLite converter reads them, so the int8
file's scales are the learned ranges, not a calibration's.

``quantize_model`` rebuilds a chain-shaped functional model (each layer feeding the next, as the
CNN classifiers are) from these layers; a layer it cannot simulate is refused by name.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

EMA_DECAY = 0.99  # TFMOT uses 0.999 over a full training; a fine-tune of a few epochs needs faster
PASS_THROUGH = (
    layers.MaxPooling2D,
    layers.Dropout,
    layers.Flatten,
    layers.Reshape,
)  # keep their input's scale
OWN_OUTPUT_RANGE = (layers.Rescaling, layers.GlobalAveragePooling2D, layers.AveragePooling2D, layers.ReLU)


@keras.saving.register_keras_serializable(package="bigmodels")
class ActivationQuantizer(keras.layers.Layer):
    """Per-tensor asymmetric int8 fake quantization of an activation (TFMOT's MovingAverageQuantizer).

    Training moves [min, max] towards each batch's range (the first batch sets it); inference uses
    the stored range, which is what the converter writes as the tensor's scale and zero point.
    ``fixed_range`` pins it (uint8 pixels: [0, 255], an input scale of exactly 1).
    """

    def __init__(self, fixed_range=None, **kwargs):
        super().__init__(**kwargs)
        self.fixed_range = None if fixed_range is None else [float(v) for v in fixed_range]

    def build(self, input_shape):
        low, high = self.fixed_range or (0.0, 0.0)
        self.range_min = self.add_weight(shape=(), initializer=keras.initializers.Constant(low),
                                         trainable=False, name="range_min")  # fmt: skip
        self.range_max = self.add_weight(shape=(), initializer=keras.initializers.Constant(high),
                                         trainable=False, name="range_max")  # fmt: skip
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

    def call(self, inputs, training=None):
        inputs = tf.cast(inputs, "float32")
        if training and self.fixed_range is None:
            low = tf.minimum(tf.reduce_min(inputs), 0.0)
            high = tf.maximum(tf.reduce_max(inputs), 0.0)
            decay = EMA_DECAY * tf.minimum(self.seen, 1.0)  # the first batch sets the range
            self.range_min.assign(self.range_min * decay + low * (1.0 - decay))
            self.range_max.assign(self.range_max * decay + high * (1.0 - decay))
            self.seen.assign(1.0)
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, self.range_min, self.range_max, num_bits=8, narrow_range=False
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fixed_range": self.fixed_range}


class _QuantizedKernel:
    """What the quantized layers share: a stored symmetric range per output channel (or one).

    ``shared_range``: every output channel gets the kernel's one range (still written per channel,
    so the converter keeps per-channel form). A clustered kernel then maps its K shared values to
    K int8 codes for the whole kernel, which gzip sees: per-channel scales would give K codes per
    channel, up to K times the channels over the kernel.
    """

    per_channel = True

    def __init__(self, *args, shared_range: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_range = bool(shared_range)

    def get_config(self):
        return {**super().get_config(), "shared_range": self.shared_range}

    # Keras's Conv2D and Dense save only kernel and bias; the plain Layer's way saves every variable.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def build(self, input_shape):
        super().build(input_shape)  # the Keras layer's kernel and bias, then the stored range
        size = self.kernel.shape[-1] if self.per_channel else 1
        self.kernel_range = self.add_weight(shape=(size,), initializer="ones", trainable=False,
                                            name="kernel_range")  # fmt: skip

    def kernel_bound(self):
        """max |w| per output channel (or over the kernel): the symmetric range's half-width."""
        axes = list(range(len(self.kernel.shape) - 1)) if self.per_channel else None
        bound = ops.max(ops.abs(self.kernel), axis=axes)
        if self.shared_range:
            bound = ops.max(bound) * ops.ones_like(bound)
        return ops.maximum(ops.reshape(bound, (-1,)), 1e-8)

    def quantized_kernel(self, training):
        if training:  # TFMOT's LastValueQuantizer: the range of the kernel being used
            self.kernel_range.assign(tf.stop_gradient(self.kernel_bound()))
        bound = self.kernel_range
        if self.per_channel:
            return tf.quantization.fake_quant_with_min_max_vars_per_channel(
                self.kernel, -bound, bound, num_bits=8, narrow_range=True
            )
        return tf.quantization.fake_quant_with_min_max_vars(
            self.kernel, -bound[0], bound[0], num_bits=8, narrow_range=True
        )


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedConv2D(_QuantizedKernel, keras.layers.Conv2D):
    """Conv2D whose kernel is fake-quantized per output channel (batch norm already folded in)."""

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self.quantized_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedDense(_QuantizedKernel, keras.layers.Dense):
    """Dense whose kernel is fake-quantized per tensor, as the converter quantizes FULLY_CONNECTED."""

    per_channel = False

    def call(self, inputs, training=None):
        outputs = ops.matmul(inputs, self.quantized_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


QUANTIZED = {layers.Conv2D: QuantizedConv2D, layers.Dense: QuantizedDense}


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


def _check_chain(model) -> list:
    for previous, layer in zip(model.layers, model.layers[1:], strict=False):
        inbound = [node for node in layer._inbound_nodes]
        sources = {id(tensor._keras_history.operation) for node in inbound for tensor in node.input_tensors}
        if len(inbound) != 1 or sources != {id(previous)}:
            raise ValueError(
                f"quantization-aware training simulates chain-shaped models (each layer feeding the "
                f"next); layer '{layer.name}' ({type(layer).__name__}) does not take only "
                f"'{previous.name}'; export this run with PTQ (--quantization int8) instead"
            )
    return model.layers


def _unsupported(layer) -> ValueError:
    return ValueError(
        f"quantization-aware training cannot wrap layer '{layer.name}' ({type(layer).__name__}): "
        "it simulates Conv2D, Dense, BatchNormalization after them, ReLU, Rescaling, pooling and "
        "Dropout; export this run with PTQ (--quantization int8) instead"
    )


def _activation_after(layer):
    """(fused activation layer or None, softmax layer or None) for a layer's own activation."""
    name = keras.activations.serialize(layer.activation) if layer.activation is not None else "linear"
    name = name if isinstance(name, str) else name.get("config", name)
    if name in ("linear", None):
        return None, None
    if name == "relu":
        return layers.ReLU(name=f"{layer.name}_relu"), None
    if name == "softmax":
        return None, layers.Softmax(name=f"{layer.name}_softmax")
    raise _unsupported(layer)


def _is_fusable_relu(layer) -> bool:
    return isinstance(layer, layers.ReLU) and not layer.negative_slope and not layer.threshold


def quantize_model(model, *, shared_ranges: bool = False) -> keras.Model:
    """A quantization-aware copy of a chain-shaped functional model, ready to fine-tune.

    Conv2D/Dense become ``QuantizedConv2D``/``QuantizedDense`` (a BatchNormalization right after
    one is folded into it), a ReLU right after one is fused (the range is taken after it), and an
    ``ActivationQuantizer`` follows every tensor TFLite quantizes on its own: the input, Rescaling,
    average pooling, each layer's (fused) output; max pooling and dropout keep their input's scale,
    softmax its fixed one. Raises ValueError naming the first layer it cannot simulate.
    ``shared_ranges`` gives every kernel one range for all its channels (clustered models).

    Example:
        qat = quantize_model(keras.models.load_model("run/model.keras"))
        qat.compile(...); qat.fit(...)  # then convert: the int8 file takes the learned ranges
    """
    chain = _check_chain(model)
    source = model.inputs[0]
    inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype, name=chain[0].name)
    pixels = (0.0, 255.0) if source.dtype == "uint8" else None
    x = ActivationQuantizer(fixed_range=pixels, name=f"{chain[0].name}_quant")(inputs)
    index = 1
    while index < len(chain):
        layer = chain[index]
        following = chain[index + 1] if index + 1 < len(chain) else None
        if type(layer) in QUANTIZED:
            batch_norm = following if isinstance(following, layers.BatchNormalization) else None
            index += 1 + (batch_norm is not None)
            twin, weights = _quantized_twin(layer, batch_norm, shared_ranges)
            x = twin(x)
            twin.set_weights([*weights, twin.kernel_range.numpy()])
            twin.folded = batch_norm is not None  # scaled per channel: see clustering.preserving_keeper
            fused, softmax = _activation_after(layer)
            if fused is None and index < len(chain) and _is_fusable_relu(chain[index]):
                fused, index = chain[index].__class__.from_config(chain[index].get_config()), index + 1
            x = ActivationQuantizer(name=f"{layer.name}_quant")(fused(x) if fused else x)
            x = softmax(x) if softmax else x
            continue
        if not isinstance(layer, PASS_THROUGH + OWN_OUTPUT_RANGE):
            raise _unsupported(layer)
        x = layer.__class__.from_config(layer.get_config())(x)
        if isinstance(layer, OWN_OUTPUT_RANGE):
            x = ActivationQuantizer(name=f"{layer.name}_quant")(x)
        index += 1
    return keras.Model(inputs, x, name=f"{model.name}_qat")


def quantized_layers(model) -> list:
    """The layers whose kernels are fake-quantized."""
    return [layer for layer in model.layers if isinstance(layer, _QuantizedKernel)]


def folded_layers(model) -> list:
    """The quantized layers of a freshly quantized model that have a batch norm folded in."""
    return [layer for layer in quantized_layers(model) if getattr(layer, "folded", False)]


def refresh_kernel_ranges(model) -> None:
    """Sets every stored kernel range from the kernel as it now is (after the last optimizer step
    and any callback that re-projects the kernel), so Keras and the converter use the same one."""
    for layer in quantized_layers(model):
        layer.kernel_range.assign(layer.kernel_bound())
