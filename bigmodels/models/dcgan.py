"""DCGAN (Radford et al., 2015): a generator and a discriminator trained by a custom train_step.

The generator maps a latent vector to an image in [-1, 1] (tanh); ``uint8_generator`` wraps it
so a device gets ordinary uint8 pixels. The discriminator takes uint8-range images scaled to
[-1, 1] and returns one logit. Both are sized from the image shape: the generator starts from a
small square (4x4 for 32x32 and 64x64, 7x7 for 28x28) and doubles it with strided transposed
convolutions until the image size is reached.
"""

import keras

from bigmodels.models.layers import CodeEmbedding, FusedBatchNormalization
from bigmodels.registry import register_model


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


def check_code_classes(code_classes: int, latent_size: int) -> None:
    """The code is read from the first ``code_classes`` latent entries, so it needs that many."""
    if code_classes and not 2 <= code_classes <= latent_size:
        raise ValueError(
            f"code_classes must be 0 (off) or between 2 and latent_size ({latent_size}), got {code_classes}"
        )


def _filters(base_filters: int, steps: int, index: int) -> int:
    """Widest at the smallest resolution, halving towards the image (capped at 8 x base)."""
    return base_filters * min(8, 2 ** (steps - 1 - index))


@register_model("dcgan_generator")
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


@register_model("dcgan_discriminator")
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


@keras.saving.register_keras_serializable(package="bigmodels")
class DCGAN(keras.Model):
    """A generator and a discriminator trained against each other.

    ``compile(d_optimizer, g_optimizer, loss_fn)``; each ``train_step`` first updates the
    discriminator on a real batch and a generated batch, then the generator through the frozen
    discriminator. Latent vectors come from a seeded generator, so a run is repeatable. Real
    images arrive as uint8 pixels (the data layer's format) and are scaled to [-1, 1] here.

    Args:
        generator: latent -> image in [-1, 1].
        discriminator: image in [-1, 1] -> logit.
        latent_size: length of the latent vector.
        label_smoothing: real targets become 1 - label_smoothing for the discriminator
            (one-sided smoothing, Salimans et al. 2016).
        seed: seed of the latent sampling.
        ema_momentum: when above 0, a copy of the generator tracks the exponential moving
            average of its weights after every step (Yazıcı et al. 2019: averaged generators give
            better samples); ``sampling_generator`` is that copy, and it is what is scored and
            exported.
        code_classes: when above 0, the InfoGAN-style categorical code: the generator adds a
            learned vector for a category read from its latent vector (``CodeEmbedding``), the
            discriminator's second output predicts it from the generated image, and both
            networks also minimise that prediction's cross-entropy (a lower bound on the mutual
            information between code and image). No labels are used. On MNIST (8 epochs,
            base_filters 32) the categories did not line up with digits and the classifier
            score did not rise (6.46 against 6.64); learned from the labels it did.
        code_weight: weight of the code's cross-entropy in both losses (InfoGAN: 1).
        code_from_labels: the code is the class (AC-GAN, Odena et al. 2017): training batches are
            (images, labels), and the code head also learns the real images' labels, so each
            category of the code becomes that class. ``code_classes`` must be the number of
            classes. To draw a chosen class, make its latent entry the largest of the first
            ``code_classes``.
    """

    def __init__(
        self,
        generator,
        discriminator,
        *,
        latent_size: int,
        label_smoothing: float = 0.0,
        seed: int = 0,
        ema_momentum: float = 0.0,
        code_classes: int = 0,
        code_weight: float = 1.0,
        code_from_labels: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.generator, self.discriminator = generator, discriminator
        self.latent_size, self.label_smoothing, self.seed = (
            int(latent_size),
            float(label_smoothing),
            int(seed),
        )
        if not 0.0 <= ema_momentum < 1.0:
            raise ValueError(f"ema_momentum must be in [0, 1), got {ema_momentum}")
        self.ema_momentum = float(ema_momentum)
        self.ema_generator = None
        if self.ema_momentum:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        self.code_classes, self.code_weight = int(code_classes), float(code_weight)
        check_code_classes(self.code_classes, self.latent_size)
        self.code_from_labels = bool(code_from_labels)
        if self.code_from_labels and not self.code_classes:
            raise ValueError("code_from_labels needs code_classes set to the number of classes")
        self.latent_seed = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.code_loss_tracker = keras.metrics.Mean(name="code_loss")
        self.built = True  # both networks are built Functional models

    def call(self, latent, training=False):
        return self.generator(latent, training=training)

    def compile(self, d_optimizer=None, g_optimizer=None, loss_fn=None, **kwargs):
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        # Keras's own ``optimizer`` slot gets the generator's, not an unused default optimizer
        # whose state would differ between a fresh and a restored model.
        super().compile(optimizer=self.g_optimizer, **kwargs)
        self.loss_fn = loss_fn or keras.losses.BinaryCrossentropy(from_logits=True)
        self.code_loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        # Slot variables now, not at the first step, so a checkpoint (BackupAndRestore, a
        # loaded .keras file) restores both optimizers' state instead of skipping it.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "d_optimizer": serialize(self.d_optimizer),
            "g_optimizer": serialize(self.g_optimizer),
            "loss_fn": serialize(self.loss_fn),
        }

    def compile_from_config(self, config):
        deserialize = keras.saving.deserialize_keras_object
        self.compile(**{key: deserialize(value) for key, value in config.items()})

    @property
    def sampling_generator(self):
        """The generator to sample from: the weight average when ``ema_momentum`` is set."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker]
        return [*trackers, self.code_loss_tracker] if self.code_classes else trackers

    def sample_latent(self, count):
        return keras.random.normal((count, self.latent_size), seed=self.latent_seed)

    def _discriminate(self, images):
        """(real/fake logits, code logits or None) of the discriminator in training mode."""
        outputs = self.discriminator(images, training=True)
        return (outputs[0], outputs[1]) if self.code_classes else (outputs, None)

    def _code_loss(self, latent, code_logits):
        if not self.code_classes:
            return 0.0
        return self.code_loss_fn(CodeEmbedding.category(latent, self.code_classes), code_logits)

    def train_step(self, data):
        import tensorflow as tf

        images, labels = data[:2] if isinstance(data, tuple) else (data, None)
        if self.code_from_labels and labels is None:
            raise ValueError("code_from_labels: train on (images, labels) batches")
        # Under tf.distribute, Keras loss objects already divide by the number of replicas
        # (whose gradients are then summed); the logged losses undo that.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        real = keras.ops.cast(images, "float32") / 127.5 - 1.0
        batch = keras.ops.shape(real)[0]
        # One generator forward serves both updates (as in PyTorch's DCGAN example): the
        # discriminator step happens with the generator's tape paused, then the generator is
        # scored by the updated discriminator on the same fakes.
        latent = self.sample_latent(batch)
        with tf.GradientTape() as g_tape:
            fake = self.generator(latent, training=True)
            with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                real_logits, real_code_logits = self._discriminate(real)
                fake_logits, code_logits = self._discriminate(fake)
                real_targets = keras.ops.full_like(real_logits, 1.0 - self.label_smoothing)
                d_loss = self.loss_fn(real_targets, real_logits) + self.loss_fn(
                    keras.ops.zeros_like(fake_logits), fake_logits
                )
                d_total = d_loss + self.code_weight * self._code_loss(latent, code_logits)
                if self.code_from_labels:
                    d_total += self.code_weight * self.code_loss_fn(labels, real_code_logits)
            weights = self.discriminator.trainable_variables
            with g_tape.stop_recording():
                self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_total, weights), weights, strict=True))
            fake_logits, code_logits = self._discriminate(fake)
            g_loss = self.loss_fn(keras.ops.ones_like(fake_logits), fake_logits)
            code_loss = self._code_loss(latent, code_logits)
            g_total = g_loss + self.code_weight * code_loss
        weights = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_total, weights), weights, strict=True))
        if self.ema_generator is not None:
            momentum = self.ema_momentum
            for average, current in zip(self.ema_generator.weights, self.generator.weights, strict=True):
                average.assign(momentum * average + (1.0 - momentum) * current)
        self.d_loss_tracker.update_state(d_loss * replicas)
        self.g_loss_tracker.update_state(g_loss * replicas)
        if self.code_classes:
            self.code_loss_tracker.update_state(code_loss * replicas)
        return {tracker.name: tracker.result() for tracker in self.metrics}

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_size": self.latent_size,
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
            "ema_momentum": self.ema_momentum,
            "code_classes": self.code_classes,
            "code_weight": self.code_weight,
            "code_from_labels": self.code_from_labels,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@register_model("dcgan")
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
    """[-1, 1] -> uint8 pixels, so a device receives an ordinary image."""

    def call(self, images):
        pixels = keras.ops.round((images + 1.0) * 127.5)
        return keras.ops.cast(keras.ops.clip(pixels, 0.0, 255.0), "uint8")


def uint8_generator(generator) -> keras.Model:
    """The generator with uint8 pixels out: what is exported and shipped."""
    latent = keras.Input(shape=generator.input_shape[1:], name="latent")
    return keras.Model(latent, ToUint8Pixels(name="to_uint8")(generator(latent)), name="uint8_generator")
