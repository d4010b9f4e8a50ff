"""CNN image classifier: a compact variant for digit-like data, a mobile variant for photos and a
residual variant for small colour images (CIFAR-10-like, the MLPerf Tiny class).

Both take raw uint8 pixels; rescaling (and resizing, when asked) happen inside the model so a
device feeds camera pixels as they are.
"""

import keras
from keras import layers

from bigmodels.models.layers import FusedBatchNormalization, averaged_views, mirrored_views, resized
from bigmodels.models.registry import register_model

VARIANTS = ("compact", "mobile", "resnet")
# (filters, stride) of MobileNet v1's depthwise-separable blocks, trimmed for small devices.
MOBILE_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1))
# Filters per stage of the compact variant; max-pooling halves the resolution between stages.
# 28.6k parameters on MNIST: small enough for a sub-40 KB int8 file (benchmarks/cnn_mnist.py).
COMPACT_STAGES = ((16,), (32, 32), (48,))
# Filters of the residual variant's three stacks: MLPerf Tiny's ResNet-8 (16, 32, 64; 12.5M
# multiply-accumulates per 32x32 image) with a 12-filter first stack: 10.0M MACs, 77k weights
# (an int8 file under 98.5 KB). In float32 it trained twice as fast as 16 filters (990 vs 490
# images/s on 2 cores, batch 256); in bfloat16, which the recipe now uses, the two run alike
# (2,004-2,546 vs 2,227-2,414 images/s, December 5), and 14 filters at 926 images/s: oneDNN
# favours some channel counts. What keeps 12 is the MAC count under ResNet-8's.
RESNET_STAGES = (12, 32, 64)
# Residual blocks per stack: one each, like ResNet-8.
RESNET_BLOCKS = (1, 1, 1)
# Tried for the cifar10_tiny recipe and left out (December 7): squeeze-and-excitation gates on
# the second and third stacks' branches (2.7k weights) grew the exported int8 file from 94,400 to
# 104,800 bytes, over 98.5 KB: each gate's extra ops and per-channel scales cost about 3.8 KB on
# top of its weights (sizes from before export dropped the tensor names, 4.4 KB). Hard-swish
# instead of ReLU (no fused activation: 7 more ops) made the bfloat16 training step about 1.5x
# slower (170-175 vs 107-121 ms at batch 256 on 2 cores).


def choose_cnn_variant(input_shape) -> str:
    """Picks the variant that suits the data: small grayscale images -> compact, photos -> mobile."""
    height, width, channels = input_shape
    return "compact" if channels == 1 and max(height, width) <= 64 else "mobile"


def _scaled(filters: int, width_multiplier: float) -> int:
    return max(8, int(round(filters * width_multiplier / 8)) * 8)


def _conv_block(x, filters, *, name, stride=1, depthwise=False, batch_norm=True):
    if depthwise:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = FusedBatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    else:
        x = layers.Conv2D(
            filters, 3, strides=stride, padding="same", use_bias=not batch_norm, name=f"{name}_conv"
        )(x)
    if batch_norm:
        x = FusedBatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(6.0 if depthwise else None, name=f"{name}_relu")(x)


def _residual_stack(x, filters, *, stride, name):
    """Two 3x3 convolutions beside a shortcut (a strided 1x1 convolution where the shape changes)."""
    y = _conv_block(x, filters, stride=stride, name=f"{name}_a")
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    # The branch's last BatchNorm starts at zero scale (Goyal et al. 2017), so each block starts
    # as its shortcut: with 5e-3 weight decay the cifar10_tiny recipe gained 0.4 points int8.
    y = FusedBatchNormalization(momentum=0.9, gamma_initializer="zeros", name=f"{name}_b_bn")(y)
    if stride != 1 or x.shape[-1] != filters:
        if stride != 1:
            # Keep every stride-th pixel, then a 1x1 convolution: the same function as a strided
            # 1x1 convolution, which corrupted the heap in oneDNN's CPU kernels when training
            # small augmented batches (38 photos: "malloc(): corrupted top size").
            x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_shortcut_subsample")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_shortcut_conv")(x)
        x = FusedBatchNormalization(momentum=0.9, name=f"{name}_shortcut_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([x, y]))


def _compact_body(x, size, width_multiplier):
    for stage, stage_filters in enumerate(COMPACT_STAGES):
        if stage > 0 and size >= 4:
            x = layers.MaxPooling2D(2, name=f"pool{stage}")(x)
            size //= 2
        for index, filters in enumerate(stage_filters):
            # No BatchNorm on the full-resolution first layer: it doubled the CPU training
            # step (17.9 -> 9.6 s per MNIST epoch without it) and accuracy held.
            x = _conv_block(
                x, _scaled(filters, width_multiplier), name=f"stage{stage}_{index}", batch_norm=stage > 0
            )
    return x


def _mobile_body(x, width_multiplier):
    x = _conv_block(x, _scaled(32, width_multiplier), stride=2, name="stem")
    for index, (filters, stride) in enumerate(MOBILE_BLOCKS):
        x = _conv_block(
            x, _scaled(filters, width_multiplier), stride=stride, depthwise=True, name=f"block{index}"
        )
    return x


def _resnet_body(x, width_multiplier, stack_filters, blocks_per_stack):
    widths = [max(4, int(round(filters * width_multiplier))) for filters in stack_filters]
    x = _conv_block(x, widths[0], name="stem")
    for stack, (filters, blocks) in enumerate(zip(widths, blocks_per_stack, strict=True)):
        for block in range(blocks):
            # Every stack after the first halves the resolution in its first block. The first
            # block keeps the name "stack{n}" that the one-block networks have always had.
            stride = 2 if stack > 0 and block == 0 else 1
            name = f"stack{stack}" if block == 0 else f"stack{stack}_{block}"
            x = _residual_stack(x, filters, stride=stride, name=name)
    return x


def _check_resnet_shape(variant, stack_filters, blocks_per_stack) -> None:
    for name, numbers in (("stack_filters", stack_filters), ("blocks_per_stack", blocks_per_stack)):
        if isinstance(numbers, str) or not all(type(n) is int for n in numbers):
            raise ValueError(f"{name} takes whole numbers, one per stack, like (12, 32, 64); got {numbers!r}")
    shaped = (tuple(stack_filters), tuple(blocks_per_stack)) != (RESNET_STAGES, RESNET_BLOCKS)
    if variant != "resnet" and shaped:
        raise ValueError(
            f"stack_filters and blocks_per_stack shape the resnet variant only, not '{variant}'; "
            "choose variant resnet"
        )
    if not stack_filters or len(stack_filters) != len(blocks_per_stack):
        raise ValueError(
            f"stack_filters and blocks_per_stack need one number per stack, got {tuple(stack_filters)} "
            f"and {tuple(blocks_per_stack)}"
        )
    if min(stack_filters) < 1 or min(blocks_per_stack) < 1:
        raise ValueError(
            f"every stack needs at least one filter and one block, got {tuple(stack_filters)} "
            f"and {tuple(blocks_per_stack)}"
        )


@register_model("cnn_classifier", task="image_classification")
def cnn_classifier(
    *,
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    variant: str = "compact",
    width_multiplier: float = 1.0,
    resolution: int | None = None,
    dropout: float = 0.1,
    flip_average: bool = False,
    training_resolution_scale: float = 1.0,
    stack_filters: tuple[int, ...] = RESNET_STAGES,
    blocks_per_stack: tuple[int, ...] = RESNET_BLOCKS,
) -> keras.Model:
    """Builds a CNN image classifier that takes raw uint8 pixels.

    Args:
        input_shape: (height, width, channels) of the uint8 images fed to the model.
        num_classes: number of output classes (softmax probabilities out).
        variant: "compact" (plain 3x3 convolutions, ~29k parameters at width 1, for digit-like
            data), "mobile" (MobileNet-style depthwise-separable blocks, for colour photos) or
            "resnet" (three residual stacks of 12/32/64 filters, ResNet-8-like, for 32x32 colour
            images; ``--recipe cifar10_tiny`` trains it).
        width_multiplier: scales every layer's filter count (MobileNet's alpha).
        resolution: square side the images are resized to inside the model; None keeps the
            input size.
        dropout: dropout rate before the classification layer.
        flip_average: at inference, classify each image and its mirror image and average the two
            (twice the compute; training is unchanged). For photos, not digits or text.
        training_resolution_scale: while training, images are resized to this share of the
            side they are resized to at inference (``resolution``, else the input's). Below 1
            with random-resized crops, which magnify objects: the model then infers at a higher
            resolution than it trained at, where objects look as large as in training (FixRes).
        stack_filters: the resnet variant's filters per stack (before ``width_multiplier``);
            each stack after the first halves the resolution.
        blocks_per_stack: the resnet variant's residual blocks per stack (two 3x3 convolutions
            each), one number per entry of ``stack_filters``.

    Returns:
        An uncompiled functional ``keras.Model``.

    Example:
        model = cnn_classifier(input_shape=(28, 28, 1), num_classes=10, variant="compact")
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown cnn_classifier variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (height, width, 1 or 3), got {tuple(input_shape)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
    if not 0 < training_resolution_scale <= 1:
        raise ValueError(f"training_resolution_scale must be in (0, 1], got {training_resolution_scale}")
    _check_resnet_shape(variant, stack_filters, blocks_per_stack)
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="image")
    if variant == "compact":
        x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    else:
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    size = (resolution, resolution) if resolution else tuple(input_shape[:2])
    # At least 8 pixels while training, unless the images are smaller still.
    training_size = tuple(max(min(side, 8), round(side * training_resolution_scale)) for side in size)
    x = resized(x, size, training_size, input_shape[:2])
    x = mirrored_views(x, flip_average)
    if variant == "compact":
        x = _compact_body(x, resolution or min(input_shape[:2]), width_multiplier)
    elif variant == "mobile":
        x = _mobile_body(x, width_multiplier)
    else:
        x = _resnet_body(x, width_multiplier, stack_filters, blocks_per_stack)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, averaged_views(outputs, flip_average), name=f"cnn_classifier_{variant}")
