"""CIFAR-10 and CIFAR-100 as their authors distribute them (https://www.cs.toronto.edu/~kriz/cifar.html),
extracted: the binary version's fixed-size records or the Python version's pickled batches.

A pickle can run any code while it loads, so the Python version is read by an unpickler that
builds only what those batches hold (dicts, lists, strings, numbers and numpy arrays) and
refuses anything else.
"""

import codecs
import importlib
import io
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

SIDE = 32
PIXELS = 3 * SIDE * SIDE
MAX_BATCH_BYTES = 1 << 28  # the largest file (CIFAR-100's train) is 150 MB


class Layout(NamedTuple):
    """Where one version keeps its batches and label names."""

    train: tuple[str, ...]
    test: str
    names: str  # the label-names file
    binary: bool
    label_key: bytes = b"labels"  # Python version: the key of the labels in each batch
    names_key: bytes = b"label_names"  # Python version: the key of the names in the names file
    label_bytes: int = 1  # binary version: label bytes before each image (CIFAR-100: coarse, fine)


LAYOUTS = (
    Layout(tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin", "batches.meta.txt", True),
    Layout(tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta", False),
    Layout(("train.bin",), "test.bin", "fine_label_names.txt", True, label_bytes=2),
    Layout(("train",), "test", "meta", False, b"fine_labels", b"fine_label_names"),
)


def _layout(root: Path) -> Layout | None:
    for layout in LAYOUTS:
        if (root / layout.names).is_file() and any(
            (root / n).is_file() for n in (*layout.train, layout.test)
        ):
            return layout
    return None


def has_cifar_batches(root: Path) -> bool:
    """Whether ``root`` holds an extracted CIFAR-10 or CIFAR-100 (binary or Python version)."""
    return _layout(root) is not None


def load_cifar_folder(root: Path) -> tuple[dict, list[str]]:
    """Reads the batches under ``root``: data_batch_* (or train) is the training split and
    test_batch (or test) the test split; CIFAR-100 takes its 100 fine labels.

    Returns:
        ({"train": (images, labels), "test": (images, labels)} for the splits present, with
        images (N, 32, 32, 3) uint8, and the class names.

    Raises:
        ValueError: a truncated or foreign file, a label outside the names, or a pickle that
            holds anything but the batches' plain data.
    """
    layout = _layout(root)
    names = _label_names(root / layout.names, layout)
    splits = {}
    for split, files in (("train", layout.train), ("test", (layout.test,))):
        batches = [_read_batch(root / name, layout) for name in files if (root / name).is_file()]
        if batches:
            images = np.concatenate([images for images, _ in batches])
            labels = np.concatenate([labels for _, labels in batches])
            if labels.size and labels.max() >= len(names):
                raise ValueError(
                    f"{root}: label {labels.max()} but {layout.names} names {len(names)} classes"
                )
            splits[split] = (images, labels)
    return splits, names


def _read_bytes(path: Path) -> bytes:
    if path.stat().st_size > MAX_BATCH_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size:,} bytes is larger than any CIFAR batch; is it one?")
    return path.read_bytes()


def _label_names(path: Path, layout: Layout) -> list[str]:
    if layout.binary:
        names = [line.strip() for line in _read_bytes(path).decode("utf-8", "replace").splitlines()]
    else:
        names = [_text(name) for name in _unpickle(path).get(layout.names_key, [])]
    names = [name for name in names if name]
    if len(names) < 2:
        raise ValueError(f"{path}: found {len(names)} label names; re-extract the CIFAR archive")
    return names


def _read_batch(path: Path, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    if layout.binary:
        data = np.frombuffer(_read_bytes(path), dtype=np.uint8)
        record = layout.label_bytes + PIXELS
        if data.size == 0 or data.size % record:
            raise ValueError(
                f"{path}: {data.size:,} bytes is not a whole number of {record}-byte records; re-download it"
            )
        records = data.reshape(-1, record)
        labels, pixels = records[:, layout.label_bytes - 1], records[:, layout.label_bytes :]
    else:
        batch = _unpickle(path)
        pixels, labels = batch.get(b"data"), batch.get(layout.label_key)
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.shape[1:] != (PIXELS,):
            raise ValueError(f"{path}: no {PIXELS}-byte uint8 images under b'data'; is it a CIFAR batch?")
        if labels is None or len(labels) != len(pixels):
            raise ValueError(f"{path}: {len(pixels)} images but the labels do not match; re-download it")
    # Each image is its red, then green, then blue plane, row by row.
    images = np.ascontiguousarray(pixels.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))
    return images, np.asarray(labels, dtype=np.int64)


def _text(name) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _numpy_function(module: str, name: str):
    """numpy's own pickling helper, wherever this numpy keeps it (numpy._core from numpy 2)."""
    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)
    except ImportError:
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


class _BatchUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain Python values only: every other global is refused. The
    helpers are those numpy 1 and 2 and Python 3's protocol 2 (bytes) pickle those with."""

    ALLOWED = {
        **{
            (f"numpy.{core}.{module}", name): _numpy_function(module, name)
            for core in ("core", "_core")
            for module, name in (("multiarray", "_reconstruct"), ("numeric", "_frombuffer"))
        },
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR batch")
        return self.ALLOWED[(module, name)]


def _unpickle(path: Path) -> dict:
    try:
        # encoding="bytes": the batches were pickled by Python 2, whose str keys become bytes.
        value = _BatchUnpickler(io.BytesIO(_read_bytes(path)), encoding="bytes").load()
    except Exception as error:  # noqa: BLE001  any failure to unpickle is a bad file
        raise ValueError(f"{path}: not a CIFAR batch pickle ({type(error).__name__}: {error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a CIFAR batch pickle (holds a {type(value).__name__}, not a dict)")
    return value
