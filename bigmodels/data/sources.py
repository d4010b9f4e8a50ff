"""Where examples come from: the embedded default and tensorflow-datasets names."""

import numpy as np

EMBEDDED_DATASETS = ("digits",)


def load_digits_arrays():
    """The UCI handwritten digits that scikit-learn ships inside its wheel (no network).

    1,797 real 8x8 grayscale digits written by 43 people; pixel values 0-16 are scaled to 0-255
    so the model sees ordinary uint8 pixels.

    Returns:
        (images (N, 8, 8, 1) uint8, labels (N,) int64, class_names).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64), [str(d) for d in range(10)]


def _tfds_module():
    import tensorflow_datasets as tfds

    return tfds


def load_tfds_arrays(name: str, *, data_dir: str | None = None):
    """Loads a tensorflow-datasets image classification set with its own splits.

    Args:
        name: a tfds name such as "mnist", "fashion_mnist", "cifar10" or "beans"
            (optionally with a version, "mnist:3.0.1").
        data_dir: where tfds keeps its files (its default when None).

    Returns:
        (splits, class_names, feature_keys) where splits maps each tfds split name to
        (images, labels) numpy arrays.

    Raises:
        ValueError: the name is not a tfds dataset, is not an image classification set, or
            cannot be downloaded.
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
    if image_key is None or "label" not in features:
        raise ValueError(
            f"tfds dataset '{name}' has no image and label features; pick an image classification set"
        )
    try:
        builder.download_and_prepare()
        # A prepared dataset lists its splits; tfds knows none before preparing (and mock data
        # never prepares), and train/test is what every tfds image classification set has.
        split_names = list(builder.info.splits) or ["train", "test"]
        loaded = tfds.load(name, split=split_names, data_dir=data_dir, as_supervised=False)
    except Exception as error:  # tfds raises many kinds (network, checksum, disk)
        raise ValueError(
            f"tfds dataset '{name}' could not be downloaded or prepared ({type(error).__name__}); "
            "connect to the network once, or pass a local folder instead"
        ) from error
    loaded = dict(zip(split_names, loaded, strict=True))
    splits = {}
    for split_name, dataset in loaded.items():
        images, labels = [], []
        for example in tfds.as_numpy(dataset):
            images.append(example[image_key])
            labels.append(example["label"])
        splits[split_name] = (images, np.asarray(labels, dtype=np.int64))
    class_names = list(features["label"].names)
    return splits, class_names
