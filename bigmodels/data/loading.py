"""``load_dataset(source)``: the one entry point that turns any supported source into splits.

``load_dataset`` finds what kind of source it was given (``_load_source``), a per-source loader
reads it into a ``LoadedSource``, and ``assemble_dataset`` carves the splits the source lacks.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bigmodels.data.cifar import has_cifar_batches, load_cifar_folder
from bigmodels.data.dataset import Dataset
from bigmodels.data.images import (
    DEFAULT_PHOTO_SIZE,
    find_split_folders,
    has_idx_files,
    has_split_folders,
    load_idx_folder,
    load_image_folder,
)
from bigmodels.data.sources import EMBEDDED_DATASETS, load_digits_arrays, load_tfds_arrays
from bigmodels.data.splits import LoadedSource, assemble_dataset
from bigmodels.data.text import is_text_folder, load_text_source
from bigmodels.lite.images import to_array

DEFAULT_SOURCE = "digits"


@dataclass(frozen=True)
class _TextOptions:
    """The ``load_dataset`` keywords that only text sources (and tfds text columns) read."""

    text_columns: list[str | int] | str | int | None = None
    label_column: str | int | None = None
    test_source: str | None = None
    validation_source: str | None = None
    header: bool | None = None
    encoding: str = "utf-8"

    @property
    def has_separate_splits(self) -> bool:
        return self.test_source is not None or self.validation_source is not None


def load_dataset(
    source: str | None = None,
    *,
    batch_size: int = 64,
    validation_fraction: float | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    split_seed: int | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    text_columns: list[str | int] | str | int | None = None,
    label_column: str | int | None = None,
    test_source: str | None = None,
    validation_source: str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
    all_as_test: bool = False,
    own_test_only: bool = False,
) -> Dataset:
    """Loads a dataset into train / validation / test splits.

    Args:
        source: one of
            - None or "digits": the embedded UCI handwritten digits (no network);
            - a folder of class subfolders of images, with optional train/ and test/ (or val/)
              subfolders that are then used as the splits;
            - a folder of MNIST-format IDX files (train-images-idx3-ubyte.gz, ...);
            - an extracted CIFAR-10 or CIFAR-100 download (binary or Python version's batches);
            - a tensorflow-datasets name ("mnist", "fashion_mnist", "cifar10", "beans", ...);
            - a CSV/TSV file of texts and labels, or a folder of class subfolders of .txt files.
        batch_size: batch size of the tf.data pipelines.
        validation_fraction: share of the training data held out for model selection when the
            source has no validation split of its own (default: 10%, up to 20% for small data so
            that about 50 examples are held out).
        test_fraction: share held out for testing when the source has no test split.
        seed: seed of the shuffles, and of the carved splits unless ``split_seed`` is given.
        split_seed: seed of the carved test and validation splits alone (default: ``seed``).
        image_size: (height, width) for image folders; by default the images' own size when
            they all share one, else 160x160 (centre crop, then resize).
        channels: 1 or 3 to force grayscale or RGB for image folders (by default grayscale
            only when every image is); other sources must already have this many.
        text_columns: for CSV/TSV, the text column(s), by name or 0-based index (joined).
        label_column: for CSV/TSV, the label column, by name or 0-based index.
        test_source: a separate text file or folder used as the test split.
        validation_source: a separate text file or folder used for model selection (a "dev" set).
        header: whether a CSV/TSV file's first row names its columns (guessed when None).
        encoding: encoding of text files; undecodable bytes are replaced and reported.
        all_as_test: carve nothing: every example the source has (all its splits) is the test
            split, and training and validation are empty (to score a trained model on new data).
        own_test_only: carve nothing: the source's own test split alone (its test/ or val/
            folder, t10k files, test batch or tfds split); a source without one is refused.

    Returns:
        A ``Dataset`` with ``.train``, ``.validation``, ``.test`` tf.data pipelines, numpy
        ``.arrays`` and ``.info``.

    Raises:
        FileNotFoundError: ``source`` looks like a path that does not exist.
        ValueError: the data cannot be used; the message says why and what to do.

    Example:
        data = load_dataset("digits")
        model.fit(data.train, validation_data=data.validation)
    """
    source = DEFAULT_SOURCE if source in (None, "") else str(source)
    text = _TextOptions(text_columns, label_column, test_source, validation_source, header, encoding)
    loaded = _load_source(source, image_size=image_size, channels=channels, text=text)
    dataset = assemble_dataset(
        loaded,
        source=source,
        batch_size=batch_size,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        split_seed=split_seed,
        all_as_test=all_as_test,
        own_test_only=own_test_only,
    )
    _check_channels(dataset, channels, source)
    return dataset


# Downloads arrive packed (CIFAR's tarballs, a zip of photos): read as text, they would fail on
# columns or bytes and the message would not say what to do.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".7z", ".rar")


def source_kind(source: str) -> str | None:
    """ "text" or "image" for the embedded set and files and folders that exist; None for a
    tfds name (known once loaded) or a missing path. Raises ValueError for an archive file."""
    path = Path(source).expanduser()
    if source in EMBEDDED_DATASETS:
        return "image"
    if not path.exists():
        return None
    if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise ValueError(f"{path}: an archive, not data; extract it and pass the folder it holds")
    return "text" if path.is_file() or is_text_folder(path) else "image"


def _load_source(source: str, *, image_size, channels, text: _TextOptions) -> LoadedSource:
    """Tells what ``source`` names (embedded, text, image path, tfds name) and loads it."""
    path = Path(source).expanduser()
    kind = source_kind(source)
    if source in EMBEDDED_DATASETS:
        images, labels, class_names = load_digits_arrays()
        return LoadedSource({"all": (images, labels)}, class_names, None, {})
    if kind == "text":
        return _load_text(path, text)
    if text.has_separate_splits:
        raise ValueError(
            f"{source}: --test-data and --validation-data apply to text files and folders; "
            "image folders take train/ and test/ subfolders instead"
        )
    if path.exists():
        return _load_path(path, image_size, channels)
    if any(mark in source for mark in ("/", "\\")) or source.startswith((".", "~")):
        raise FileNotFoundError(f"data path '{source}' does not exist; check the path or pass a tfds name")
    return _load_tfds(source, image_size, channels, text.text_columns)


def _check_channels(dataset: Dataset, channels: int | None, source: str) -> None:
    found = dataset.info.input_shape[-1] if dataset.info.kind == "image" else None
    if channels is not None and found != channels:
        raise ValueError(
            f"{source}: images have {found} channel(s) but {channels} are needed; "
            "use data of the same kind as the model was trained on"
        )


def _load_text(path: Path, text: _TextOptions) -> LoadedSource:
    return LoadedSource(
        *load_text_source(
            path,
            test_source=text.test_source,
            validation_source=text.validation_source,
            text_columns=text.text_columns,
            label_column=text.label_column,
            header=text.header,
            encoding=text.encoding,
        )
    )


def _load_path(path: Path, image_size, channels) -> LoadedSource:
    """An image folder: IDX files, class subfolders, or train/ and test/ (or val/) subfolders."""
    if not path.is_dir():
        raise ValueError(
            f"{path}: image data must be a folder of class subfolders, of IDX files or of CIFAR batches"
        )
    if has_idx_files(path):
        splits = load_idx_folder(path)
        return LoadedSource(splits, [str(d) for d in range(10)], "the source's own test files (t10k-*)", {})
    if has_cifar_batches(path):
        raw_splits, class_names = load_cifar_folder(path)
        splits, preprocessing = _sized_images(raw_splits, image_size, channels)
        test_split = "the source's own test batch" if "test" in splits else None
        return LoadedSource(splits, class_names, test_split, {"preprocessing": preprocessing})
    if has_split_folders(path):
        return _load_split_folders(find_split_folders(path), image_size, channels)
    images, labels, class_names, skipped, preprocessing = load_image_folder(
        path, size=image_size, channels=channels
    )
    return LoadedSource(
        {"all": (images, labels)},
        class_names,
        None,
        {"skipped": skipped, "preprocessing": preprocessing},
    )


def _load_split_folders(split_folders: dict[str, Path], image_size, channels) -> LoadedSource:
    """train/ (else test/, else val/) sets the classes, size and channels; the others are read
    to match it."""
    first = next(split for split in ("train", "test", "validation") if split in split_folders)
    images, labels, class_names, skipped, preprocessing = load_image_folder(
        split_folders[first], size=image_size, channels=channels
    )
    splits = {first: (images, labels)}
    size, channels = tuple(preprocessing["image_size"]), preprocessing["channels"]
    for split in ("validation", "test"):
        if split in split_folders and split != first:
            more = load_image_folder(
                split_folders[split], class_names=class_names, size=size, channels=channels
            )
            splits[split] = more[:2]
            skipped += more[3]
    if "test" not in splits and "validation" in splits:
        splits["test"] = splits.pop("validation")  # a val/ folder beside train/ is the held-out set
        test_split = f"the source's own '{split_folders['validation'].name}/' folder"
    else:
        test_split = f"the source's own '{split_folders['test'].name}/' folder" if "test" in splits else None
    return LoadedSource(splits, class_names, test_split, {"skipped": skipped, "preprocessing": preprocessing})


def _load_tfds(name: str, image_size, channels, text_columns) -> LoadedSource:
    """tfds splits as arrays; images of several sizes are centre-cropped and resized."""
    if text_columns is not None and not isinstance(text_columns, list | tuple):
        text_columns = [text_columns]
    raw_splits, class_names, kind = load_tfds_arrays(name, text_columns=text_columns)
    test_split = "the tfds 'test' split" if "test" in raw_splits else None
    if kind == "text":
        return LoadedSource(
            raw_splits, class_names, test_split, {"preprocessing": {"text_columns": text_columns}}
        )
    splits, preprocessing = _sized_images(raw_splits, image_size, channels)
    return LoadedSource(splits, class_names, test_split, {"preprocessing": preprocessing})


def _sized_images(raw_splits: dict, image_size, channels) -> tuple[dict, dict]:
    """Splits of images (arrays of one size, or lists of several) at ``image_size`` and
    ``channels`` (by default their own when they share one), with the preprocessing record."""
    shapes = {image.shape for images, _ in raw_splits.values() for image in images}
    size = (
        tuple(image_size)
        if image_size
        else (next(iter(shapes))[:2] if len(shapes) == 1 else DEFAULT_PHOTO_SIZE)
    )
    channels = channels or (next(iter(shapes))[-1] if len({s[-1] for s in shapes}) == 1 else 3)
    unchanged = shapes == {(*size, channels)}
    splits = {
        split_name: (np.stack(images if unchanged else _resized(images, size, channels)), labels)
        for split_name, (images, labels) in raw_splits.items()
    }
    preprocessing = {
        "image_size": list(size),
        "channels": int(channels),
        "dtype": "uint8",
        "value_range": [0, 255],
    }
    if not unchanged:
        preprocessing["resize"] = "centre crop to the aspect ratio, then bilinear resize"
    return splits, preprocessing


def _resized(images, size: tuple[int, int], channels: int) -> list[np.ndarray]:
    return [
        to_array(
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image),
            size=size,
            channels=channels,
        )
        for image in images
    ]
