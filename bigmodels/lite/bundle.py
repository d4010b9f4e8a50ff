"""Deployment bundles on a device: verify, load, predict or generate (numpy, Pillow, ai-edge-litert).

A bundle is a folder (or a .zip of it) holding one .tflite file, ``metadata.json`` (what goes
in and out, class names, preprocessing, tokenizer settings, metrics, the sha256 of every file)
and ``MODEL_CARD.md``; a text bundle adds ``vocabulary.txt`` and ``tokenizer.json``.

Nothing reaches the interpreter or the tokenizer before it is verified:

- ``metadata.json`` (at most ``MAX_METADATA_BYTES``) must match the schema that
  ``validate_metadata`` checks: types, required keys, every file the runtime opens (model,
  vocabulary, tokenizer settings) listed in the sha256 table ``files`` under a bare file name
  (no folder, ``..`` or absolute path). Each problem is one ``ValueError`` naming the bundle and
  the key.
- Each listed file must be a regular file (not a link, folder or device) whose size, taken from
  its directory entry before a byte is read, equals its recorded ``size_bytes`` and is at most
  ``MAX_MEMBER_BYTES``; all of them together at most ``MAX_BUNDLE_BYTES``. It is read once, and
  the bytes that were hashed are the bytes the interpreter and the tokenizer get.
- A .zip is checked from its directory before anything is decompressed: at most
  ``MAX_MEMBERS`` members, a declared expanded size of at most ``MAX_BUNDLE_BYTES`` (each
  member at most ``MAX_MEMBER_BYTES``), no links, absolute paths, ``..`` or folders below the one
  bundle folder. Members are read into memory (never extracted), a read stops one byte past the
  declared size, and only a verified bundle is copied to a temporary folder (``Bundle.folder``).
- Once the model is loaded: as many class names as the model gives scores, and the input shape,
  latent size and sequence length the model takes.

The sha256s catch corruption, truncated copies and files mixed up between bundles. They do not
stop someone who can rewrite ``metadata.json`` as well: compare the bundle's own sha256 (e.g.
``sha256sum bundle.zip``) with one published somewhere else for that.
"""

import hashlib
import json
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bigmodels.lite.images import load_image, to_array
from bigmodels.lite.runtime import TFLiteModel
from bigmodels.lite.tokenizer import WordPieceTokenizer

BUNDLE_FORMAT = "bigmodels-bundle"
BUNDLE_FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
TASKS = ("image_classification", "text_classification", "image_generation")
CLASSIFIER_TASKS = ("image_classification", "text_classification")

# Size caps, checked before anything is read or decompressed. Real bundles are far below them:
# metadata.json is a few KB, a bundled model a few hundred KB to tens of MB, a bundle 2 to 5 files.
MAX_METADATA_BYTES = 1 << 20  # 1 MiB for metadata.json
MAX_MEMBER_BYTES = 256 << 20  # 256 MiB for any one file (a .zip member: its expanded size)
MAX_BUNDLE_BYTES = 512 << 20  # 512 MiB for all files together (a .zip: all members, expanded)
MAX_MEMBERS = 64  # files listed in metadata.json, or members (folders included) of a .zip
MAX_ZIP_DIRECTORY_BYTES = 1 << 20  # a .zip's central directory, read before the members are counted

# A file the runtime opens is named by a bare file name: no folder, no "..", no absolute path.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_END_OF_ZIP_DIRECTORY = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
AGAIN = "export the bundle again"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _size_check(label: str, name: str, size: int, expected: int | None, limit: int) -> None:
    """Refuses a file from its recorded or declared size, before a byte of it is read."""
    if size > limit:
        raise ValueError(
            f"{label}: {name} is {size:,} bytes, more than the {limit:,} a bundle file may have; refused"
        )
    if expected is not None and size != expected:
        raise ValueError(
            f"{label}: {name} does not match its entry in {METADATA_FILE}'s sha256 table: it is "
            f"{size:,} bytes, the table records {expected:,} (a truncated or changed copy); "
            "copy the bundle again"
        )


class _FolderFiles:
    """A bundle folder's files: plain files only, sized by their directory entry before reading."""

    _FLAGS = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)  # a link swapped in after lstat is not followed
        | getattr(os, "O_NONBLOCK", 0)  # nor does a FIFO swapped in block the open
        | getattr(os, "O_BINARY", 0)
    )

    def __init__(self, folder: Path, label: str):
        self.folder, self.label = folder, label

    def read(self, name: str, expected: int | None, limit: int, *, missing: str) -> bytes:
        path = self.folder / name
        try:
            entry = os.lstat(path)
            self._check(name, entry, expected, limit)
            descriptor = os.open(path, self._FLAGS)
        except FileNotFoundError:
            raise ValueError(f"{self.label}: {name} {missing}") from None
        except OSError as error:
            raise ValueError(
                f"{self.label}: {name} cannot be read ({error.strerror}); check its permissions"
            ) from error
        with os.fdopen(descriptor, "rb") as handle:
            self._check(name, os.fstat(handle.fileno()), expected, limit)  # the file opened
            data = handle.read(entry.st_size + 1)
        if len(data) != entry.st_size:
            raise ValueError(f"{self.label}: {name} changed while it was read; load the bundle again")
        return data

    def _check(self, name: str, entry: os.stat_result, expected: int | None, limit: int) -> None:
        if not stat.S_ISREG(entry.st_mode):
            raise ValueError(
                f"{self.label}: {name} is not a plain file (a link, folder or device); a bundle holds "
                "plain files only; copy the bundle again"
            )
        _size_check(self.label, name, entry.st_size, expected, limit)

    def close(self) -> None:
        pass


def _check_zip_directory(archive: Path, label: str) -> None:
    """Refuses, from the end record alone, a .zip with too many members or a huge directory,
    before ``zipfile`` parses the directory (it would build one object per entry first)."""
    with open(archive, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        tail_length = min(size, 22 + 0xFFFF)  # the end record, then a comment of up to 64 KiB
        handle.seek(size - tail_length)
        tail = handle.read(tail_length)
    at = tail.rfind(_END_OF_ZIP_DIRECTORY)
    if at < 0 or at + 22 > len(tail):
        return  # not a zip at all: zipfile says so below
    entries, directory_bytes = struct.unpack("<HI", tail[at + 10 : at + 16])
    zip64 = at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR  # a count too large for 16 bits
    if zip64 or entries > MAX_MEMBERS:
        raise ValueError(f"{label}: the archive holds more than {MAX_MEMBERS} members; not a bundle; refused")
    if directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise ValueError(
            f"{label}: the archive's directory is {directory_bytes:,} bytes, more than the "
            f"{MAX_ZIP_DIRECTORY_BYTES:,} a bundle's may have; refused"
        )


def _unsafe_member(name: str, is_folder: bool) -> str | None:
    """Why a .zip member name is refused, or None."""
    parts = name.rstrip("/").split("/") if is_folder else name.split("/")
    if name.startswith("/") or "\\" in name or ":" in name or any(ord(c) < 32 for c in name):
        return "an absolute or unusual path"
    if any(part in ("", ".", "..") for part in parts):
        return "a path with '..' or an empty or '.' part"
    if len(parts) > 2 or (is_folder and len(parts) > 1):
        return "a folder below the bundle folder"
    return None


class _ArchiveFiles:
    """A bundle .zip's members, read into memory after the archive's directory passed every cap;
    nothing is extracted."""

    def __init__(self, archive: Path, label: str):
        self.label = label
        try:
            _check_zip_directory(archive, label)
            self.zip = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
            raise ValueError(
                f"{archive}: not a bundle archive ({error}); pass the .zip or the bundle folder"
            ) from error
        try:
            self.members = self._check_directory(self.zip.infolist())
        except ValueError:
            self.zip.close()
            raise

    def _check_directory(self, members: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        """Every cap and path rule, from the directory alone; returns the bundle folder's files."""
        if len(members) > MAX_MEMBERS:
            raise ValueError(
                f"{self.label}: the archive holds {len(members)} members, more than {MAX_MEMBERS}; refused"
            )
        declared = sum(member.file_size for member in members)
        if declared > MAX_BUNDLE_BYTES:
            raise ValueError(
                f"{self.label}: the archive expands to {declared:,} bytes, more than the "
                f"{MAX_BUNDLE_BYTES:,} a bundle may have; refused before extracting anything"
            )
        names = set()
        for member in members:
            problem = _unsafe_member(member.filename, member.is_dir())
            if stat.S_ISLNK(member.external_attr >> 16):
                problem = "a symbolic link"
            elif member.filename in names:
                problem = "a second member of the same name"
            elif member.flag_bits & 0x1:
                problem = "an encrypted member"
            if problem:
                raise ValueError(f"{self.label}: the archive holds {problem} ({member.filename!r}); refused")
            _size_check(self.label, member.filename, member.file_size, None, MAX_MEMBER_BYTES)
            names.add(member.filename)
        files = [member for member in members if not member.is_dir()]
        folders = {member.filename.split("/")[0] for member in files if "/" in member.filename}
        prefix = "" if METADATA_FILE in names else (f"{folders.pop()}/" if len(folders) == 1 else None)
        if prefix is None or f"{prefix}{METADATA_FILE}" not in names:
            raise ValueError(f"{self.label}: no {METADATA_FILE}; this is not a bigmodels bundle")
        return {
            member.filename[len(prefix) :]: member
            for member in files
            if member.filename.startswith(prefix) and "/" not in member.filename[len(prefix) :]
        }

    def read(self, name: str, expected: int | None, limit: int, *, missing: str) -> bytes:
        member = self.members.get(name)
        if member is None:
            raise ValueError(f"{self.label}: {name} {missing}")
        _size_check(self.label, name, member.file_size, expected, limit)
        try:
            with self.zip.open(member) as handle:
                data = handle.read(member.file_size + 1)  # stops past the declared size
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            NotImplementedError,
            RuntimeError,
        ) as error:
            raise ValueError(
                f"{self.label}: {name} cannot be decompressed ({error}); copy the bundle again"
            ) from error
        if len(data) != member.file_size:
            raise ValueError(
                f"{self.label}: {name} expands to a size other than the {member.file_size:,} bytes its "
                "header declares; refused"
            )
        return data

    def close(self) -> None:
        self.zip.close()


def _metadata_error(label: str, key: str, problem: str) -> ValueError:
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
        raise _metadata_error(label, where, f"is missing (it must be {description})")
    value = mapping[key]
    if not (isinstance(value, kind) if isinstance(kind, type) else kind(value)):
        raise _metadata_error(label, where, f"must be {description}, got {_type_name(value)}")
    return value


def _check_file_table(metadata: dict, label: str) -> dict:
    files = _require(metadata, "files", dict, label, "an object of file name -> {sha256, size_bytes}")
    if not files or len(files) > MAX_MEMBERS:
        raise _metadata_error(
            label, "files", f"must list between 1 and {MAX_MEMBERS} files, got {len(files)}"
        )
    for name, entry in files.items():
        if not FILE_NAME.fullmatch(name) or name == METADATA_FILE:
            raise _metadata_error(
                label, "files", f"lists {name!r}, which is not a bare file name of the bundle"
            )
        if not isinstance(entry, dict):
            raise _metadata_error(
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
        raise _metadata_error(
            label, "files", f"adds up to {total:,} bytes, more than the {MAX_BUNDLE_BYTES:,} allowed"
        )
    return files


def _check_listed_name(value, files: dict, label: str, key: str) -> None:
    if value is None:
        raise _metadata_error(label, key, "is missing (it must name a file of the bundle)")
    if not isinstance(value, str) or not FILE_NAME.fullmatch(value):
        raise _metadata_error(
            label, key, f"must be a bare file name inside the bundle, got {_type_name(value)}"
        )
    if value not in files:
        raise _metadata_error(label, key, f"names {value}, which the sha256 table 'files' does not list")


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
        raise _metadata_error(label, "input.shape", f"must be [null, height, width, 1 or 3], got {shape}")


def _check_task_keys(metadata: dict, task: str, files: dict, label: str) -> None:
    names = _require(
        metadata,
        "class_names",
        lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
        label,
        "a list of strings",
    )
    if task in CLASSIFIER_TASKS and (not names or len(set(names)) != len(names)):
        raise _metadata_error(label, "class_names", "must list each class once, and at least one")
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
                raise _metadata_error(
                    label, "class_names", f"has {len(names)} names but the class code has {entries} entries"
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
    for key in ("family", "quantization"):
        _require(metadata, key, str, label, "a string")
    _require(metadata, "metrics", dict, label, "an object")
    for key in ("preprocessing", "model_args"):
        if key in metadata:
            _require(metadata, key, dict, label, "an object")
    return metadata


def _read_metadata(files, label: str) -> tuple[dict, bytes]:
    raw = files.read(
        METADATA_FILE, None, MAX_METADATA_BYTES, missing="is missing; this is not a bigmodels bundle"
    )
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{label}: {METADATA_FILE} is unreadable ({error}); {AGAIN}") from error
    return validate_metadata(metadata, label), raw


def _read_listed_files(files, metadata: dict, label: str) -> dict[str, bytes]:
    """Each file of the sha256 table, read once and hashed; the bytes returned are those hashed."""
    contents = {}
    for name, entry in metadata["files"].items():
        data = files.read(
            name,
            entry["size_bytes"],
            MAX_MEMBER_BYTES,
            missing="is missing from the bundle; copy the whole bundle",
        )
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(
                f"{label}: {name} does not match its sha256 in {METADATA_FILE} (changed or corrupted); "
                "refusing to load it; copy the bundle again"
            )
        contents[name] = data
    return contents


def read_verified_metadata(folder: Path) -> dict:
    """metadata.json of a bundle folder, after checking its schema and every file's size and sha256."""
    files = _FolderFiles(Path(folder), str(folder))
    metadata, _ = _read_metadata(files, str(folder))
    _read_listed_files(files, metadata, str(folder))
    return metadata


def _load_model(content: bytes, metadata: dict, label: str, num_threads: int) -> TFLiteModel:
    try:
        return TFLiteModel(content, num_threads=num_threads)
    except (ValueError, RuntimeError, IndexError) as error:  # IndexError: a model without inputs
        raise ValueError(
            f"{label}: {metadata['model_file']} is not a model ai-edge-litert can load ({error}); {AGAIN}"
        ) from error


def _load_tokenizer(contents: dict, metadata: dict, label: str) -> WordPieceTokenizer:
    names = metadata["tokenizer"]
    try:
        return WordPieceTokenizer.from_bytes(
            contents[names["vocabulary_file"]],
            contents[names["settings_file"]],
            source=names["settings_file"],
        )
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from error


def _check_against_model(bundle: "Bundle", label: str) -> None:
    """What metadata.json says against what the loaded model takes and gives."""
    metadata, model = bundle.metadata, bundle.model
    takes = [int(size) for size in model.input_detail["shape"][1:]]
    gives = [int(size) for size in model.output_detail["shape"][1:]]
    if metadata["input"]["shape"][1:] != takes:
        raise _metadata_error(
            label,
            "input.shape",
            f"says {metadata['input']['shape']} but the model takes [null, {', '.join(map(str, takes))}]",
        )
    if bundle.task in CLASSIFIER_TASKS and gives[-1:] != [len(bundle.class_names)]:
        raise _metadata_error(
            label,
            "class_names",
            f"has {len(bundle.class_names)} names but the model gives {gives[-1] if gives else 0} scores",
        )
    if bundle.task == "image_generation" and takes != [metadata["latent_size"]]:
        raise _metadata_error(
            label, "latent_size", f"is {metadata['latent_size']} but the model takes {takes}"
        )
    if bundle.tokenizer is not None and [bundle.tokenizer.sequence_length] != takes:
        raise _metadata_error(
            label,
            "tokenizer",
            f"gives {bundle.tokenizer.sequence_length} ids per text but the model takes {takes}",
        )


class Bundle:
    """A verified bundle, ready to run.

    Example:
        bundle = load_bundle("digits_bundle.zip")
        bundle.predict(["three.png"])  # [{"label": "3", "score": 0.98, "scores": {...}}]
        bundle.predict(["what a lovely film"])  # text bundles take strings
        bundle.generate(4, seed=0)  # image_generation bundles: (4, H, W, C) uint8
    """

    def __init__(
        self,
        folder: Path,
        metadata: dict,
        *,
        num_threads: int = 1,
        contents: dict[str, bytes] | None = None,
        label: str | None = None,
    ):
        """``contents``: the listed files' verified bytes (``load_bundle`` passes them); without
        them, ``metadata`` is validated and the files are read from ``folder`` and verified."""
        label = label or str(folder)
        if contents is None:
            metadata = validate_metadata(metadata, label)
            contents = _read_listed_files(_FolderFiles(Path(folder), label), metadata, label)
        self.folder, self.metadata = Path(folder), metadata
        self.task = metadata["task"]
        self.class_names = metadata.get("class_names", [])
        self.model = _load_model(contents[metadata["model_file"]], metadata, label, num_threads)
        self.tokenizer = None
        if self.task == "text_classification":
            self.tokenizer = _load_tokenizer(contents, metadata, label)
        _check_against_model(self, label)

    def prepare(self, inputs) -> np.ndarray:
        """Turns image paths / uint8 arrays or strings into the model's input batch."""
        if self.task == "text_classification":
            if isinstance(inputs, str):
                inputs = [inputs]
            return self.tokenizer([str(text) for text in inputs])
        if self.task != "image_classification":
            raise ValueError(f"a {self.task} bundle has no predict(); use generate(n, seed)")
        height, width, channels = self.metadata["input"]["shape"][1:]
        if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
            inputs = list(inputs)
        if isinstance(inputs, str | Path | np.ndarray):
            inputs = [inputs]
        batch = []
        for item in inputs:
            if isinstance(item, str | Path):
                batch.append(load_image(item, size=(height, width), channels=channels))
            else:
                batch.append(self._array_to_input(np.asarray(item), height, width, channels))
        return np.stack(batch)

    @staticmethod
    def _array_to_input(array: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
        from PIL import Image

        if array.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 pixels (0-255), got {array.dtype}")
        if array.shape == (height, width, channels):
            return array
        picture = Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
        return to_array(picture, size=(height, width), channels=channels)

    def predict(self, inputs, *, top_k: int | None = None) -> list[dict]:
        """Labels with scores, best first, for each input (image paths or arrays, or strings)."""
        probabilities = self.model.predict(self.prepare(inputs))
        results = []
        for row in probabilities:
            order = np.argsort(-row)[: top_k or len(row)]
            results.append(
                {
                    "label": self.class_names[order[0]],
                    "score": round(float(row[order[0]]), 6),
                    "scores": {self.class_names[i]: round(float(row[i]), 6) for i in order},
                }
            )
        return results

    def generate(self, count: int, *, seed: int = 0, label: str | None = None) -> np.ndarray:
        """``count`` uint8 images from seeded latent vectors (image_generation bundles); with
        ``label``, all of that class (bundles whose generator was conditioned on the class)."""
        if self.task != "image_generation":
            raise ValueError(f"a {self.task} bundle has no generate(); use predict(inputs)")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        latents = np.random.default_rng(seed).standard_normal((count, self.metadata["latent_size"]))
        if label is not None:
            latents = self._draw_class(latents, label)
        images = self.model.predict(latents.astype(np.float32))
        return np.clip(np.round(images), 0, 255).astype(np.uint8)

    def _draw_class(self, latents: np.ndarray, label: str) -> np.ndarray:
        code = self.metadata.get("class_code")
        if code is None:
            raise ValueError("this generator was not conditioned on the class; generate without a label")
        if label not in self.class_names:
            raise ValueError(f"unknown label '{label}'; the generator draws {', '.join(self.class_names)}")
        return latents_for_class(latents, self.class_names.index(label), code["latent_entries"])


def code_categories(latents: np.ndarray, code_entries: int) -> np.ndarray:
    """The category each latent vector's code asks for: the index of the largest of its first
    ``code_entries`` values (numpy's form of ``CodeEmbedding.category``, the generator's own)."""
    return np.asarray(latents)[:, :code_entries].argmax(axis=1)


def latents_for_class(latents: np.ndarray, class_index: int, code_entries: int) -> np.ndarray:
    """Gaussian latent vectors whose code asks for ``class_index``: each row's largest code entry
    swaps places with entry ``class_index``. By the symmetry of independent Gaussians this is
    exactly the latent distribution given that class, so the samples are those the generator
    draws for that class anyway."""
    latents = np.array(latents, np.float32)
    rows = np.arange(len(latents))
    largest = code_categories(latents, code_entries)
    latents[rows, class_index], latents[rows, largest] = latents[rows, largest], latents[rows, class_index]
    return latents


def _write_copy(folder: Path, metadata_bytes: bytes, contents: dict[str, bytes]) -> Path:
    """Writes a verified archive's files to ``folder`` (for ``Bundle.folder``; nothing reads them back)."""
    for name, data in {METADATA_FILE: metadata_bytes, **contents}.items():
        with open(folder / name, "xb") as handle:
            handle.write(data)
    return folder


def load_bundle(path: str | Path, *, num_threads: int = 1) -> Bundle:
    """Loads a bundle folder or its .zip archive after verifying it (see the module docstring).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a bundle, an unsupported format version, metadata that breaks the schema,
            a cap passed, or a file that is not the one its sha256 names.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bundle '{path}' does not exist; pass the bundle folder or its .zip")
    if not (path.is_dir() or path.is_file()):
        raise ValueError(f"{path}: not a bundle folder or .zip (a device or other special file)")
    label = str(path)
    files = _FolderFiles(path, label) if path.is_dir() else _ArchiveFiles(path, label)
    try:
        metadata, metadata_bytes = _read_metadata(files, label)
        contents = _read_listed_files(files, metadata, label)
    finally:
        files.close()
    bundle = Bundle(path, metadata, num_threads=num_threads, contents=contents, label=label)
    bundle._temporary = None
    if isinstance(files, _ArchiveFiles):  # verified: only now is anything written
        bundle._temporary = tempfile.TemporaryDirectory(prefix="bigmodels-bundle-")
        bundle.folder = _write_copy(Path(bundle._temporary.name), metadata_bytes, contents)
    return bundle
