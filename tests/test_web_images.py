"""The page resizes a photo as bigmodels/lite/images.py does (Pillow's ImageOps.fit, bilinear):
bigmodels/web/resize.js under node against Pillow on random images of many sizes, shrunk and
enlarged, wider and taller than the model's input, gray and colour. Pillow 13 runs its two passes
vertical-first for some crops (its rule for the order is not documented); the page always runs
horizontal-first, so there a pixel may differ by one level: every pixel is within one level, and
most resizes are identical."""

import json
import subprocess

import numpy as np
import pytest
from PIL import Image, ImageOps
from web_helpers import ROOT, require

SIZES = [(8, 8), (28, 28), (16, 24), (160, 160), (7, 3)]
SHAPES = [(8, 8), (9, 8), (37, 51), (200, 150), (3, 5), (64, 64), (1, 40), (480, 640)]


@pytest.fixture(scope="module")
def node_resize():
    node = require("node", "the page's resize is tested under node")
    script = ROOT / "tests" / "web" / "resize_lines.mjs"
    process = subprocess.Popen([node, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        request = {"pixels": pixels.ravel().tolist(), "shape": list(pixels.shape), "size": list(size)}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        return np.asarray(json.loads(process.stdout.readline()), np.uint8).reshape(*size, pixels.shape[2])

    yield resize
    process.stdin.close()
    process.wait(timeout=10)


@pytest.mark.parametrize("channels", [1, 3])
def test_resize_gives_pillows_pixels(node_resize, channels):
    generator = np.random.default_rng(channels)
    identical = 0
    for shape in SHAPES:
        pixels = generator.integers(0, 256, size=(*shape, channels), dtype=np.uint8)
        pixels[: shape[0] // 2] //= 3  # structure as well as noise
        picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        for height, width in SIZES:
            expected = np.asarray(ImageOps.fit(picture, (width, height), method=Image.Resampling.BILINEAR))
            actual = node_resize(pixels, (height, width)).astype(np.int16)
            difference = np.abs(actual - expected.reshape(height, width, channels))
            assert difference.max() <= 1, f"{shape} -> {(height, width)}"
            identical += int(difference.max() == 0)
    print(f"{identical} of {len(SHAPES) * len(SIZES)} resizes identical to Pillow's")
    assert identical >= 0.9 * len(SHAPES) * len(SIZES)
