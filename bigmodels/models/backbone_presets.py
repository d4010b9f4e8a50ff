"""keras-hub presets as backbones (``--backbone`` with a preset folder or handle): an image
preset's backbone with its ``ImageConverter``'s size, scale and offset, which the classifier
builds into itself; a text preset's backbone with its WordPiece tokenizer's vocabulary and
settings, which the run uses instead of learning a vocabulary."""

import contextlib
from pathlib import Path

import keras

from bigmodels.models.backbone_types import (
    PRESET_KIND,
    TFLITE_INTERPOLATIONS,
    BackboneError,
    LoadedBackbone,
    last_line,
)


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
        raise BackboneError(f"--backbone '{source}' cannot be loaded ({last_line(error)})") from None


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


def load_preset_backbone(source: str, location: str, image_size) -> LoadedBackbone:
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
