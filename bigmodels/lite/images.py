"""Image decoding shared by the training data loader and the on-device runtime.

Pillow and numpy only (no TensorFlow), so a phone-side script turns a photo into exactly
the uint8 array the model was trained on.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")


class ImageDecodeError(ValueError):
    """A file that is not a readable image (truncated, empty, or another format)."""


def open_image(path: str | Path) -> Image.Image:
    """Opens and fully decodes an image, applying its EXIF orientation (phone photos).

    Raises:
        ImageDecodeError: the file is empty, truncated or not an image.
    """
    try:
        with Image.open(path) as image:
            image.seek(0)  # first frame of an animated GIF
            image.load()  # decodes every byte: a truncated JPEG fails here, not later
            return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{path}: not a readable image ({error})") from error


def is_grayscale(image: Image.Image) -> bool:
    """True for single-channel images (and palette images whose colours are all grey)."""
    if image.mode in GRAYSCALE_MODES:
        return True
    if image.mode == "P":
        palette = np.asarray(image.convert("RGB"))
        return bool(np.all(palette[..., 0] == palette[..., 1]) and np.all(palette[..., 1] == palette[..., 2]))
    return False


def to_array(image: Image.Image, *, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """Converts a decoded image to a ``uint8`` array of shape (height, width, channels).

    Args:
        image: a decoded Pillow image.
        size: (height, width) to produce, or None to keep the image's own size. The image is
            centre-cropped to the target aspect ratio, then resized, so objects keep their shape.
        channels: 1 (grayscale) or 3 (RGB).
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, as an image viewer shows them.
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and (image.height, image.width) != tuple(size):
        height, width = size
        image = ImageOps.fit(image, (width, height), method=Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def load_image(path: str | Path, *, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """Decodes an image file into the uint8 array a bigmodels image model takes.

    Example:
        pixels = load_image("bee.jpg", size=(160, 160), channels=3)  # (160, 160, 3) uint8
    """
    return to_array(open_image(path), size=size, channels=channels)
