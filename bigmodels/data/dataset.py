"""The in-memory dataset every source produces, and the tf.data pipelines built from it."""

from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

SPLITS = ("train", "validation", "test")


@dataclass
class DatasetInfo:
    """What a model and a run folder need to know about the data.

    Attributes:
        source: what the user asked for (a path, a tfds name or "digits").
        kind: "image" or "text".
        class_names: label names, index = class id.
        input_shape: shape of one example as the model receives it.
        counts: examples per split.
        test_split: how the test split was made (its own files, or a seeded fraction).
        validation_split: how the validation split was made.
        preprocessing: how raw files became arrays (resize policy, channels), for devices.
        skipped_files: files (or rows) that could not be used, each {"path", "reason"}.
        repaired_rows: text rows (or .txt files) kept after their undecodable bytes were
            replaced by U+FFFD (``--encoding``), each {"path", "row", "line", "reason"} ({"path",
            "reason"} for a .txt file).
    """

    source: str
    kind: str
    class_names: list[str]
    input_shape: tuple[int, ...]
    counts: dict[str, int]
    test_split: str
    validation_split: str
    preprocessing: dict = field(default_factory=dict)
    skipped_files: list[dict] = field(default_factory=list)
    repaired_rows: list[dict] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        result = asdict(self)
        result["input_shape"] = list(self.input_shape)
        return result


@dataclass
class Dataset:
    """Train/validation/test arrays plus the info; ``pipeline`` turns a split into tf.data."""

    arrays: dict[str, tuple[np.ndarray, np.ndarray]]
    info: DatasetInfo
    batch_size: int = 64
    seed: int = 0
    texts: dict[str, np.ndarray] | None = None  # raw texts of a tokenized text dataset

    def pipeline(self, split: str, *, shuffle: bool | None = None, batch_size: int | None = None):
        """A batched, prefetched ``tf.data.Dataset`` of (inputs, labels) for ``split``.

        The arrays are already in memory, so the pipeline is in effect cached; training data
        is reshuffled every epoch with a seeded order.
        """

        features, labels = self.arrays[split]
        dataset = tf.data.Dataset.from_tensor_slices((features, labels))
        if shuffle if shuffle is not None else split == "train":
            dataset = dataset.shuffle(len(labels), seed=self.seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size or self.batch_size).prefetch(tf.data.AUTOTUNE)

    def seeded_sample(self, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``count`` (features, labels) of ``split`` in a seeded random order, the same
        examples every time. A split keeps its source's order (class folders: one class after
        another), so its first examples may all be of one class."""
        features, labels = self.arrays[split]
        chosen = np.random.default_rng(self.seed).permutation(len(labels))[:count]
        return features[chosen], labels[chosen]

    def shuffled_sample(self, split: str, count: int):
        """``seeded_sample`` as batches (tf.data)."""
        dataset = tf.data.Dataset.from_tensor_slices(self.seeded_sample(split, count))
        return dataset.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)

    @property
    def train(self):
        return self.pipeline("train")

    @property
    def validation(self):
        return self.pipeline("validation")

    @property
    def test(self):
        return self.pipeline("test")


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of example indices that keeps each class's share.

    Every class with at least two examples puts at least one into the held-out part, so a
    small class is never missing from the test split.

    Returns:
        (kept_indices, held_out_indices), each sorted.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must be between 0 and 1, got {fraction}")
    generator = np.random.default_rng(seed)
    kept, held_out = [], []
    for class_id in np.unique(labels):
        members = generator.permutation(np.flatnonzero(labels == class_id))
        count = int(round(len(members) * fraction))
        # A class of one example stays in training; any larger class gives at least one.
        count = min(max(count, 1), len(members) - 1) if len(members) >= 2 else 0
        held_out.append(members[:count])
        kept.append(members[count:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held_out))


def split_off(features, labels, fraction: float, seed: int):
    """Splits arrays into (kept_features, kept_labels), (held_features, held_labels)."""
    kept, held_out = stratified_split(labels, fraction, seed)
    return (features[kept], labels[kept]), (features[held_out], labels[held_out])


def check_classes(labels: np.ndarray, class_names: list[str], source: str) -> None:
    """Raises a clear error when the data cannot train a classifier."""
    present = np.unique(labels)
    if len(class_names) < 2 or len(present) < 2:
        found = [class_names[i] for i in present] if len(class_names) else []
        raise ValueError(
            f"{source}: found {len(found)} class ({', '.join(found) or 'none'}); "
            "a classifier needs at least two classes; add examples of another class"
        )
