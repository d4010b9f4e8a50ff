"""Deployment bundles on a device: verify, load, predict or generate (numpy, Pillow, ai-edge-litert).

A bundle is a folder (or a .zip of it) holding one .tflite file, ``metadata.json`` (what goes
in and out, class names, preprocessing, tokenizer settings, metrics, the sha256 of every file)
and ``MODEL_CARD.md``; a text bundle adds ``vocabulary.txt`` and ``tokenizer.json``.
"""

import hashlib
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from bigmodels.lite.images import load_image, to_array
from bigmodels.lite.runtime import TFLiteModel
from bigmodels.lite.tokenizer import WordPieceTokenizer

BUNDLE_FORMAT = "bigmodels-bundle"
BUNDLE_FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
TASKS = ("image_classification", "text_classification", "image_generation")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(archive: Path, temporary: tempfile.TemporaryDirectory) -> Path:
    """Extracts a bundle archive into ``temporary``, refusing paths that would leave it."""
    target = Path(temporary.name)
    try:
        with zipfile.ZipFile(archive) as bundle_zip:
            for member in bundle_zip.namelist():
                resolved = (target / member).resolve()
                if not resolved.is_relative_to(target.resolve()):
                    raise ValueError(
                        f"{archive}: the archive holds a path outside the bundle ({member}); refused"
                    )
            bundle_zip.extractall(target)
    except zipfile.BadZipFile as error:
        raise ValueError(
            f"{archive}: not a bundle archive ({error}); pass the .zip or the bundle folder"
        ) from error
    folders = [p for p in target.iterdir() if p.is_dir()]
    return folders[0] if len(folders) == 1 and not (target / METADATA_FILE).exists() else target


def read_verified_metadata(folder: Path) -> dict:
    """metadata.json, after checking the format version and every file's sha256."""
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ValueError(f"{folder}: no {METADATA_FILE}; this is not a bigmodels bundle")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable metadata ({error}); export the bundle again") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("files"), dict):
        raise ValueError(f"{path}: not bundle metadata (no file list); export the bundle again")
    version = metadata.get("format_version")
    if metadata.get("format") != BUNDLE_FORMAT or version != BUNDLE_FORMAT_VERSION:
        raise ValueError(
            f"{folder}: bundle format {metadata.get('format')!r} version {version!r} is not supported "
            f"(this runtime reads {BUNDLE_FORMAT} version {BUNDLE_FORMAT_VERSION}); "
            "export the run again with this bigmodels version"
        )
    if metadata.get("task") not in TASKS:
        raise ValueError(f"{folder}: unknown task {metadata.get('task')!r}; export the bundle again")
    for name, expected in metadata["files"].items():
        file_path = folder / name
        if not file_path.is_file():
            raise ValueError(f"{folder}: {name} is missing from the bundle; copy the whole bundle")
        if sha256_of(file_path) != expected["sha256"]:
            raise ValueError(
                f"{folder}: {name} does not match its sha256 in {METADATA_FILE} (changed or corrupted); "
                "refusing to load it; copy the bundle again"
            )
    return metadata


class Bundle:
    """A verified bundle, ready to run.

    Example:
        bundle = load_bundle("digits_bundle.zip")
        bundle.predict(["three.png"])  # [{"label": "3", "score": 0.98, "scores": {...}}]
        bundle.predict(["what a lovely film"])  # text bundles take strings
        bundle.generate(4, seed=0)  # image_generation bundles: (4, H, W, C) uint8
    """

    def __init__(self, folder: Path, metadata: dict, *, num_threads: int = 1):
        self.folder, self.metadata = folder, metadata
        self.task = metadata["task"]
        self.class_names = metadata.get("class_names", [])
        self.model = TFLiteModel(folder / metadata["model_file"], num_threads=num_threads)
        self.tokenizer = None
        if self.task == "text_classification":
            tokenizer = metadata["tokenizer"]
            self.tokenizer = WordPieceTokenizer.from_files(
                folder / tokenizer["vocabulary_file"], folder / tokenizer["settings_file"]
            )

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


def load_bundle(path: str | Path, *, num_threads: int = 1) -> Bundle:
    """Loads a bundle folder or its .zip archive after verifying every file's sha256.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a bundle, an unsupported format version, or a file that changed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bundle '{path}' does not exist; pass the bundle folder or its .zip")
    # An archive is unpacked into a folder that lives (and is deleted) with the Bundle object.
    temporary = None if path.is_dir() else tempfile.TemporaryDirectory(prefix="bigmodels-bundle-")
    folder = path if temporary is None else _unpack(path, temporary)
    bundle = Bundle(folder, read_verified_metadata(folder), num_threads=num_threads)
    bundle._temporary = temporary
    return bundle
