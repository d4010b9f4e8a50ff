"""The TensorFlow-free runtime: numpy, Pillow and ai-edge-litert only.

Nothing under ``bigmodels.lite`` may import tensorflow or keras: this is what runs on a phone,
a Raspberry Pi or a point-of-sale box.
"""

from bigmodels.lite.bundle import Bundle, load_bundle
from bigmodels.lite.images import load_image
from bigmodels.lite.runtime import TFLiteModel
from bigmodels.lite.tokenizer import WordPieceTokenizer

__all__ = ["Bundle", "TFLiteModel", "WordPieceTokenizer", "load_bundle", "load_image"]
