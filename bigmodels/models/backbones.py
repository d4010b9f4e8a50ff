"""Pretrained feature extractors for transfer learning (``--backbone``).

Two sources give the same thing, a nested Keras model named "backbone" (float pixels in, a
feature map out) plus what must happen in front of it so that the classifier still takes raw
uint8 pixels:

- one of our own image runs (a run folder, or ``saved_models/<name>/`` holding ``run/``, or a
  shipped reference's name such as ``cifar10_tiny``): its layers up to the global pooling layer
  named ``pool``; its rescaling is among them;
- a keras-hub image preset (a local preset folder, or a handle such as
  ``mobilenet_v3_small_100_imagenet``): the preset's backbone, and its ``ImageConverter``'s
  size, scale and offset, which the classifier builds into itself;
- a keras-hub text preset with a WordPiece tokenizer (``bert_tiny_en_uncased``, or a folder):
  the preset's backbone (token ids in) and its tokenizer's vocabulary and settings, which the
  run uses instead of learning a vocabulary, so that the TF-free tokenizer of a bundle gives the
  preset's own ids.

This module finds the source and reads our runs; ``backbone_presets`` loads keras-hub presets
and ``backbone_types`` holds what both return. Nothing here imports ``bigmodels.run_folder`` (it
imports this package): a run's files are read directly, and its model is loaded in Keras safe
mode as ``load_run_model`` does.
"""

import json
import math
from pathlib import Path

import keras

from bigmodels.lite.reference import REFERENCE_NAMES, REFERENCE_ROOT
from bigmodels.models.backbone_presets import load_preset_backbone
from bigmodels.models.backbone_types import (
    MODEL_KIND,
    PRESET_KIND,
    RUN_KIND,
    BackboneError,
    LoadedBackbone,
)
from bigmodels.models.layers import MirrorPairs
from bigmodels.models.registry import get_task_name

FEATURES_END = "pool"  # our image classifiers' global pooling layer: the features end there
REMOTE_SCHEMES = ("kaggle://", "hf://", "modelscope://", "gs://", "s3://")
EXAMPLE_SOURCES = "a run folder, saved_models/<name>, a keras-hub preset folder or a preset name"


def locate_backbone(source: str) -> tuple[str, str]:
    """(kind, location) of a --backbone: a run folder, or a keras-hub preset folder or handle.

    Raises:
        FileNotFoundError: ``source`` looks like a path and nothing is there.
        ValueError: a folder that is neither a run nor a preset, or a name keras-hub does not know.
    """
    if not isinstance(source, str) or not source.strip():
        raise BackboneError(f"--backbone must name {EXAMPLE_SOURCES}, got {source!r}")
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "model.keras").is_file():
            return RUN_KIND, str(path)
        if (path / "run" / "model.keras").is_file():  # a shipped reference folder
            return RUN_KIND, str(path / "run")
        if (path / "config.json").is_file():
            return PRESET_KIND, str(path)
        raise BackboneError(
            f"--backbone '{source}' is neither a run folder (model.keras, config.json), a "
            "saved_models/<name> folder with run/, nor a keras-hub preset folder (config.json); "
            f"pass {EXAMPLE_SOURCES}"
        )
    if path.exists():
        raise BackboneError(f"--backbone '{source}' is a file, not a folder; pass {EXAMPLE_SOURCES}")
    shipped = REFERENCE_ROOT / source / "run"
    if source in REFERENCE_NAMES and (shipped / "model.keras").is_file():  # --backbone cifar10_tiny
        return RUN_KIND, str(shipped)
    if source.startswith(REMOTE_SCHEMES) or source in _builtin_presets():
        return PRESET_KIND, source
    if "/" in source or "\\" in source or source.startswith((".", "~")):
        raise FileNotFoundError(f"backbone folder '{source}' does not exist; pass {EXAMPLE_SOURCES}")
    raise BackboneError(
        f"--backbone '{source}' is neither a folder nor a keras-hub preset name; "
        "e.g. --backbone mobilenet_v3_small_100_imagenet, or a run folder"
    )


def _builtin_presets() -> dict:
    import keras_hub

    return keras_hub.models.Backbone.presets


def load_backbone(source, *, image_size: tuple[int, int] | None = None) -> LoadedBackbone:
    """The backbone ``source`` names (or a Keras model given in Python), at ``image_size``.

    Args:
        source: a run folder, ``saved_models/<name>``, a keras-hub preset folder or handle; or a
            ``keras.Model`` from float pixels (0-255) to features.
        image_size: (height, width) to build it for; None: the source's own size.

    Example:
        backbone = load_backbone("runs/cifar")
        backbone = load_backbone("mobilenet_v3_small_100_imagenet", image_size=(160, 160))
    """
    if isinstance(source, keras.Model):
        return _wrap_model(source)
    kind, location = locate_backbone(source)
    if kind == RUN_KIND:
        return _load_run_backbone(source, Path(location), image_size)
    return load_preset_backbone(source, location, image_size)


def _wrap_model(model: keras.Model) -> LoadedBackbone:
    shape = model.input_shape[1:]
    size = tuple(shape[:2]) if None not in shape[:2] else None
    return LoadedBackbone(model, size, shape[-1], record={"kind": MODEL_KIND, "name": model.name})


def _read_run_config(source: str, run_dir: Path) -> dict:
    """The run's config.json, checked to be an image classifier's."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BackboneError(
            f"--backbone '{source}': {run_dir / 'config.json'} is not readable ({error})"
        ) from None
    model_name = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model_name, str):
        raise BackboneError(
            f"--backbone '{source}': {run_dir / 'config.json'} names no model; train it again"
        )
    task = get_task_name(model_name)
    if task != "image_classification":
        raise BackboneError(
            f"--backbone '{source}' is a {task.replace('_', ' ')} run ({model_name}); a backbone run "
            "must be an image classifier's (for text, pass a keras-hub text preset such as "
            "bert_tiny_en_uncased: bigmodels has no pretrained text encoder of its own)"
        )
    return config


def _load_run_model(source: str, run_dir: Path, config: dict):
    if "backbone" in config:
        import keras_hub  # noqa: F401  a run built on a preset holds keras-hub layers
    try:
        return keras.models.load_model(run_dir / "model.keras", safe_mode=True)
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as error:
        last = (str(error).strip().splitlines() or [type(error).__name__])[-1][:200]
        raise BackboneError(
            f"--backbone '{source}': {run_dir / 'model.keras'} cannot be loaded ({last})"
        ) from None


def _load_run_backbone(source: str, run_dir: Path, image_size) -> LoadedBackbone:
    """A run's layers up to its global pooling layer, rebuilt on a float input of ``image_size``.

    A float input, not the run's uint8 one: the classifier may resize (or widen grayscale)
    before it, and casting resized pixels back to uint8 would round them.
    """
    config = _read_run_config(source, run_dir)
    model = _load_run_model(source, run_dir, config)
    names = [layer.name for layer in model.layers]
    if FEATURES_END not in names:
        raise BackboneError(
            f"--backbone '{source}': its model has no layer named '{FEATURES_END}' (the global pooling "
            "that ends the features); pass a run of cnn_classifier or backbone_classifier"
        )
    pool = model.get_layer(FEATURES_END)
    height, width, channels = model.input_shape[1:]
    size = tuple(image_size) if image_size else (height, width)
    source_features = keras.Model(model.inputs[0], pool.input)
    pixels = keras.Input(shape=(*size, channels), dtype="float32", name="pixels")
    # A run that averages mirrored views (flip_average) lends its features without the mirroring:
    # the new classifier mirrors (or not) by its own flag.
    clone = keras.models.clone_model(source_features, input_tensors=pixels, clone_function=_without_mirroring)
    clone.set_weights(source_features.get_weights())
    features = keras.Model(clone.inputs[0], clone.outputs[0], name="backbone")
    record = {
        "kind": RUN_KIND,
        "source": str(source),
        "path": str(run_dir.resolve()),
        "model": config["model"],
        "model_args": {k: v for k, v in config.get("model_args", {}).items() if k != "variant_chosen_by"},
        "data_source": config.get("data", {}).get("source"),
        "image_size": list(size),
        "trained_image_size": [height, width],
        "channels": channels,
        "licence": None,
    }
    pooling = pool.__class__.from_config(pool.get_config())
    return LoadedBackbone(features, size, channels, None, pooling, record)


def _without_mirroring(layer):
    if isinstance(layer, MirrorPairs):
        return keras.layers.Identity(name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def backbone_layer_names(features: keras.Model) -> list[str]:
    """The backbone's own layers, in order (its input layer left out): what --fine-tune-from names."""
    return [layer.name for layer in features.layers if not isinstance(layer, keras.layers.InputLayer)]


def check_fine_tune_from(features: keras.Model, name: str | None) -> None:
    """Raises ValueError unless ``name`` (when given) is one of the backbone's layers."""
    if name is None:
        return
    names = backbone_layer_names(features)
    if name not in names:
        step = max(1, math.ceil(len(names) / 6))
        some = ", ".join(names[::step][:6])
        raise BackboneError(
            f"--fine-tune-from '{name}' names no layer of the backbone; its {len(names)} layers run "
            f"from '{names[0]}' to '{names[-1]}' (e.g. {some})"
        )
