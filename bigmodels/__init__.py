"""bigmodels: reference deep-learning applications on TensorFlow/Keras 3 for edge devices.

The public API is imported lazily, so ``import bigmodels.lite`` on a device never loads
TensorFlow. Apps, benchmarks and notebooks use only these names, ``bigmodels.cli`` (the apps'
flags and one-line errors) and ``bigmodels.lite`` (the device runtime).

Example:
    import bigmodels
    data = bigmodels.load_dataset("digits")
    model = bigmodels.get_model("cnn_classifier", input_shape=data.info.input_shape,
                                num_classes=data.info.num_classes)
    run_dir, metrics = bigmodels.train_run("cnn_classifier", "digits", "runs/digits", epochs=5)
    report = bigmodels.export_run(run_dir)
    model = bigmodels.load_model(run_dir)  # safe mode, the package's layers registered
"""

import sys
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bigmodels")
except PackageNotFoundError:  # running from a source checkout that is not installed
    __version__ = "0.0.0+source"

_PUBLIC = {
    # models
    "register_model": "bigmodels.models.registry",
    "get_model": "bigmodels.models.registry",
    "list_models": "bigmodels.models.registry",
    "uint8_generator": "bigmodels.models.dcgan",
    "multiply_accumulates": "bigmodels.models.cost",
    # data
    "load_dataset": "bigmodels.data",
    "read_table": "bigmodels.data",
    "TokenizerSettings": "bigmodels.data.vocabulary",
    "learn_vocabulary": "bigmodels.data.vocabulary",
    # workflows, one per verb
    "train_run": "bigmodels.workflows.train",
    "evaluate_run": "bigmodels.workflows.evaluate",
    "evaluate_bundle": "bigmodels.workflows.evaluate",
    "export_run": "bigmodels.workflows.export",
    "prune_run": "bigmodels.workflows.prune",
    "distill_run": "bigmodels.workflows.distill",
    "cluster_run": "bigmodels.workflows.cluster",
    "qat_run": "bigmodels.workflows.qat",
    "check_compression_chain": "bigmodels.workflows.derived",
    # the run folder
    "read_run": "bigmodels.run_folder",
    "load_model": "bigmodels.run_folder",
    # tasks: what kind of model a registered name is
    "task_of": "bigmodels.tasks",
    # training, quality and conversion pieces the notebooks use
    "compile_classifier": "bigmodels.training.classifier",
    "RECIPES": "bigmodels.training.recipes",
    "fixed_latents": "bigmodels.training.gan",
    "generate_uint8": "bigmodels.training.gan",
    "image_grid": "bigmodels.training.gan",
    "classification_report": "bigmodels.quality.classification",
    "GeneratedImageScorer": "bigmodels.quality.generation",
    "QUANTIZATION_MODES": "bigmodels.convert.tflite",
    "convert_tflite": "bigmodels.convert.tflite",
    # the device runtime (also importable alone as bigmodels.lite)
    "TFLiteModel": "bigmodels.lite.runtime",
    "load_bundle": "bigmodels.lite.bundle",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bigmodels' has no attribute '{name}'")


class _RegisterLayersWithKeras:
    """Registers the package's Keras layers as soon as Keras itself is imported.

    ``keras.saving.load_model("run/model.keras")`` after a plain ``import bigmodels`` must find
    the package's own layers, but importing them here would load TensorFlow for
    ``bigmodels.lite``, which must run without it. So this import hook waits for Keras: when a
    program imports Keras (and so can load a model), the layers module follows it.
    """

    searching = False

    def find_spec(self, name, path=None, target=None):
        # TensorFlow asks find_spec("keras") only to see whether Keras is installed, so the hook
        # stays until Keras is really executed; the flag stops it finding itself.
        if name != "keras" or self.searching:
            return None
        from importlib.util import find_spec

        self.searching = True
        try:
            spec = find_spec("keras")
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module = self._then_register(spec.loader.exec_module)
        return spec

    def _then_register(self, execute):
        def exec_module(module):
            execute(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register_layers()

        return exec_module


def _register_layers() -> None:
    """The builders' layers and quantization-aware training's (which a QAT run's model holds)."""
    import_module("bigmodels.models")
    import_module("bigmodels.compress.quantized_layers")


if sys.modules.get("keras") is not None:  # None: a runtime that blocks Keras (the lite tests)
    _register_layers()
elif not any(isinstance(finder, _RegisterLayersWithKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterLayersWithKeras())
