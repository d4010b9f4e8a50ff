"""The layers quantization-aware training puts in a model: fake quantization as TFLite's int8
converter will compute it. The fake-quant ops are TensorFlow's
``fake_quant_with_min_max_vars(_per_channel)``: the converter reads them, so the int8 file's
scales are the learned ranges, not a calibration's.

- ``ActivationQuantizer``: a per-tensor asymmetric int8 range on an activation (moving average
  of the batches' min and max, TFMOT's MovingAverageQuantizer).
- Layers whose weight is fake-quantized symmetrically (narrow range, -127..127), the range taken
  from the weight as it is (TFMOT's LastValueQuantizer): ``QuantizedConv2D`` (per output
  channel, as the converter quantizes CONV_2D), ``QuantizedDense`` and ``QuantizedConv2DTranspose``
  (per tensor: FULLY_CONNECTED, TRANSPOSE_CONV), and the lookup tables ``QuantizedEmbedding``,
  ``QuantizedCodeEmbedding`` and ``QuantizedNgramBag`` (per tensor: a GATHER's table is one tensor).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from bigmodels.models.layers import CodeEmbedding
from bigmodels.models.text import HashedNgramBag

EMA_DECAY = 0.99  # TFMOT uses 0.999 over a full training; a fine-tune of a few epochs needs faster


@keras.saving.register_keras_serializable(package="bigmodels")
class ActivationQuantizer(keras.layers.Layer):
    """Per-tensor asymmetric int8 fake quantization of an activation (TFMOT's MovingAverageQuantizer).

    Training moves [min, max] towards each batch's range (the first batch sets it); inference uses
    the stored range, which is what the converter writes as the tensor's scale and zero point.
    ``fixed_range`` pins it (uint8 pixels: [0, 255], an input scale of exactly 1). A Keras mask
    passes through (the embedding bag's pooling needs the embedding's).
    """

    def __init__(self, fixed_range=None, **kwargs):
        super().__init__(**kwargs)
        self.fixed_range = None if fixed_range is None else [float(v) for v in fixed_range]
        self.supports_masking = True
        self.observed = None  # (min, max) seen while calibrating; None: quantizing

    def build(self, input_shape):
        low, high = self.fixed_range or (0.0, 0.0)
        self.range_min = self.add_weight(shape=(), initializer=keras.initializers.Constant(low),
                                         trainable=False, name="range_min")  # fmt: skip
        self.range_max = self.add_weight(shape=(), initializer=keras.initializers.Constant(high),
                                         trainable=False, name="range_max")  # fmt: skip
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

    def call(self, inputs, training=None):
        inputs = tf.cast(inputs, "float32")
        if self.observed is not None:  # calibrating (eagerly): the float value passes unchanged
            low, high = self.observed
            self.observed = (min(low, float(tf.reduce_min(inputs))), max(high, float(tf.reduce_max(inputs))))
            return inputs
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


class QuantizedWeight:
    """What the quantized layers share: a stored symmetric range for their one quantized weight
    (``weight_name``), per output channel or for the whole tensor.

    ``shared_range``: every output channel gets the kernel's one range (still written per channel,
    so the converter keeps per-channel form). A clustered kernel then maps its K shared values to
    K int8 codes for the whole kernel, which gzip sees: per-channel scales would give K codes per
    channel, up to K times the channels over the kernel.
    """

    per_channel = True
    weight_name = "kernel"

    def __init__(self, *args, shared_range: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared_range = bool(shared_range)

    def get_config(self):
        return {**super().get_config(), "shared_range": self.shared_range}

    # Keras's layers save only their own weights; the plain Layer's way saves every variable.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    @property
    def quantized_weight(self):
        return getattr(self, self.weight_name)

    def build(self, input_shape):
        super().build(input_shape)  # the Keras layer's own weights, then the stored range
        size = self.quantized_weight.shape[-1] if self.per_channel else 1
        self.kernel_range = self.add_weight(shape=(size,), initializer="ones", trainable=False,
                                            name="kernel_range")  # fmt: skip

    def kernel_bound(self):
        """max |w| per output channel (or over the tensor): the symmetric range's half-width."""
        weight = self.quantized_weight
        axes = list(range(len(weight.shape) - 1)) if self.per_channel else None
        bound = ops.max(ops.abs(weight), axis=axes)
        if self.shared_range:
            bound = ops.max(bound) * ops.ones_like(bound)
        return ops.maximum(ops.reshape(bound, (-1,)), 1e-8)

    def quantized_kernel(self, training):
        if getattr(self, "calibrating", False):  # the converter calibrates PTQ on float weights
            return self.quantized_weight
        if training:  # TFMOT's LastValueQuantizer: the range of the weight being used
            self.kernel_range.assign(tf.stop_gradient(self.kernel_bound()))
        bound = self.kernel_range
        if self.per_channel:
            return tf.quantization.fake_quant_with_min_max_vars_per_channel(
                self.quantized_weight, -bound, bound, num_bits=8, narrow_range=True
            )
        return tf.quantization.fake_quant_with_min_max_vars(
            self.quantized_weight, -bound[0], bound[0], num_bits=8, narrow_range=True
        )


def _with_bias_and_activation(layer, outputs):
    if layer.use_bias:
        outputs = ops.add(outputs, layer.bias)
    return layer.activation(outputs) if layer.activation is not None else outputs


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedConv2D(QuantizedWeight, layers.Conv2D):
    """Conv2D whose kernel is fake-quantized per output channel (batch norm already folded in)."""

    def call(self, inputs, training=None):
        return _with_bias_and_activation(self, self.convolution_op(inputs, self.quantized_kernel(training)))


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedDense(QuantizedWeight, layers.Dense):
    """Dense whose kernel is fake-quantized per tensor, as the converter quantizes FULLY_CONNECTED."""

    per_channel = False

    def call(self, inputs, training=None):
        return _with_bias_and_activation(self, ops.matmul(inputs, self.quantized_kernel(training)))


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedConv2DTranspose(QuantizedWeight, layers.Conv2DTranspose):
    """Conv2DTranspose whose kernel is fake-quantized per tensor (its output channels are the
    kernel's second-last axis, which the per-channel fake-quant op cannot take)."""

    per_channel = False

    def call(self, inputs, training=None):
        outputs = ops.conv_transpose(
            inputs, self.quantized_kernel(training), strides=list(self.strides), padding=self.padding,
            output_padding=self.output_padding, dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )  # fmt: skip
        return _with_bias_and_activation(self, outputs)


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedEmbedding(QuantizedWeight, layers.Embedding):
    """Embedding whose table is fake-quantized per tensor (the int8 GATHER's one table scale)."""

    per_channel = False
    weight_name = "embeddings"

    def call(self, inputs, training=None):
        ids = ops.cast(inputs, "int32")
        return tf.gather(self.quantized_kernel(training), ids, axis=0)


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedCodeEmbedding(QuantizedWeight, CodeEmbedding):
    """The generator's code vectors, fake-quantized per tensor."""

    per_channel = False
    weight_name = "embeddings"

    def call(self, latent, training=None):
        return tf.gather(self.quantized_kernel(training), self.category(latent, self.classes), axis=0)


@keras.saving.register_keras_serializable(package="bigmodels")
class QuantizedNgramBag(QuantizedWeight, HashedNgramBag):
    """The n-gram bag whose table is fake-quantized per tensor."""

    per_channel = False
    weight_name = "table"

    def call(self, ids, training=None):
        return self.bag(ids, self.quantized_kernel(training))


QUANTIZED = {
    layers.Conv2D: QuantizedConv2D,
    layers.Dense: QuantizedDense,
    layers.Conv2DTranspose: QuantizedConv2DTranspose,
    layers.Embedding: QuantizedEmbedding,
    CodeEmbedding: QuantizedCodeEmbedding,
    HashedNgramBag: QuantizedNgramBag,
}


def calibrate_ranges(model, inputs, batch_size: int = 64) -> None:
    """Sets every learned activation range to the min and max of what reaches it over ``inputs``,
    in inference mode with the fake quantization of activations and weights off: the converter's
    PTQ calibration, which runs the float model. QAT then starts where PTQ is, not from the first
    training batch's ranges (calibrated through int8-rounded kernels, the MNIST CNN's ranges came
    out 0.2-0.4% off PTQ's and its int8 file one test digit worse)."""
    quantizers = [
        layer for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, ActivationQuantizer) and layer.fixed_range is None
    ]  # fmt: skip
    weighted = quantized_layers(model)
    for quantizer in quantizers:
        quantizer.observed = (0.0, 0.0)  # the range always holds zero, as the converter's does
    for layer in weighted:
        layer.calibrating = True
    try:
        for start in range(0, len(inputs), batch_size):
            model(inputs[start : start + batch_size], training=False)
        for quantizer in quantizers:
            quantizer.range_min.assign(quantizer.observed[0])
            quantizer.range_max.assign(quantizer.observed[1])
            quantizer.seen.assign(1.0)
    finally:
        for quantizer in quantizers:
            quantizer.observed = None
        for layer in weighted:
            layer.calibrating = False


def quantized_layers(model) -> list:
    """The layers whose weights are fake-quantized, nested networks included (a DCGAN's generator
    and its weight average)."""
    found = model._flatten_layers(include_self=False, recursive=True)
    return [layer for layer in found if isinstance(layer, QuantizedWeight)]


def refresh_kernel_ranges(model) -> None:
    """Sets every stored weight range from the weight as it now is (after the last optimizer step
    and any callback that re-projects the weight), so Keras and the converter use the same one."""
    for layer in quantized_layers(model):
        layer.kernel_range.assign(layer.kernel_bound())
