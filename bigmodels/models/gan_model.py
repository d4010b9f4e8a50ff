"""The DCGAN's trainable model: a generator and a discriminator updated in turn by a custom
train_step, with an optional categorical code (InfoGAN, or AC-GAN when learned from the labels).
The networks themselves are built in ``bigmodels.models.dcgan``.
"""

import keras
import tensorflow as tf

from bigmodels.models.layers import CodeEmbedding


def check_code_classes(code_classes: int, latent_size: int) -> None:
    """The code is read from the first ``code_classes`` latent entries, so it needs that many."""
    if code_classes and not 2 <= code_classes <= latent_size:
        raise ValueError(
            f"code_classes must be 0 (off) or between 2 and latent_size ({latent_size}), got {code_classes}"
        )


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

    def settings(self) -> dict:
        """The constructor's arguments other than the two networks."""
        names = ("latent_size", "label_smoothing", "seed", "ema_momentum", "code_classes", "code_weight")
        return {**{name: getattr(self, name) for name in names}, "code_from_labels": self.code_from_labels}

    def restart_average(self) -> None:
        """The weight average (if kept) starts again from the generator as it now is."""
        if self.ema_generator is not None:
            self.ema_generator.set_weights(self.generator.get_weights())

    def with_generator(self, generator) -> "DCGAN":
        """A DCGAN with the same discriminator and settings and another generator."""
        return DCGAN(generator, self.discriminator, **self.settings(), name=self.name)

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            **self.settings(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
