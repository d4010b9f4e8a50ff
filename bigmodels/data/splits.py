"""From a loaded source to a ``Dataset``: carve the splits a source lacks, then describe them."""

from typing import NamedTuple

import numpy as np

from bigmodels.data.dataset import SPLITS, Dataset, DatasetInfo, check_classes, split_off


class LoadedSource(NamedTuple):
    """What a per-source loader hands to ``assemble_dataset``.

    Attributes:
        splits: split name ("all", "train", "validation" or "test") -> (features, labels) arrays;
            "all" means the source has no splits of its own.
        class_names: label names, index = label id.
        test_split: how the source's own test split was made, or None when it has none.
        extra: optional "preprocessing" (dict), "skipped" and "repaired" (lists of problems).
    """

    splits: dict
    class_names: list[str]
    test_split: str | None
    extra: dict


# A validation split that moves in 4-point steps (24 photos) cannot rank epochs: small data hold
# out up to 20% so that about this many examples judge the model; 500+ examples keep the fraction.
MIN_VALIDATION_EXAMPLES = 50
MAX_SMALL_DATA_VALIDATION_FRACTION = 0.2


class EmptySplitError(ValueError):
    """Carving left a validation or test split with no examples (too few per class)."""


class NoTestSplitError(ValueError):
    """Only the source's own test split was asked for, and it has none."""


def check_fraction(split: str, fraction: float | None) -> None:
    """Raises ValueError unless ``fraction`` (the share held out for ``split``) is in (0, 1)."""
    if fraction is None:
        return
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"--{split}-fraction must be a share between 0 and 1 (e.g. 0.1), got {fraction!r}")


def check_split_seed(split_seed: int | None) -> None:
    """Raises ValueError unless ``split_seed`` is None or a whole number, 0 or more."""
    if split_seed is None:
        return
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise ValueError(f"--split-seed must be a whole number, 0 or more (e.g. 0), got {split_seed!r}")


def validation_fraction_for(count: int, fraction: float | None) -> float:
    """The share held out for validation: ``fraction`` when given, else 10% raised (to 20% at
    most) until about ``MIN_VALIDATION_EXAMPLES`` of ``count`` training examples are held out."""
    if fraction is not None:
        return fraction
    wanted = MIN_VALIDATION_EXAMPLES / max(1, count)
    return float(min(MAX_SMALL_DATA_VALIDATION_FRACTION, max(0.1, wanted)))


def _describe_fraction(fraction: float, seed: int, count: int, of_what: str) -> str:
    return f"seeded stratified {fraction:.0%} of {of_what} (seed {seed}, {count} examples)"


SOURCE_VALIDATION_SPLIT = "the source's own validation split"  # a user's file, not carved here


def _carve_splits(
    loaded: LoadedSource, source: str, *, validation_fraction: float | None, test_fraction: float, seed: int
) -> tuple[dict, str | None, str]:
    """Holds out a test split (seed) and a validation split (seed + 1) where the source has none.

    Returns:
        (arrays per split, how the test split was made, how the validation split was made).
    """
    splits, test_split = loaded.splits, loaded.test_split
    if "all" in splits:
        splits["train"] = splits.pop("all")
    if "train" not in splits:
        raise ValueError(
            f"{source}: no training split found; provide a train split or a folder of class folders"
        )
    features, labels = splits["train"]
    check_classes(labels, loaded.class_names, source)
    if "test" not in splits:
        splits["train"], splits["test"] = split_off(features, labels, test_fraction, seed)
        test_split = _describe_fraction(test_fraction, seed, len(splits["test"][1]), "the data")
    if "validation" in splits:
        validation_split = SOURCE_VALIDATION_SPLIT
    else:
        features, labels = splits["train"]
        validation_fraction = validation_fraction_for(len(labels), validation_fraction)
        splits["train"], splits["validation"] = split_off(features, labels, validation_fraction, seed + 1)
        validation_split = _describe_fraction(
            validation_fraction, seed + 1, len(splits["validation"][1]), "the training data"
        )
    for split in ("validation", "test"):
        if len(splits[split][1]) == 0:
            raise EmptySplitError(f"{source}: the {split} split is empty; add more examples per class")
    return {split: splits[split] for split in SPLITS}, test_split, validation_split


ALL_AS_TEST_SPLIT = "every example of the source (nothing carved)"


def _all_as_test(loaded: LoadedSource) -> dict:
    """Every split the source has, joined into the test split; training and validation empty."""
    parts = list(loaded.splits.values())
    features = np.concatenate([features for features, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return {"train": (features[:0], labels[:0]), "validation": (features[:0], labels[:0]),
            "test": (features, labels)}  # fmt: skip


def _own_test(loaded: LoadedSource, source: str) -> dict:
    """The source's own test split alone; training and validation empty."""
    if "test" not in loaded.splits:
        raise NoTestSplitError(
            f"{source} has no test split of its own (a test/ or val/ folder, MNIST's t10k files, "
            "CIFAR's test batch, a tfds test split)"
        )
    features, labels = loaded.splits["test"]
    return {"train": (features[:0], labels[:0]), "validation": (features[:0], labels[:0]),
            "test": (features, labels)}  # fmt: skip


def _preprocessing(features: np.ndarray, kind: str, extra: dict) -> dict:
    """The source's preprocessing record; image data always says its size, channels and range."""
    preprocessing = dict(extra.get("preprocessing", {}))
    if kind != "image":
        return preprocessing
    return {
        "image_size": list(features.shape[1:3]),
        "channels": int(features.shape[-1]),
        "dtype": "uint8",
        "value_range": [0, 255],
        **preprocessing,
    }


def assemble_dataset(
    loaded: LoadedSource,
    *,
    source: str,
    batch_size: int,
    validation_fraction: float | None,
    test_fraction: float,
    seed: int,
    split_seed: int | None = None,
    all_as_test: bool = False,
    own_test_only: bool = False,
) -> Dataset:
    """Carves the missing splits of ``loaded`` and wraps them, with their ``DatasetInfo``;
    ``all_as_test``: carve nothing, every example is the test split (scoring a run on new data);
    ``own_test_only``: carve nothing, the source's own test split alone (scoring a bundle);
    ``split_seed``: the seed of the carved splits, when it is not ``seed`` (the shuffles').

    Raises:
        ValueError: no training split, a label outside the class names, an empty split, or a
            fraction outside (0, 1).
    """
    check_fraction("test", test_fraction)
    check_fraction("validation", validation_fraction)
    check_split_seed(split_seed)
    if all_as_test:
        arrays, test_split, validation_split = _all_as_test(loaded), ALL_AS_TEST_SPLIT, "none"
    elif own_test_only:
        arrays, test_split, validation_split = _own_test(loaded, source), loaded.test_split, "none"
    else:
        arrays, test_split, validation_split = _carve_splits(
            loaded,
            source,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed if split_seed is None else split_seed,
        )
    features = arrays["test"][0]
    kind = "text" if features.dtype == object else "image"
    info = DatasetInfo(
        source=source,
        kind=kind,
        class_names=list(loaded.class_names),
        input_shape=tuple(int(d) for d in features.shape[1:]),
        counts={split: int(len(labels)) for split, (_, labels) in arrays.items()},
        test_split=test_split,
        validation_split=validation_split,
        preprocessing=_preprocessing(features, kind, loaded.extra),
        skipped_files=loaded.extra.get("skipped", []),
        repaired_rows=loaded.extra.get("repaired", []),
    )
    return Dataset(arrays=arrays, info=info, batch_size=batch_size, seed=seed)
