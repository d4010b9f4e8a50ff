"""The checks of a run's training settings that need only the values, and the names they accept.

``train_run`` makes them all before it loads any data, so a mistyped setting is refused before
minutes of loading, not after. No TensorFlow here: the values alone decide.
"""

import math

OPTIMIZERS = ("adam", "sgd")
MIXUP = "_mixup"  # the suffix of the augmentations that mix pairs of images
TRIVIAL_AUGMENT = "_trivialaugment"  # the suffix of the photo augmentation adding TrivialAugment
PRECISIONS = ("float32", "bfloat16", "auto")
AUGMENTATIONS = (
    "none",
    "shift",
    "shift_flip",
    "crop_flip",
    "crop_flip_cutout",
    "resized_crop_flip",
    "resized_crop_flip_cutout",
    "resized_crop_flip_trivialaugment",
    "crop_flip_mixup",
    "crop_flip_cutout_mixup",
    "resized_crop_flip_mixup",
)


def check_epochs(epochs: int | None) -> None:
    if epochs is not None and epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")


def check_optimizer_settings(name: str | None, weight_decay: float | None, label_smoothing: float | None):
    """Raises ValueError for an optimizer, weight decay or label smoothing classifiers cannot use
    (None: the default, always fine)."""
    if name is not None and name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}'; choose one of {', '.join(OPTIMIZERS)}")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"--weight-decay must be 0 or more, got {weight_decay}")
    if label_smoothing is not None and not 0 <= label_smoothing < 1:
        raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")


def check_weight_averaging(epochs: float | None) -> None:
    if epochs is not None and not (math.isfinite(epochs) and epochs >= 0):
        raise ValueError(f"--weight-averaging must be 0 (off) or a positive number of epochs, got {epochs}")


def check_augmentation(augmentation: str | None) -> None:
    if augmentation is not None and augmentation not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{augmentation}'; choose one of {', '.join(AUGMENTATIONS)}")


def check_augmentation_for(kind: str, augmentation: str | None) -> None:
    """Every augmentation shifts, crops or mixes images: text data takes none. Checked as soon as
    the data's kind is known, before a model is built or an auto candidate trained."""
    if kind == "text" and augmentation not in (None, "none"):
        raise ValueError(f"--augmentation {augmentation} shifts images; text takes --augmentation none")


def changed_by_plain_tail(augmentation: str) -> bool:
    """The augmentations a plain tail changes: those with cutout or mixup."""
    return "cutout" in augmentation or augmentation.endswith(MIXUP)


def check_plain_last_epochs(plain: int | None, epochs: int | None, augmentation: str | None) -> None:
    """--plain-last-epochs: a whole number, 0 or more, fewer than the epochs, and with an
    augmentation it changes (None: not known yet, or the default)."""
    if plain is None:
        return
    if not (plain >= 0 and int(plain) == plain):
        raise ValueError(f"--plain-last-epochs must be a whole number of epochs, 0 or more, got {plain}")
    if plain and epochs is not None and plain >= epochs:
        raise ValueError(f"--plain-last-epochs {plain} leaves no epoch of cutout or mixup in {epochs} "
                         "epochs; give fewer than --epochs")  # fmt: skip
    if plain and augmentation is not None and not changed_by_plain_tail(augmentation):
        raise ValueError(f"--plain-last-epochs turns cutout and mixup off; --augmentation {augmentation} "
                         "has neither: give crop_flip_cutout or a _mixup one, or leave it out")  # fmt: skip


def check_settings(settings: dict) -> None:
    """The checks above on a run's training settings (``train_run``'s names; absent or None: the
    default, always fine)."""
    check_epochs(settings.get("epochs"))
    check_optimizer_settings(
        settings.get("optimizer"), settings.get("weight_decay"), settings.get("label_smoothing")
    )
    check_precision(settings.get("precision"))
    check_weight_averaging(settings.get("weight_averaging"))
    check_augmentation(settings.get("augmentation"))
    check_plain_last_epochs(
        settings.get("plain_last_epochs"), settings.get("epochs"), settings.get("augmentation")
    )
