"""Image sources: folders of class subfolders and MNIST-format IDX files."""

import gzip
from collections import Counter
from pathlib import Path

import numpy as np

from bigmodels.lite.images import IMAGE_EXTENSIONS, ImageDecodeError, image_header, load_image

# Photos of uneven sizes are centre-cropped and resized to this (a MobileNet resolution).
DEFAULT_PHOTO_SIZE = (160, 160)
SPLIT_FOLDER_NAMES = {
    "train": ("train", "training"),
    "validation": ("val", "valid", "validation", "dev"),
    "test": ("test", "testing"),
}


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_split_folders(root: Path) -> dict[str, Path]:
    """Maps "train"/"validation"/"test" to subfolders of ``root`` named like them."""
    by_name = {p.name.lower(): p for p in _subfolders(root)}
    found = {}
    for split, names in SPLIT_FOLDER_NAMES.items():
        for name in names:
            if name in by_name:
                found[split] = by_name[name]
                break
    return found


def has_split_folders(root: Path) -> bool:
    """A train/ folder, or only split folders: a test/ handed over without its train/ holds
    splits, not a class named "test" (training then asks for train/, evaluate --all scores it)."""
    split_folders = find_split_folders(root)
    return "train" in split_folders or 0 < len(split_folders) == len(_subfolders(root))


def _list_class_files(folder: Path) -> dict[str, list[Path]]:
    classes = {}
    for class_folder in _subfolders(folder):
        files = sorted(p for p in class_folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        classes[class_folder.name] = files
    return classes


def _list_images(root: Path, class_names: list[str] | None):
    listing = _list_class_files(root)
    if not listing:
        raise ValueError(
            f"{root}: no class subfolders found; put images in one folder per class "
            "(e.g. data/cats/1.jpg, data/dogs/2.jpg)"
        )
    if class_names is not None:
        unknown = sorted(set(listing) - set(class_names))
        if unknown:
            raise ValueError(
                f"{root}: class folder(s) {', '.join(unknown)} are not in the training classes "
                f"({', '.join(class_names)}); use the same class folders in every split"
            )
    class_names = class_names or sorted(listing)
    entries, skipped = [], []
    for class_name, files in listing.items():
        for path in files:
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                entries.append((path, class_names.index(class_name)))
            else:
                skipped.append({"path": str(path), "reason": f"unsupported extension '{path.suffix}'"})
    return entries, class_names, skipped


def _choose_layout(entries) -> tuple[tuple[int, int], int]:
    """Common size and channel count, from the file headers only (no pixel decoding, except
    palette images, whose colours say whether they are grey)."""
    sizes, grayscale = Counter(), True
    for path, _ in entries:
        try:
            height, width, gray = image_header(path)
        except ImageDecodeError:
            continue  # reported when decoding
        sizes[(height, width)] += 1
        grayscale = grayscale and gray
    size = next(iter(sizes)) if len(sizes) == 1 else DEFAULT_PHOTO_SIZE
    return size, 1 if grayscale else 3


def load_image_folder(root: Path, *, class_names=None, size=None, channels=None):
    """Decodes every image under ``root/<class>/`` into one uint8 array.

    Unreadable files (truncated, empty, text named .jpg, other extensions, more pixels than
    Pillow's decompression-bomb limit) are skipped and listed. Every image is decoded by
    ``bigmodels.lite.images.load_image``, the rule the device runtime uses, and centre-cropped
    and resized to ``size`` when it differs from it.

    Args:
        root: folder with one subfolder per class.
        class_names: the training classes, when reading a test folder.
        size: (height, width); by default the images' own size when they all share one,
            otherwise DEFAULT_PHOTO_SIZE.
        channels: 1 or 3; by default 1 when every image is grayscale.

    Returns:
        (images, labels, class_names, skipped, preprocessing).

    Raises:
        ValueError: no class folder, or a class folder without a usable image.
    """
    entries, class_names, skipped = _list_images(root, class_names)
    if size is None or channels is None:
        chosen_size, chosen_channels = _choose_layout(entries)
        size, channels = size or chosen_size, channels or chosen_channels
    arrays, labels = [], []
    for path, label in entries:
        try:
            arrays.append(load_image(path, size=size, channels=channels))
            labels.append(label)
        except ImageDecodeError as error:
            skipped.append({"path": str(path), "reason": str(error).removeprefix(f"{path}: ")})
    counts = Counter(labels)
    for index, class_name in enumerate(class_names):
        if counts[index] == 0:
            raise ValueError(
                f"{root / class_name}: class folder has no usable image; "
                "add JPEG/PNG/BMP/GIF images or remove the folder"
            )
    preprocessing = {
        "image_size": list(size),
        "channels": channels,
        "resize": "centre crop to the aspect ratio, then bilinear resize",
        "dtype": "uint8",
        "value_range": [0, 255],
    }
    images = np.stack(arrays)
    return images, np.asarray(labels, dtype=np.int64), class_names, skipped, preprocessing


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: cannot read IDX file ({error}); is it a complete download?") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but the file holds {body.size} bytes; re-download it")
    return body.reshape(shape)


def load_idx_folder(root: Path):
    """Reads MNIST-format files (train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, ...).

    Returns:
        {"train": (images, labels), "test": (images, labels)} with images (N, H, W, 1) uint8.
    """
    files = {p.name.lower(): p for p in root.iterdir() if "idx" in p.name.lower()}
    result = {}
    for split, prefixes in {"train": ("train",), "test": ("t10k", "test")}.items():
        found = {}
        for kind in ("images", "labels"):
            matches = [p for n, p in files.items() if n.startswith(prefixes) and kind in n]
            if len(matches) != 1:
                raise ValueError(
                    f"{root}: expected one {split} {kind} IDX file (e.g. "
                    f"{prefixes[0]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz), found {len(matches)}"
                )
            found[kind] = _read_idx(matches[0])
        images, labels = found["images"], found["labels"].astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{root}: {split} images {images.shape} and labels {labels.shape} do not match; "
                "each image needs exactly one label"
            )
        result[split] = (images[..., None], labels)
    return result


def has_idx_files(root: Path) -> bool:
    return any("idx" in p.name.lower() and "ubyte" in p.name.lower() for p in root.iterdir())
