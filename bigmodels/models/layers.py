"""Layers shared by the builders."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="bigmodels")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization whose training step uses TensorFlow's fused kernel.

    Keras 3 normalizes with separate moment and normalization ops; on a CPU that made the
    compact CNN's two 14x14 BatchNorm layers a third of its training step (20.5 -> 16.5 ms per
    batch of 128 with this layer, measured on 2 cores). Inference, and anything but 4-D
    channels-last input, is Keras's own code, so saved models, TFLite export and the weights
    are exactly those of ``keras.layers.BatchNormalization``.
    """

    def call(self, inputs, training=None, mask=None):

        fusable = (
            training
            and self.trainable
            and mask is None
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.center
            and self.scale
            and keras.backend.backend() == "tensorflow"
        )
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        # bfloat16 inputs are cast to float32 first: fed to the fused kernel as they are, they made
        # the cifar10_tiny training step 2.3x slower (235 vs 100-113 ms at batch 256, 2 cores),
        # though the casts take about a tenth of the step (a TensorFlow profile).
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            tf.cast(inputs, self.gamma.dtype),
            self.gamma,
            self.beta,
            epsilon=self.epsilon,
            is_training=True,
        )[:3]
        # The kernel returns the Bessel-corrected variance; Keras averages the biased one.
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], variance.dtype)
        variance = variance * (count - 1.0) / tf.maximum(count, 2.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, inputs.dtype)


@keras.saving.register_keras_serializable(package="bigmodels")
class CodeEmbedding(keras.layers.Layer):
    """A learned vector per category of a categorical code read from the latent vector itself:
    the index of the largest of its first ``classes`` entries.

    With Gaussian latents that index is uniform over the classes, so an InfoGAN/AC-GAN code needs
    no second input: whoever samples the ordinary latent vector (the app, the exported file, a
    phone) also samples the code. Adding the category's vector to the generator's projection is
    what a dense layer on [latent, one-hot code] computes, but as a lookup (TFLite GATHER): the
    one-hot concatenation quantized badly to int8 (20 mean pixel levels from Keras, against 4.5
    for the same generator without it).
    """

    def __init__(self, classes: int, units: int, **kwargs):
        super().__init__(**kwargs)
        self.classes, self.units = int(classes), int(units)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.classes, self.units), initializer="glorot_uniform", name="embeddings"
        )

    @staticmethod
    def category(latent, classes: int):

        # tf.argmax, not keras.ops.argmax: Keras's TensorFlow form adds a negative-zero fix built
        # on BitwiseAnd, which TFLite lacks.
        return tf.argmax(latent[:, :classes], axis=-1, output_type="int32")

    def call(self, latent):
        # tf.gather, not keras.ops.take: take wraps negative indices with an int32 SELECT_V2, which
        # TFLite Micro lacks; an argmax is never negative, so the lookup is the same.
        return tf.gather(self.embeddings, self.category(latent, self.classes), axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "units": self.units}


# Test-time flip averaging (``flip_average``): a photo and its mirror image are classified as one
# batch and their probabilities averaged. Training is untouched (the layers pass their input
# through): the model learns from flipped photos anyway (shift_flip), and at inference the two
# views' errors partly cancel. On ants/bees (--backbone cifar10_tiny, retrained on all photos) the
# int8 file went from 74.5 / 75.8 / 73.9% to 76.5 / 75.2 / 76.5% (seeds 0-2), for twice the
# compute; from scratch it gave nothing (71.5% -> 71.9%), so only the small-set transfer uses it.
@keras.saving.register_keras_serializable(package="bigmodels")
class MirrorPairs(keras.layers.Layer):
    """At inference, the batch followed by its horizontally mirrored copy (2N images); a gather
    along the width, which every TFLite runtime (Micro included) has."""

    def call(self, inputs, training=None):
        if training:
            return inputs
        mirrored = keras.ops.take(inputs, list(range(inputs.shape[2] - 1, -1, -1)), axis=2)
        return keras.ops.concatenate([inputs, mirrored], axis=0)


@keras.saving.register_keras_serializable(package="bigmodels")
class AveragePairs(keras.layers.Layer):
    """At inference, the mean of the first and second halves of the batch (``MirrorPairs``' two
    views of each image)."""

    def call(self, inputs, training=None):
        if training:
            return inputs
        # A split, not a reshape to (2, N, classes): TFLite Micro's RESHAPE could not prepare it.
        first, second = keras.ops.split(inputs, 2, axis=0)
        return (first + second) * 0.5


def mirrored_views(x, flip_average: bool):
    """``x`` followed by its mirror image at inference when ``flip_average`` (else ``x``)."""
    return MirrorPairs(name="mirror_pairs")(x) if flip_average else x


def averaged_views(probabilities, flip_average: bool):
    """The two views' probabilities averaged when ``flip_average`` (else as they are)."""
    return AveragePairs(name="average_pairs")(probabilities) if flip_average else probabilities


# Train at a lower resolution than the model infers at (Touvron et al. 2019, "Fixing the train-test
# resolution discrepancy"): a random-resized crop of a quarter to all of a photo, resized back,
# shows objects larger than the whole photo does at the same resolution, so the model sees them
# at their trained size when it infers at a higher resolution than it trained at.
@keras.saving.register_keras_serializable(package="bigmodels")
class TrainingResize(keras.layers.Layer):
    """Bilinear resizing to ``size`` (height, width) at inference and to ``training_size`` while
    training; what follows must not depend on the spatial size (convolutions, global pooling)."""

    def __init__(self, size, training_size, **kwargs):
        super().__init__(**kwargs)
        self.size, self.training_size = tuple(size), tuple(training_size)

    def call(self, inputs, training=None):
        side = self.training_size if training else self.size
        # keras.ops.image.resize, as keras.layers.Resizing: TFLite's RESIZE_BILINEAR at inference.
        return keras.ops.image.resize(inputs, side, interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "training_size": list(self.training_size)}


def resized(x, size, training_size, input_size):
    """``x`` resized inside the model: to ``size`` at inference and ``training_size`` while training
    (a plain ``Resizing`` layer when the two agree; ``x`` itself when no resizing is needed)."""
    if tuple(training_size) != tuple(size):
        return TrainingResize(size, training_size, name="resize")(x)
    if tuple(size) != tuple(input_size):
        return keras.layers.Resizing(*size, name="resize")(x)
    return x
