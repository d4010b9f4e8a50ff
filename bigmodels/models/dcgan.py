"""DCGAN (Radford et al., 2015): a generator and a discriminator trained by a custom train_step.

The generator maps a latent vector to an image in [-1, 1] (tanh); ``uint8_generator`` wraps it
so a device gets ordinary uint8 pixels. The discriminator takes uint8-range images scaled to
[-1, 1] and returns one logit. Both are sized from the image shape: the generator starts from a
small square (4x4 for 32x32 and 64x64, 7x7 for 28x28) and doubles it with strided transposed
convolutions until the image size is reached. The trainable model that holds both (its
train_step and the optional class code) is ``bigmodels.models.gan_model.DCGAN``.
"""

import keras

from bigmodels.models.gan_model import DCGAN, check_code_classes
from bigmodels.models.layers import CodeEmbedding, FusedBatchNormalization
from bigmodels.models.registry import register_model


def upsampling_steps(image_shape) -> int:
    """How many times the generator doubles its start size: as often as the size stays an
    integer of at least 4 (28 -> 7x7 start, 2 steps; 32 -> 4x4, 3 steps; 64 -> 4x4, 4 steps)."""
    height, width, channels = image_shape
    if height != width or channels not in (1, 3):
        raise ValueError(
            f"the DCGAN needs square images with 1 or 3 channels, got {tuple(image_shape)}; "
            "resize the data (--image-size N N)"
        )
    steps = 0
    while height % (2 ** (steps + 1)) == 0 and height // 2 ** (steps + 1) >= 4:
        steps += 1
    if steps == 0:
        raise ValueError(f"image size {height} is too small or odd for the DCGAN; use e.g. 28, 32 or 64")
    return steps


def _filters(base_filters: int, steps: int, index: int) -> int:
    """Widest at the smallest resolution, halving towards the image (capped at 8 x base)."""
    return base_filters * min(8, 2 ** (steps - 1 - index))


def dcgan_generator(
    *, image_shape=(28, 28, 1), latent_size: int = 64, base_filters: int = 32, code_classes: int = 0
) -> keras.Model:
    """Latent vector -> image in [-1, 1].

    Args:
        image_shape: (size, size, channels) of the training images.
        latent_size: length of the latent vector.
        base_filters: filters of the last transposed convolution; earlier ones double.
        code_classes: when above 0, a categorical code read from the latent vector
            (``CodeEmbedding``) adds a learned vector per category to the first layer.

    Example:
        generator = get_model("dcgan_generator", image_shape=(32, 32, 3), latent_size=100)
    """
    steps = upsampling_steps(image_shape)
    start = image_shape[0] // 2**steps
    latent = keras.Input(shape=(latent_size,), name="latent")
    units = start * start * _filters(base_filters, steps, -1)
    x = keras.layers.Dense(units, use_bias=False, name="project")(latent)
    if code_classes:
        x = keras.layers.Add(name="add_code")(
            [x, CodeEmbedding(code_classes, units, name="code_embedding")(latent)]
        )
    x = keras.layers.BatchNormalization(name="project_bn")(x)
    x = keras.layers.ReLU(name="project_relu")(x)
    x = keras.layers.Reshape((start, start, _filters(base_filters, steps, -1)), name="to_grid")(x)
    for index in range(steps - 1):
        x = keras.layers.Conv2DTranspose(
            _filters(base_filters, steps, index),
            4,
            strides=2,
            padding="same",
            use_bias=False,
            name=f"up_{index}",
        )(x)
        x = FusedBatchNormalization(name=f"up_{index}_bn")(x)
        x = keras.layers.ReLU(name=f"up_{index}_relu")(x)
    image = keras.layers.Conv2DTranspose(
        image_shape[-1], 4, strides=2, padding="same", activation="tanh", name="to_image"
    )(x)
    return keras.Model(latent, image, name="generator")


def dcgan_discriminator(
    *, image_shape=(28, 28, 1), base_filters: int = 32, dropout: float = 0.3, code_classes: int = 0
) -> keras.Model:
    """Image in [-1, 1] -> one logit (real > 0), and the code's logits when ``code_classes`` > 0.

    Args:
        image_shape: (size, size, channels).
        base_filters: filters of the first strided convolution; later ones double.
        dropout: dropout after each block (keeps the discriminator from winning too early).
        code_classes: when above 0, a second output of this many logits predicts the generator's
            categorical code from the image (InfoGAN's Q network, sharing the convolutions).
    """
    steps = upsampling_steps(image_shape)
    image = keras.Input(shape=tuple(image_shape), name="image")
    x = image
    for index in range(steps):
        x = keras.layers.Conv2D(base_filters * 2**index, 4, strides=2, padding="same", name=f"down_{index}")(
            x
        )
        x = keras.layers.LeakyReLU(0.2, name=f"down_{index}_lrelu")(x)
        x = keras.layers.Dropout(dropout, name=f"down_{index}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logit = keras.layers.Dense(1, name="logit")(x)
    if code_classes:
        code_logits = keras.layers.Dense(code_classes, name="code_logits")(x)
        return keras.Model(image, [logit, code_logits], name="discriminator")
    return keras.Model(image, logit, name="discriminator")


@register_model("dcgan", task="image_generation")
def dcgan(
    *,
    image_shape=(28, 28, 1),
    latent_size: int = 64,
    base_filters: int = 32,
    discriminator_filters: int | None = None,
    dropout: float = 0.3,
    label_smoothing: float = 0.0,
    seed: int = 0,
    ema_momentum: float = 0.0,
    code_classes: int = 0,
    code_weight: float = 1.0,
    code_from_labels: bool = False,
) -> DCGAN:
    """The DCGAN model: ``dcgan_generator`` and ``dcgan_discriminator`` in one trainable model.

    Args:
        image_shape: (size, size, channels) of the training images (28x28x1, 32x32x3, 64x64x3, ...).
        latent_size: length of the latent vector.
        base_filters: width of the generator (its last transposed convolution).
        discriminator_filters: width of the discriminator's first convolution; None: the same
            as ``base_filters``. On MNIST the score followed the generator's width, not the
            discriminator's: a discriminator twice as wide (64) scored like one of 32 over the
            first 7 epochs at 1.8x the step time (benchmarks/dcgan_mnist.py).
        dropout: the discriminator's dropout.
        label_smoothing: one-sided smoothing of the discriminator's real targets.
        seed: seed of the latent sampling.
        ema_momentum: average the generator's weights with this momentum (0: off; 0.999 works
            well) and sample from the average.
        code_classes: categories of a code read from the latent vector (0: off, a plain DCGAN);
            see ``DCGAN``. The latent vector stays a plain Gaussian vector, so
            sampling and the exported generator are unchanged.
        code_weight: weight of the code's cross-entropy.
        code_from_labels: learn the code from the class labels (AC-GAN): the code's category
            becomes the class drawn; ``code_classes`` must equal the number of classes. On MNIST
            this took the classifier score from 6.26 to 9.11 after 6 epochs (base_filters 32).

    Example:
        gan = get_model("dcgan", image_shape=(28, 28, 1))
        gan.compile()  # Adam(2e-4, beta_1=0.5) for both, binary cross-entropy on logits
        gan.fit(uint8_images, epochs=5)
    """
    image_shape = tuple(int(d) for d in image_shape)
    if discriminator_filters is None:
        discriminator_filters = base_filters
    for name, value in (("base_filters", base_filters), ("discriminator_filters", discriminator_filters)):
        if value < 1:
            raise ValueError(f"{name} must be a positive number of filters, got {value}")
    check_code_classes(code_classes, latent_size)
    generator = dcgan_generator(
        image_shape=image_shape, latent_size=latent_size, base_filters=base_filters, code_classes=code_classes
    )
    discriminator = dcgan_discriminator(
        image_shape=image_shape,
        base_filters=discriminator_filters,
        dropout=dropout,
        code_classes=code_classes,
    )
    return DCGAN(
        generator,
        discriminator,
        latent_size=latent_size,
        label_smoothing=label_smoothing,
        seed=seed,
        ema_momentum=ema_momentum,
        code_classes=code_classes,
        code_weight=code_weight,
        code_from_labels=code_from_labels,
        name="dcgan",
    )


@keras.saving.register_keras_serializable(package="bigmodels")
class ToUint8Pixels(keras.layers.Layer):
    """[-1, 1] -> uint8 pixels, so a device receives an ordinary image.

    Written x * 127.5 + 127.5, not (x + 1) * 127.5: the int8 converter gave the sum x + 1 the
    product's scale (0.86 for a 0-220 product), so a generator whose images span a narrow range
    came out as one grey level (measured on an 8x8 generator: 18.9 mean pixel levels from Keras,
    0.6 for the generator's own tanh output).
    """

    def call(self, images):
        pixels = keras.ops.round(images * 127.5 + 127.5)
        return keras.ops.cast(keras.ops.clip(pixels, 0.0, 255.0), "uint8")


def uint8_generator(generator) -> keras.Model:
    """The generator with uint8 pixels out: what is exported and shipped."""
    latent = keras.Input(shape=generator.input_shape[1:], name="latent")
    return keras.Model(latent, ToUint8Pixels(name="to_uint8")(generator(latent)), name="uint8_generator")
