"""The TensorFlow-free runtime: numpy, Pillow and ai-edge-litert (and tflite-micro for TFLite Micro).

Nothing under ``bigmodels.lite`` may import tensorflow or keras: this is what runs on a phone,
a Raspberry Pi or a point-of-sale box.
"""

from bigmodels.lite.bundle import Bundle, load_bundle, run_selftest
from bigmodels.lite.images import IMAGE_EXTENSIONS, load_image
from bigmodels.lite.latents import code_categories, latents_for_class
from bigmodels.lite.micro import MicroModel, MicroUnsupported
from bigmodels.lite.reference import reference_bundles
from bigmodels.lite.runtime import TFLiteModel
from bigmodels.lite.samples import safe_file_part, save_samples
from bigmodels.lite.tokenizer import WordPieceTokenizer

__all__ = [
    "IMAGE_EXTENSIONS",
    "Bundle",
    "MicroModel",
    "MicroUnsupported",
    "TFLiteModel",
    "WordPieceTokenizer",
    "code_categories",
    "latents_for_class",
    "load_bundle",
    "load_image",
    "reference_bundles",
    "run_selftest",
    "safe_file_part",
    "save_samples",
]
