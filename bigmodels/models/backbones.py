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

Nothing here imports ``bigmodels.run_folder`` (it imports this package): a run's files are read
directly, and its model is loaded in Keras safe mode as ``load_run_model`` does.
"""

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import keras

from bigmodels.lite.reference import REFERENCE_NAMES, REFERENCE_ROOT
from bigmodels.models.registry import get_task_name

RUN_KIND = "run"
PRESET_KIND = "keras_hub_preset"
MODEL_KIND = "keras_model"
FEATURES_END = "pool"  # our image classifiers' global pooling layer: the features end there
REMOTE_SCHEMES = ("kaggle://", "hf://", "modelscope://", "gs://", "s3://")
# TFLite has builtin resize ops for these two; another interpolation falls back to bilinear.
TFLITE_INTERPOLATIONS = ("bilinear", "nearest")
EXAMPLE_SOURCES = "a run folder, saved_models/<name>, a keras-hub preset folder or a preset name"


class BackboneError(ValueError):
    """A --backbone that cannot be used, said in one line."""


@dataclass
class LoadedBackbone:
    """A backbone ready to be built into a classifier.

    Attributes:
        features: float pixels (0-255 for a run, after ``preprocessing`` for a preset) -> a
            feature map (4-D) or feature vectors (2-D); named "backbone".
        image_size: the (height, width) it takes; None when any size does.
        channels: the colour channels it takes.
        preprocessing: the preset's image converter (scale, offset, interpolation, cropping) to
            build in front of it; None when the features rescale pixels themselves (our runs).
        pooling: the source's own pooling layer, copied after the features (None: global average).
        record: what config.json records under "backbone".
        tokenizer: a text preset's WordPiece tokenizer (``text_tokenizer``'s dict: vocabulary,
            settings, the ids of its start, end and padding tokens); None for an image backbone.
    """

    features: keras.Model
    image_size: tuple[int, int] | None
    channels: int
    preprocessing: dict | None = None
    pooling: keras.layers.Layer | None = None
    record: dict = field(default_factory=dict)
    tokenizer: dict | None = None

    @property
    def data_kind(self) -> str:
        """What the backbone reads: "text" (token ids) or "image" (pixels)."""
        return "image" if self.tokenizer is None else "text"


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
    return _load_preset_backbone(source, location, image_size)


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
    clone = keras.models.clone_model(source_features, input_tensors=pixels)
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


@contextlib.contextmanager
def _reading_preset(source: str, location: str):
    """keras-hub's own failures as one line: for a handle, the download failed (offline, a proxy,
    a missing file); for a local folder, the file named in keras-hub's last line is bad."""
    try:
        yield
    except BackboneError:
        raise
    except Exception as error:
        if not Path(location).is_dir():
            raise BackboneError(
                f"preset {source} could not be downloaded: connect once, or pass a local preset folder"
            ) from None
        raise BackboneError(f"--backbone '{source}' cannot be loaded ({_last_line(error)})") from None


def _preset_config(source: str, location: str) -> tuple[dict, str]:
    """The preset's config.json (downloaded for a handle) and what its backbone reads: "image"
    (it has an image shape) or "text" (a vocabulary, and a tokenizer saved beside it)."""
    from keras_hub.src.utils import preset_utils

    config = preset_utils.load_json(location, preset_utils.CONFIG_FILE)
    arguments = config.get("config", {}) if isinstance(config, dict) else {}
    if isinstance(arguments, dict) and "image_shape" in arguments:
        return config, "image"
    has_tokenizer = preset_utils.check_file_exists(location, preset_utils.TOKENIZER_CONFIG_FILE)
    if isinstance(arguments, dict) and "vocabulary_size" in arguments and has_tokenizer:
        return config, "text"
    kind = str(config.get("registered_name") or config.get("class_name") or "model")
    raise BackboneError(
        f"--backbone '{source}' is a {kind.split('>')[-1]} preset, neither an image backbone nor a text "
        "backbone with its tokenizer; pass e.g. mobilenet_v3_small_100_imagenet or bert_tiny_en_uncased"
    )


def _image_converter(source: str, location: str):
    """The preset's ImageConverter: image_converter.json, or the preprocessor's own."""
    from keras_hub.src.utils import preset_utils

    for file_name in (preset_utils.IMAGE_CONVERTER_CONFIG_FILE, preset_utils.PREPROCESSOR_CONFIG_FILE):
        if not preset_utils.check_file_exists(location, file_name):
            continue
        config = preset_utils.load_json(location, file_name)
        if file_name == preset_utils.PREPROCESSOR_CONFIG_FILE:
            config = config.get("config", {}).get("image_converter")
        if config:
            return keras.saving.deserialize_keras_object(config), file_name
    raise BackboneError(
        f"--backbone '{source}': the preset has no image converter (image_converter.json), so how "
        "its pixels were scaled is unknown; save one into it with ImageConverter.save_to_preset"
    )


def _plain(value):
    """A JSON-ready copy of a converter setting (tuples and numpy numbers to lists and floats)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0):
        return [_plain(item) for item in list(value)]
    return int(value) if float(value).is_integer() and not isinstance(value, float) else float(value)


def converter_preprocessing(converter, file_name: str) -> dict:
    """What the model builds in front of the backbone from the preset's ImageConverter."""
    interpolation = converter.interpolation
    notes = []
    if interpolation not in TFLITE_INTERPOLATIONS:
        notes.append(f"{interpolation} interpolation is not a TFLite builtin: bilinear is used")
        interpolation = "bilinear"
    if getattr(converter, "antialias", False):
        notes.append("antialiasing is not a TFLite builtin: resizing does without it")
    if getattr(converter, "pad_to_aspect_ratio", False):
        notes.append("padding to the aspect ratio is not built in: images are resized without it")
    return {
        "from": f"the preset's {file_name} ({type(converter).__name__})",
        "image_size": _plain(converter.image_size),
        "scale": _plain(converter.scale),
        "offset": _plain(converter.offset),
        "interpolation": interpolation,
        "crop_to_aspect_ratio": bool(converter.crop_to_aspect_ratio),
        **({"notes": notes} if notes else {}),
    }


def preset_licence(location: str) -> str | None:
    """The licence the preset's metadata states (metadata.json, or keras-hub's preset table)."""
    from keras_hub.src.utils import preset_utils

    tables = []
    if preset_utils.check_file_exists(location, preset_utils.METADATA_FILE):
        tables.append(preset_utils.load_json(location, preset_utils.METADATA_FILE))
    tables.append(preset_utils.BUILTIN_PRESETS.get(location, {}).get("metadata", {}))
    for table in tables:
        for key in ("license", "licence", "License"):
            if isinstance(table, dict) and table.get(key):
                return str(table[key])
    return None


def _load_preset_backbone(source: str, location: str, image_size) -> LoadedBackbone:
    """A keras-hub backbone with its weights: an image one built for the given (or converter's)
    size, or a text one with its tokenizer."""
    with _reading_preset(source, location):
        config, kind = _preset_config(source, location)
        if kind == "text":
            return _load_text_preset(source, location)
        converter, converter_file = _image_converter(source, location)
        licence = preset_licence(location)
        preprocessing = converter_preprocessing(converter, converter_file)
        built_shape = config["config"].get("image_shape") or (None, None, 3)
        size = tuple(image_size or preprocessing["image_size"] or built_shape[:2])
        size = size if None not in size else None
        channels = built_shape[-1] or 3
        overrides = {"image_shape": (*size, channels)} if size else {}
        backbone = _backbone_from_preset(location, **overrides)
    record = {
        **_preset_record(source, location, backbone),
        "image_size": list(size) if size else None,
        "channels": channels,
        "preprocessing": preprocessing,
        "licence": licence,
    }
    return LoadedBackbone(backbone, size, channels, preprocessing, None, record)


def _backbone_from_preset(location: str, **overrides) -> keras.Model:
    import keras_hub

    return keras_hub.models.Backbone.from_preset(location, name="backbone", **overrides)


def _preset_record(source: str, location: str, backbone) -> dict:
    """What config.json records of any preset: where it is, its class and size."""
    local = Path(location).is_dir()
    return {
        "kind": PRESET_KIND,
        "source": str(source),
        "preset": Path(location).name if local else location,
        **({"path": str(Path(location).resolve())} if local else {}),
        "class": type(backbone).__name__,
        "parameters": int(backbone.count_params()),
    }


def _load_text_preset(source: str, location: str) -> LoadedBackbone:
    """A keras-hub text backbone and its WordPiece tokenizer's vocabulary and settings."""
    import keras_hub

    tokenizer = text_tokenizer(source, keras_hub.tokenizers.Tokenizer.from_preset(location))
    backbone = _backbone_from_preset(location)
    tokenizer["max_sequence_length"] = int(backbone.get_config().get("max_sequence_length") or 512)
    summary = {key: value for key, value in tokenizer.items() if key != "vocabulary"}
    record = {
        **_preset_record(source, location, backbone),
        "tokenizer": {**summary, "vocabulary_length": len(tokenizer["vocabulary"])},
        "licence": preset_licence(location),
    }
    return LoadedBackbone(backbone, None, 0, record=record, tokenizer=tokenizer)


def text_tokenizer(source: str, tokenizer) -> dict:
    """The preset tokenizer's vocabulary, settings and special token ids, checked to be what the
    run's tokenizer (and the TF-free one) reproduce: WordPiece, split on whitespace and
    punctuation, "##" pieces, "[UNK]", and padding id 0 (the id our text models mask)."""
    from keras_hub.tokenizers import WordPieceTokenizer

    if not isinstance(tokenizer, WordPieceTokenizer):
        raise BackboneError(
            f"--backbone '{source}': its tokenizer is a {type(tokenizer).__name__}, not a WordPiece "
            "tokenizer, which the TF-free runtime reproduces; pass a BERT-family preset "
            "(bert_tiny_en_uncased)"
        )
    if not tokenizer.split or tokenizer.suffix_indicator != "##" or tokenizer.oov_token != "[UNK]":
        raise BackboneError(
            f"--backbone '{source}': its WordPiece tokenizer does not split words or uses other pieces "
            f"(suffix {tokenizer.suffix_indicator!r}, unknown {tokenizer.oov_token!r}) than '##' and '[UNK]'"
        )
    ids = {role: getattr(tokenizer, f"{role}_token_id", None) for role in ("start", "end", "pad")}
    if None in (ids["start"], ids["end"]) or ids["pad"] != 0:
        raise BackboneError(
            f"--backbone '{source}': its tokenizer needs start and end tokens and padding id 0 "
            f"(it has start {ids['start']}, end {ids['end']}, padding {ids['pad']})"
        )
    return {
        "class": type(tokenizer).__name__,
        "vocabulary": [str(token) for token in tokenizer.get_vocabulary()],
        "lowercase": bool(tokenizer.lowercase),
        "strip_accents": bool(tokenizer.strip_accents),
        "split_on_cjk": bool(tokenizer.split_on_cjk),
        "start_id": int(ids["start"]),
        "end_id": int(ids["end"]),
        "padding_id": 0,
    }


def _last_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[-1] if lines else type(error).__name__)[:200]


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
