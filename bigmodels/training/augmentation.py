"""Training-time augmentation of batched uint8 image pipelines (the classifiers' ``augmentation``)."""

import keras
import numpy as np
import tensorflow as tf

from bigmodels.training.settings import MIXUP, TRIVIAL_AUGMENT, check_augmentation, check_augmentation_for

# Mixup's Beta(alpha, alpha) mixing weights (Zhang et al. 2018): 0.2-0.4 for ImageNet-sized sets;
# 0.4 leaves most pairs dominated by one photo.
MIXUP_ALPHA = 0.4


def uses_soft_labels(augmentation: str) -> bool:
    """Mixup trains on mixed (soft) labels: the loss and accuracy must take them."""
    return augmentation.endswith(MIXUP)


def augment_pipeline(dataset, augmentation: str, seed: int, classes: int | None = None, strong=None):
    """Adds random shifts, crops, flips, cutout or mixup to a batched uint8 image pipeline;
    ``classes``: the label count, which mixup's one-hot soft labels need. ``strong``: a boolean
    variable that turns cutout and mixup on or off (``PlainTail``); None: always on."""
    check_augmentation(augmentation)
    if augmentation == "none":
        return dataset
    check_augmentation_for("image" if dataset.element_spec[0].dtype == tf.uint8 else "text", augmentation)
    base = augmentation.removesuffix(MIXUP)
    strong = tf.constant(True) if strong is None else strong
    generator = keras.random.SeedGenerator(seed)
    if base.startswith("resized_crop_flip"):
        apply = _resized_crop_flip(generator, cutout=base.endswith("cutout"), strong=strong)
        if base.endswith(TRIVIAL_AUGMENT):
            apply = _then_trivial_augment(apply, generator, seed)
    elif base.startswith("crop_flip"):
        apply = _crop_flip(generator, cutout=base.endswith("cutout"), strong=strong)
    else:
        apply = _translate(base, seed)
    if uses_soft_labels(augmentation):
        if not classes:
            raise ValueError(f"--augmentation {augmentation} mixes labels: give the number of classes")
        apply = _then_mixup(apply, generator, classes, strong)
    # Sequential map: parallel calls would draw from the random layers in a varying order, and
    # the same seed would no longer give the same run.
    return dataset.map(apply).prefetch(tf.data.AUTOTUNE)


def _then_mixup(augment, generator, classes: int, strong):
    """``augment``, then each image blended with its mirror position in the (shuffled) batch by a
    Beta(MIXUP_ALPHA, MIXUP_ALPHA) weight, the one-hot labels by the same weight; while ``strong``
    is off, the weight is one (labels stay one-hot, so the pipeline's types do not change)."""

    def apply(images, labels):
        images, labels = augment(images, labels)
        count = tf.shape(images)[0]
        weight = keras.random.beta((count,), MIXUP_ALPHA, MIXUP_ALPHA, seed=generator)
        weight = tf.where(strong, weight, tf.ones_like(weight))
        partner = tf.reverse(tf.range(count), axis=[0])
        one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), classes)
        pixels = tf.cast(images, tf.float32)
        mixed = _blend(pixels, tf.gather(pixels, partner), tf.reshape(weight, (-1, 1, 1, 1)))
        soft = _blend(one_hot, tf.gather(one_hot, partner), weight[:, None])
        return tf.cast(tf.clip_by_value(tf.round(mixed), 0, 255), images.dtype), soft

    return apply


def _blend(first, second, weight):
    return weight * first + (1.0 - weight) * second


def _translate(augmentation: str, seed: int):
    """Random shifts of up to 10% (bilinear, zero fill), and horizontal flips for shift_flip."""
    steps = [keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed)]
    if augmentation == "shift_flip":
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))

    def apply(images, labels):
        x = tf.cast(images, tf.float32)
        for layer in steps:
            x = layer(x, training=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), images.dtype), labels

    return apply


def _crop_flip(generator, cutout: bool = False, strong=True):
    """CIFAR's standard augmentation: zero-pad by an eighth of the side (4 pixels at 32x32), crop
    back at a random offset, flip half the images. Whole pixels, gathered in one op per batch,
    so it costs a fraction of the interpolating shift. ``cutout`` then greys out one random
    square a quarter of the side wide (8x8 at 32x32; DeVries & Taylor 2017, a size for small
    networks: the paper's 16x16 suits ResNet-18), clipped at the borders, while ``strong`` is on."""

    def apply(images, labels):
        images, labels = crop_flip(images, labels)
        return (_cut_out(images, generator, strong) if cutout else images), labels

    def crop_flip(images, labels):
        count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
        pad_y, pad_x = max(1, height // 8), max(1, width // 8)
        padded = tf.pad(images, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]])
        rows = keras.random.randint((count, 1), 0, 2 * pad_y + 1, dtype="int32", seed=generator)
        cols = keras.random.randint((count, 1), 0, 2 * pad_x + 1, dtype="int32", seed=generator)
        x = tf.gather(padded, rows + tf.range(height)[None], axis=1, batch_dims=1)
        x = tf.gather(x, cols + tf.range(width)[None], axis=2, batch_dims=1)
        flip = keras.random.uniform((count, 1, 1, 1), seed=generator) < 0.5
        return tf.where(flip, tf.reverse(x, axis=[2]), x), labels

    return apply


# Random-resized-crop bounds (Szegedy et al. 2015, as torchvision's RandomResizedCrop), with the
# smallest crop a quarter of the photo rather than 8%: a small network sees the whole insect.
CROP_AREA = (0.25, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
JITTER = 0.2  # brightness shift (a share of the pixel range) and contrast factor spread


def _resized_crop_flip(generator, cutout: bool = False, strong=True):
    """Photos: a random crop of a quarter to all of the area, aspect 3:4 to 4:3, resized back to
    the batch's size (one crop_and_resize per batch); half of them flipped (the box's sides
    swapped); brightness and contrast jittered by up to 20%; ``cutout``: then a grey square, as
    ``_crop_flip``'s, while ``strong`` is on."""

    def uniform(count, low, high):
        return keras.random.uniform((count,), low, high, seed=generator)

    def apply(images, labels):
        count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
        area = uniform(count, *CROP_AREA)
        aspect = tf.exp(uniform(count, np.log(CROP_ASPECT[0]), np.log(CROP_ASPECT[1])))
        crop_height = tf.minimum(1.0, tf.sqrt(area / aspect))
        crop_width = tf.minimum(1.0, tf.sqrt(area * aspect))
        top = uniform(count, 0.0, 1.0) * (1.0 - crop_height)
        left = uniform(count, 0.0, 1.0) * (1.0 - crop_width)
        flip = uniform(count, 0.0, 1.0) < 0.5
        first, last = tf.where(flip, left + crop_width, left), tf.where(flip, left, left + crop_width)
        boxes = tf.stack([top, first, top + crop_height, last], axis=1)
        x = tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(count), (height, width))
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        contrast = tf.reshape(uniform(count, 1.0 - JITTER, 1.0 + JITTER), (-1, 1, 1, 1))
        brightness = tf.reshape(uniform(count, -JITTER, JITTER) * 255.0, (-1, 1, 1, 1))
        x = (x - mean) * contrast + mean + brightness
        x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), images.dtype)
        return (_cut_out(x, generator, strong) if cutout else x), labels

    return apply


def _trivial_augment_operations(seed: int) -> list:
    """TrivialAugment's operations (Muller & Hutter 2021, its "wide" set less the ones the random-
    resized crop already does), each drawing its own strength per image uniformly up to a maximum:
    rotations to 30 degrees, shears to 0.3, shifts to 15% of the side, brightness, contrast,
    saturation and sharpness changed by up to half, solarizing above a random level, posterizing
    to 4-8 bits, autocontrast and histogram equalization."""
    layers, pixels = keras.layers, (0, 255)
    return [
        layers.RandomRotation(30 / 360, seed=seed),
        layers.RandomShear(x_factor=0.3, y_factor=0.0, seed=seed),
        layers.RandomShear(x_factor=0.0, y_factor=0.3, seed=seed),
        layers.RandomTranslation(0.15, 0.15, seed=seed),
        layers.RandomBrightness(0.5, value_range=pixels, seed=seed),
        layers.RandomContrast(0.5, value_range=pixels, seed=seed),
        layers.RandomColorDegeneration(0.5, value_range=pixels, seed=seed),
        layers.RandomSharpness(0.5, value_range=pixels, seed=seed),
        layers.Solarization(threshold_factor=1.0, value_range=pixels, seed=seed),
        layers.RandomPosterization(factor=(4, 8), value_range=pixels, seed=seed),
        layers.AutoContrast(value_range=pixels),
        layers.Equalization(value_range=pixels),
    ]


def _then_trivial_augment(augment, generator, seed: int):
    """``augment``, then TrivialAugment: each image gets one operation drawn at random from
    ``_trivial_augment_operations`` or none (one chance in 13). Every operation runs on the whole
    batch and each image keeps its own (Keras's RandAugment draws once per batch). That costs about
    4 ms a 112-pixel photo on 2 cores (0.82 s an epoch of 196 photos against 0.07 s for the crops
    alone): little beside a few hundred photos' training, a lot for tens of thousands."""
    operations = _trivial_augment_operations(seed)

    def apply(images, labels):
        images, labels = augment(images, labels)
        pixels = tf.cast(images, tf.float32)
        count = tf.shape(images)[0]
        choice = keras.random.randint((count, 1, 1, 1), 0, len(operations) + 1, seed=generator)
        out = pixels
        for index, operation in enumerate(operations, start=1):
            out = tf.where(choice == index, tf.cast(operation(pixels, training=True), tf.float32), out)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), images.dtype), labels

    return apply


def _cut_out(images, generator, strong):
    """Each image with one square (a quarter of the shorter side) set to mid-grey, which the
    classifiers' rescaling maps to about zero, at a random centre; unchanged while ``strong`` is
    off. The squares are drawn either way, so the crops and flips after a plain epoch are the
    ones the same run without a plain tail would draw."""
    count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    half = max(1, min(height, width) // 8)
    top = keras.random.randint((count, 1, 1), 0, height, dtype="int32", seed=generator) - half
    left = keras.random.randint((count, 1, 1), 0, width, dtype="int32", seed=generator) - half
    rows, cols = tf.range(height)[None, :, None], tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + 2 * half) & (cols >= left) & (cols < left + 2 * half)
    inside = tf.logical_and(inside, strong)
    grey = tf.constant(128, dtype=images.dtype)
    return tf.where(inside[..., None], grey, images)


class PlainTail(keras.callbacks.Callback):
    """Turns cutout and mixup off (``strong``, which ``augment_pipeline`` reads) for the last
    ``plain_epochs`` of a schedule ending at ``epochs``: the lowest learning rates then fit the
    clean images the model will see. Set at each epoch's start, before Keras makes the epoch's
    iterator (and the pipeline's prefetch starts filling), so a resumed run gets it right too."""

    def __init__(self, epochs: int, plain_epochs: int):
        super().__init__()
        self.first_plain_epoch = epochs - plain_epochs
        self.strong = tf.Variable(True, trainable=False, name="strong_augmentation")

    def on_epoch_begin(self, epoch, logs=None):
        self.strong.assign(epoch < self.first_plain_epoch)
