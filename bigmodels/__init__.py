"""bigmodels: reference deep-learning applications on TensorFlow/Keras 3 for edge devices.

The public API is imported lazily, so ``import bigmodels.lite`` on a device never loads
TensorFlow.

Example:
    import bigmodels
    data = bigmodels.load_dataset("digits")
    model = bigmodels.get_model("cnn_classifier", input_shape=data.info.input_shape,
                                num_classes=data.info.num_classes)
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bigmodels")
except PackageNotFoundError:  # running from a source checkout that is not installed
    __version__ = "0.0.0+source"

_PUBLIC = {
    "register_model": "bigmodels.registry",
    "get_model": "bigmodels.registry",
    "list_models": "bigmodels.registry",
    "load_dataset": "bigmodels.data",
    "train_run": "bigmodels.runs",
    "evaluate_run": "bigmodels.runs",
    "read_run": "bigmodels.runs",
    "export_run": "bigmodels.export",
    "convert_tflite": "bigmodels.export",
    "classification_report": "bigmodels.evaluation",
    "TFLiteModel": "bigmodels.lite.runtime",
    "load_bundle": "bigmodels.lite.bundle",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bigmodels' has no attribute '{name}'")
