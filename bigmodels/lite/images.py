"""Image decoding shared by the training data loader, evaluation and the on-device runtime.

Pillow and numpy only (no TensorFlow), so a phone-side script turns a photo into exactly
the uint8 array the model was trained on. The rules, in the order they apply:

- Too many pixels (Pillow's decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``): refused
  from the header, before any pixel is decoded. The limit itself is left as the user set it.
- Animated GIF/WebP/PNG: the first frame. EXIF orientation: applied (phone photos).
- CMYK JPEG: Adobe-inverted data when the file has an Adobe marker (what Pillow assumes), plain
  CMYK data when it has none; then Pillow's CMYK to RGB conversion.
- 16-bit and 32-bit integer grayscale (``I;16``, ``I;16B``, ``I``): ``value >> 8`` clipped to
  0-255 (65535 -> 255, 32768 -> 128), what libpng's strip-16 does. 16-bit RGB(A) PNGs are
  decoded by Pillow to their high byte already, the same rule.
- Float grayscale (``F``): values are taken on the 0-255 scale, rounded and clipped; NaN is 0.
- Transparency (alpha channel, palette or colour-key transparency): composited on white.
- Then grayscale (``L``) or ``RGB``, centre crop to the target aspect ratio, bilinear resize.
"""

import struct
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "F")  # and every 16-bit "I;16..." mode
TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
ORIENTATION_TAG = 0x0112
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 degrees: width and height trade places

# What Pillow raises for a file it cannot decode: its own OSError/SyntaxError/ValueError, and,
# from some plugins on malformed headers, EOFError, IndexError, KeyError or struct.error.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error)


class ImageDecodeError(ValueError):
    """A file that is not a readable image (truncated, empty, another format, or too large)."""


def _is_high_bit_depth(mode: str) -> bool:
    return mode == "I" or mode == "F" or mode.startswith("I;16")


def _bomb_message(path, error: Exception) -> str:
    return (
        f"{path}: too many pixels to decode safely ({error}); images of up to "
        f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels are decoded: shrink this "
        "one, or raise that limit in your own script for files you trust"
    )


@contextmanager
def _decoding(path):
    """Opening and decoding one file: a decompression-bomb warning becomes an error, and every
    Pillow failure becomes an ImageDecodeError naming the file."""
    with warnings.catch_warnings():
        # Between 1x and 2x MAX_IMAGE_PIXELS Pillow only warns; refuse those as well.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except ImageDecodeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageDecodeError(_bomb_message(path, error)) from error
        except _DECODE_ERRORS as error:
            raise ImageDecodeError(f"{path}: not a readable image ({error})") from error


def _undo_cmyk_polarity(image: Image.Image) -> Image.Image:
    """Pillow reads every CMYK JPEG as Adobe-inverted; one without an Adobe marker is not."""
    if image.mode == "CMYK" and image.format in ("JPEG", "MPO") and "adobe" not in image.info:
        inverted = ImageChops.invert(image)
        inverted.info = dict(image.info)
        return inverted
    return image


def open_image(path: str | Path) -> Image.Image:
    """Opens and fully decodes an image: first frame, EXIF orientation applied, CMYK polarity.

    Raises:
        ImageDecodeError: the file is empty, truncated, not an image, or has more pixels than
            Pillow's decompression-bomb limit (checked from the header, before decoding).
    """
    with _decoding(path), Image.open(path) as image:
        image.seek(0)  # first frame of an animated GIF/WebP/PNG
        image.load()  # decodes every byte: a truncated JPEG fails here, not later
        return ImageOps.exif_transpose(_undo_cmyk_polarity(image))


def image_header(path: str | Path) -> tuple[int, int, bool]:
    """(height, width, grayscale) of an image as ``open_image`` will return it, from the header
    (EXIF rotation included; only palette images are decoded, to look at their colours).

    Raises:
        ImageDecodeError: as ``open_image``; a too-large image is refused here already.
    """
    with _decoding(path), Image.open(path) as image:
        width, height = image.size
        # Only EXIF that the header already holds: a PNG's getexif() would decode the pixels.
        if "exif" in image.info and image.getexif().get(ORIENTATION_TAG) in SWAPPING_ORIENTATIONS:
            width, height = height, width
        return height, width, is_grayscale(image)


def is_grayscale(image: Image.Image) -> bool:
    """True for single-channel images (and palette images whose colours are all grey)."""
    if image.mode in GRAYSCALE_MODES or _is_high_bit_depth(image.mode):
        return True
    if image.mode in ("P", "PA"):
        palette = np.asarray(image.convert("RGB"))
        return bool(np.all(palette[..., 0] == palette[..., 1]) and np.all(palette[..., 1] == palette[..., 2]))
    return False


def _to_8_bit(image: Image.Image) -> Image.Image:
    """Integer (16/32-bit) and float grayscale to ``L`` (``LA`` when a colour key is transparent).

    Pillow's own conversion clips (any value above 255 becomes 255), which turns a 16-bit photo
    white; here integers keep their top 8 of 16 bits (``value >> 8``) and floats are clipped.
    """
    values = np.asarray(image)
    if image.mode == "F":
        pixels = np.clip(np.rint(np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)), 0, 255)
    else:
        pixels = np.clip(values.astype(np.int64) >> 8, 0, 255)
    gray = Image.fromarray(pixels.astype(np.uint8))
    key = image.info.get("transparency")
    if isinstance(key, int | float) and not isinstance(key, bool):
        alpha = Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8))
        gray = Image.merge("LA", (gray, alpha))
    return gray


def _flatten(image: Image.Image, channels: int) -> Image.Image:
    """An ``L`` or ``RGB`` image with transparent pixels white, as an image viewer shows them."""
    if _is_high_bit_depth(image.mode):
        image = _to_8_bit(image)
    if image.mode in TRANSPARENT_MODES or image.info.get("transparency") is not None:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if channels == 1 else "RGB")


def to_array(image: Image.Image, *, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """Converts a decoded image to a ``uint8`` array of shape (height, width, channels).

    Args:
        image: a decoded Pillow image (any mode; see the module docstring for the rules).
        size: (height, width) to produce, or None to keep the image's own size. The image is
            centre-cropped to the target aspect ratio, then resized, so objects keep their shape.
        channels: 1 (grayscale) or 3 (RGB).

    Raises:
        ImageDecodeError: an image mode with no conversion to grayscale or RGB.
    """
    try:
        image = _flatten(image, channels)
    except ValueError as error:  # e.g. a mode Pillow cannot convert
        raise ImageDecodeError(f"image mode {image.mode} cannot be converted ({error})") from error
    if size is not None and (image.height, image.width) != tuple(size):
        height, width = size
        image = ImageOps.fit(image, (width, height), method=Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def load_image(path: str | Path, *, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """Decodes an image file into the uint8 array a bigmodels image model takes.

    The one decoding rule: the training loader, evaluation and the device runtime all call this.

    Raises:
        ImageDecodeError: the file cannot be decoded or is too large (the message names it).

    Example:
        pixels = load_image("bee.jpg", size=(160, 160), channels=3)  # (160, 160, 3) uint8
    """
    image = open_image(path)
    try:
        return to_array(image, size=size, channels=channels)
    except ImageDecodeError as error:
        raise ImageDecodeError(f"{path}: {error}") from error
