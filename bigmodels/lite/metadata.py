"""The schema of a bundle's ``metadata.json``: ``validate_metadata`` and its checks.

Every problem is one ``ValueError`` that names the bundle, the key and the remedy.
"""

from bigmodels.lite.bundle_format import (
    AGAIN,
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    CLASSIFIER_TASKS,
    FILE_NAME,
    MAX_BUNDLE_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    METADATA_FILE,
    SHA256_HEX,
    TASKS,
)


def metadata_error(label: str, key: str, problem: str) -> ValueError:
    """The error for one key of metadata.json (``Bundle`` also raises it when the model disagrees)."""
    return ValueError(f"{label}: {METADATA_FILE} key '{key}' {problem}; {AGAIN}")


def _type_name(value) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown[:40] + '...' if len(shown) > 40 else shown}"


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(mapping: dict, key: str, kind, label: str, description: str, *, path: str = ""):
    """``mapping[key]``, which must exist and be of ``kind`` (a type or a predicate)."""
    where = f"{path}.{key}" if path else key
    if key not in mapping:
        raise metadata_error(label, where, f"is missing (it must be {description})")
    value = mapping[key]
    if not (isinstance(value, kind) if isinstance(kind, type) else kind(value)):
        raise metadata_error(label, where, f"must be {description}, got {_type_name(value)}")
    return value


def _check_file_table(metadata: dict, label: str) -> dict:
    files = _require(metadata, "files", dict, label, "an object of file name -> {sha256, size_bytes}")
    if not files or len(files) > MAX_MEMBERS:
        raise metadata_error(label, "files", f"must list between 1 and {MAX_MEMBERS} files, got {len(files)}")
    for name, entry in files.items():
        if not FILE_NAME.fullmatch(name) or name == METADATA_FILE:
            raise metadata_error(
                label, "files", f"lists {name!r}, which is not a bare file name of the bundle"
            )
        if not isinstance(entry, dict):
            raise metadata_error(
                label, f"files.{name}", f"must be {{sha256, size_bytes}}, got {_type_name(entry)}"
            )
        _require(
            entry,
            "sha256",
            lambda v: isinstance(v, str) and SHA256_HEX.fullmatch(v),
            label,
            "64 lowercase hexadecimal digits",
            path=f"files.{name}",
        )
        _require(
            entry,
            "size_bytes",
            lambda v: _is_integer(v) and 0 <= v <= MAX_MEMBER_BYTES,
            label,
            f"a whole number of bytes, at most {MAX_MEMBER_BYTES:,}",
            path=f"files.{name}",
        )
    total = sum(entry["size_bytes"] for entry in files.values())
    if total > MAX_BUNDLE_BYTES:
        raise metadata_error(
            label, "files", f"adds up to {total:,} bytes, more than the {MAX_BUNDLE_BYTES:,} allowed"
        )
    return files


def _check_listed_name(value, files: dict, label: str, key: str) -> None:
    if value is None:
        raise metadata_error(label, key, "is missing (it must name a file of the bundle)")
    if not isinstance(value, str) or not FILE_NAME.fullmatch(value):
        raise metadata_error(
            label, key, f"must be a bare file name inside the bundle, got {_type_name(value)}"
        )
    if value not in files:
        raise metadata_error(label, key, f"names {value}, which the sha256 table 'files' does not list")


def _is_shape(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= 2
        and (value[0] is None or _is_integer(value[0]))
        and all(_is_integer(size) and size >= 1 for size in value[1:])
    )


def _check_specs(metadata: dict, task: str, label: str) -> None:
    for key in ("input", "output"):
        spec = _require(metadata, key, dict, label, "an object with dtype and shape")
        _require(spec, "dtype", str, label, "a dtype name", path=key)
        _require(spec, "shape", _is_shape, label, "a shape such as [null, 8, 8, 1]", path=key)
    shape = metadata["input"]["shape"]
    if task == "image_classification" and (len(shape) != 4 or shape[3] not in (1, 3)):
        raise metadata_error(label, "input.shape", f"must be [null, height, width, 1 or 3], got {shape}")


def _check_task_keys(metadata: dict, task: str, files: dict, label: str) -> None:
    names = _require(
        metadata,
        "class_names",
        lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
        label,
        "a list of strings",
    )
    if task in CLASSIFIER_TASKS and (not names or len(set(names)) != len(names)):
        raise metadata_error(label, "class_names", "must list each class once, and at least one")
    if task == "text_classification":
        tokenizer = _require(
            metadata, "tokenizer", dict, label, "an object naming vocabulary_file and settings_file"
        )
        for key in ("vocabulary_file", "settings_file"):
            _check_listed_name(tokenizer.get(key), files, label, f"tokenizer.{key}")
    if task == "image_generation":
        latent_size = _require(
            metadata, "latent_size", lambda v: _is_integer(v) and v >= 1, label, "a positive whole number"
        )
        if "class_code" in metadata:
            code = _require(metadata, "class_code", dict, label, "an object with latent_entries")
            entries = _require(
                code,
                "latent_entries",
                lambda v: _is_integer(v) and 1 <= v <= latent_size,
                label,
                f"a whole number from 1 to latent_size ({latent_size})",
                path="class_code",
            )
            if len(names) != entries:
                raise metadata_error(
                    label, "class_names", f"has {len(names)} names but the class code has {entries} entries"
                )


def _check_selftest(metadata: dict, files: dict, label: str) -> None:
    """The optional ``selftest`` key (bundles exported before it existed have none)."""
    if "selftest" not in metadata:
        return
    selftest = _require(metadata, "selftest", dict, label, "an object naming the self-test file")
    _check_listed_name(selftest.get("file"), files, label, "selftest.file")
    _require(
        selftest,
        "examples",
        lambda v: _is_integer(v) and v >= 1,
        label,
        "a positive whole number",
        path="selftest",
    )


def validate_metadata(metadata, label: str) -> dict:
    """Checks metadata.json against the bundle schema; the first problem is one ValueError.

    Raises:
        ValueError: naming the bundle, the key and the remedy (export the bundle again).
    """
    if not isinstance(metadata, dict):
        raise ValueError(f"{label}: {METADATA_FILE} is not a JSON object; {AGAIN}")
    version = metadata.get("format_version")
    if (
        metadata.get("format") != BUNDLE_FORMAT
        or not _is_integer(version)
        or version != BUNDLE_FORMAT_VERSION
    ):
        raise ValueError(
            f"{label}: bundle format {metadata.get('format')!r} version {version!r} is not supported "
            f"(this runtime reads {BUNDLE_FORMAT} version {BUNDLE_FORMAT_VERSION}); "
            "export the run again with this bigmodels version"
        )
    task = metadata.get("task")
    if task not in TASKS:
        raise ValueError(f"{label}: unknown task {task!r} in {METADATA_FILE}; {AGAIN}")
    files = _check_file_table(metadata, label)
    _check_listed_name(metadata.get("model_file"), files, label, "model_file")
    _check_specs(metadata, task, label)
    _check_task_keys(metadata, task, files, label)
    _check_selftest(metadata, files, label)
    for key in ("family", "quantization"):
        _require(metadata, key, str, label, "a string")
    _require(metadata, "metrics", dict, label, "an object")
    for key in ("preprocessing", "model_args"):
        if key in metadata:
            _require(metadata, key, dict, label, "an object")
    return metadata
