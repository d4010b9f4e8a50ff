"""Where examples come from: the embedded default and tensorflow-datasets names."""

import contextlib
import logging

import numpy as np

EMBEDDED_DATASETS = ("digits",)


def load_digits_arrays():
    """The UCI handwritten digits that scikit-learn ships inside its wheel (no network).

    1,797 real 8x8 grayscale digits written by 43 people; pixel values 0-16 are scaled to 0-255
    so the model sees ordinary uint8 pixels.

    Returns:
        (images (N, 8, 8, 1) uint8, labels (N,) int64, class_names).
    """
    from sklearn.datasets import load_digits  # only the embedded default needs scikit-learn's data

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64), [str(d) for d in range(10)]


def _tfds_module():
    # Imported only when a tfds name is asked for: tensorflow-datasets takes seconds to import
    # and most runs read local files (the embedded digits, folders, CSVs).
    import tensorflow_datasets as tfds

    return tfds


STANDARD_SPLITS = ("train", "validation", "test")
# tfds tries each download 10 times with a back-off that doubles from 0.2 s: without a network
# that is about 3.5 minutes of silence before its error (measured: 2 tries fail in 0.7 s).
# Three tries still ride out a passing server error.
DOWNLOAD_TRIES = 3


@contextlib.contextmanager
def _download_tries(tries: int):
    """tfds's downloader retries ``tries`` times inside the block, as it did before after it, and
    urllib3 keeps its retry warnings (a line per try and file) to itself."""
    from tensorflow_datasets.core.download import downloader

    retry_log = logging.getLogger("urllib3.connectionpool")
    saved_level, saved_tries = retry_log.level, getattr(downloader, "MAX_RETRIES", None)
    retry_log.setLevel(logging.ERROR)
    if isinstance(saved_tries, int):  # another tfds version keeps its own
        downloader.MAX_RETRIES = tries
    try:
        yield
    finally:
        retry_log.setLevel(saved_level)
        if isinstance(saved_tries, int):
            downloader.MAX_RETRIES = saved_tries


def load_tfds_arrays(name: str, *, data_dir: str | None = None, text_columns=None):
    """Loads a tensorflow-datasets classification set (images or text) with its own splits.

    Args:
        name: a tfds name such as "mnist", "cifar10", "beans" (images) or "ag_news_subset",
            "imdb_reviews" (text), optionally with a version ("mnist:3.0.1").
        data_dir: where tfds keeps its files (its default when None).
        text_columns: for text sets, the Text features to join (default: all of them).

    Returns:
        (splits, class_names, kind): splits maps each tfds split name to (examples, labels):
        a list of uint8 images, or an object array of strings, for kind "image" or "text".
        Examples without a label (imdb_reviews' "unsupervised" split) are left out.

    Raises:
        ValueError: the name is not a tfds dataset, is not a classification set, or cannot be
            downloaded.
    """
    tfds = _tfds_module()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as error:
        raise ValueError(
            f"unknown dataset '{name}': not an existing path, not an embedded dataset "
            f"({', '.join(EMBEDDED_DATASETS)}) and not a tensorflow-datasets name; "
            "check the spelling or pass a folder"
        ) from error
    features = builder.info.features
    image_key = next((k for k in ("image", "img") if k in features), None)
    text_keys = [k for k, feature in features.items() if isinstance(feature, tfds.features.Text)]
    if text_columns:
        missing = [str(c) for c in text_columns if c not in text_keys]
        if missing:
            raise ValueError(
                f"tfds dataset '{name}' has no text feature {', '.join(missing)}; "
                f"its text features are {', '.join(text_keys) or 'none'}"
            )
        text_keys = list(text_columns)
    if (image_key is None and not text_keys) or "label" not in features:
        raise ValueError(
            f"tfds dataset '{name}' has no image or text feature with a label; pick a classification set"
        )
    try:
        with _download_tries(DOWNLOAD_TRIES):
            builder.download_and_prepare()
        # A prepared dataset lists its splits; tfds knows none before preparing (and mock data
        # never prepares), and train/test is what every tfds classification set has.
        split_names = [s for s in builder.info.splits if s in STANDARD_SPLITS] or ["train", "test"]
        loaded = tfds.load(name, split=split_names, data_dir=data_dir, as_supervised=False)
    except Exception as error:  # tfds raises many kinds (network, checksum, disk)
        raise ValueError(
            f"tfds dataset '{name}' could not be downloaded or prepared ({type(error).__name__}); "
            "connect to the network once, or pass a local folder instead"
        ) from error
    kind = "image" if image_key is not None else "text"
    splits = {}
    for split_name, dataset in zip(split_names, loaded, strict=True):
        examples, labels = [], []
        for example in tfds.as_numpy(dataset):
            if example["label"] < 0:
                continue
            if kind == "image":
                examples.append(example[image_key])
            else:
                parts = (example[key].decode("utf-8", errors="replace").strip() for key in text_keys)
                examples.append(" ".join(part for part in parts if part))
            labels.append(example["label"])
        if kind == "text":
            examples = np.asarray(examples, dtype=object)
        splits[split_name] = (examples, np.asarray(labels, dtype=np.int64))
    return splits, list(features["label"].names), kind
