"""An image classifier on a pretrained backbone (transfer learning): raw uint8 pixels in.

In front of the backbone the model does what its source expects: widening grayscale to three
channels, the preset's scale and offset, resizing to the backbone's size. So the exported TFLite
file still takes a camera's pixels as they are, at the data's size.
"""

import keras
from keras import layers

from bigmodels.models.backbones import BackboneError, LoadedBackbone, load_backbone
from bigmodels.models.layers import averaged_views, mirrored_views
from bigmodels.models.registry import register_model

BACKBONE_LAYER = "backbone"


def _widen_channels(x, channels: int, wanted: int):
    """Grayscale data on a colour backbone: the one channel three times (a builtin concatenation)."""
    if channels == wanted:
        return x
    if channels == 1 and wanted == 3:
        return layers.Concatenate(name="gray_to_rgb")([x, x, x])
    raise BackboneError(
        f"the backbone takes {wanted}-channel images but the data has {channels} channels; "
        "use a backbone trained on images like the data's"
    )


def _preprocess(x, loaded: LoadedBackbone, input_size, target_size):
    """The preset's scale and offset, then the resize to the backbone's size (both linear per
    pixel, so their order does not change the result; rescaling first gives the resize floats)."""
    settings = loaded.preprocessing or {}
    scale, offset = settings.get("scale"), settings.get("offset")
    if scale is not None or offset is not None:
        x = layers.Rescaling(
            1.0 if scale is None else scale, offset=0.0 if offset is None else offset, name="preprocess"
        )(x)
    if target_size != input_size:
        x = layers.Resizing(
            *target_size,
            interpolation=settings.get("interpolation", "bilinear"),
            crop_to_aspect_ratio=settings.get("crop_to_aspect_ratio", False),
            name="resize",
        )(x)
    return x


@register_model("backbone_classifier", task="image_classification")
def backbone_classifier(
    *,
    backbone: str | keras.Model | None = None,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 2,
    resolution: int | None = None,
    dropout: float = 0.2,
    flip_average: bool = False,
) -> keras.Model:
    """Builds an image classifier on a pretrained backbone; it takes raw uint8 pixels.

    Args:
        backbone: what the features come from: a run folder of an image classifier,
            ``saved_models/<name>``, a keras-hub image preset folder or name
            (``mobilenet_v3_small_100_imagenet``), or a ``keras.Model`` from float pixels
            (0-255) to features.
        input_shape: (height, width, channels) of the uint8 images fed to the model.
        num_classes: number of output classes (softmax probabilities out).
        resolution: square side the images are resized to inside the model; None keeps the
            input size (with --backbone: the backbone's own, from the preset's image converter
            or the backbone run's input).
        dropout: dropout rate before the new classification layer.
        flip_average: at inference, classify each image and its mirror image and average the two
            (twice the compute; training is unchanged). For photos, not digits or text.

    Returns:
        An uncompiled functional ``keras.Model``; the backbone is its nested model "backbone"
        (trainable: the training phases freeze and unfreeze it).

    Example:
        model = backbone_classifier(backbone="runs/cifar", input_shape=(32, 32, 3), num_classes=4)
    """
    if backbone is None:
        raise ValueError(f"backbone_classifier needs a backbone (--backbone): {EXAMPLE}")
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (height, width, 1 or 3), got {tuple(input_shape)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if resolution is not None and resolution < 8:
        raise ValueError(f"resolution must be at least 8 pixels, got {resolution}")
    loaded = load_backbone(backbone, image_size=(resolution, resolution) if resolution else None)
    input_size = tuple(input_shape[:2])
    target_size = tuple(loaded.image_size or input_size)
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="image")
    x = _widen_channels(inputs, input_shape[-1], loaded.channels)
    x = mirrored_views(_preprocess(x, loaded, input_size, target_size), flip_average)
    x = loaded.features(x)
    if len(x.shape) == 4:
        x = (loaded.pooling or layers.GlobalAveragePooling2D(name="pool"))(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, averaged_views(outputs, flip_average), name="backbone_classifier")


EXAMPLE = "a run folder, saved_models/<name>, or a keras-hub image preset (mobilenet_v3_small_100_imagenet)"
