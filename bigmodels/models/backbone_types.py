"""What the backbone modules share: the loaded backbone, its kinds and its one-line error."""

from dataclasses import dataclass, field

import keras

RUN_KIND = "run"
PRESET_KIND = "keras_hub_preset"
MODEL_KIND = "keras_model"
# TFLite has builtin resize ops for these two; another interpolation falls back to bilinear.
TFLITE_INTERPOLATIONS = ("bilinear", "nearest")


class BackboneError(ValueError):
    """A --backbone that cannot be used, said in one line."""


@dataclass
class LoadedBackbone:
    """A backbone ready to be built into a classifier.

    Attributes:
        features: float pixels (0-255 for a run, after ``preprocessing`` for a preset) -> a
            feature map (4-D) or feature vectors (2-D); named "backbone".
        image_size: the (height, width) it takes; None when any size does.
        channels: the colour channels it takes.
        preprocessing: the preset's image converter (scale, offset, interpolation, cropping) to
            build in front of it; None when the features rescale pixels themselves (our runs).
        pooling: the source's own pooling layer, copied after the features (None: global average).
        record: what config.json records under "backbone".
        tokenizer: a text preset's WordPiece tokenizer (``text_tokenizer``'s dict: vocabulary,
            settings, the ids of its start, end and padding tokens); None for an image backbone.
    """

    features: keras.Model
    image_size: tuple[int, int] | None
    channels: int
    preprocessing: dict | None = None
    pooling: keras.layers.Layer | None = None
    record: dict = field(default_factory=dict)
    tokenizer: dict | None = None

    @property
    def data_kind(self) -> str:
        """What the backbone reads: "text" (token ids) or "image" (pixels)."""
        return "image" if self.tokenizer is None else "text"


def last_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[-1] if lines else type(error).__name__)[:200]
