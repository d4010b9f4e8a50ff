"""Deployment bundles on a device: load, predict or generate (numpy, Pillow, ai-edge-litert).

A bundle is a folder (or a .zip of it) holding one .tflite file, ``metadata.json`` (what goes
in and out, class names, preprocessing, tokenizer settings, metrics, the sha256 of every file)
``MODEL_CARD.md`` and ``selftest.json`` (stored examples and the model's expected outputs, see
``bigmodels.lite.selftest``); a text bundle adds ``vocabulary.txt`` and ``tokenizer.json``.

``load_bundle`` hands nothing to the interpreter or the tokenizer before ``bigmodels.lite.verify``
has checked it (caps, zip members, the ``metadata.json`` schema of ``bigmodels.lite.metadata``,
each file's size and sha256). Once the model is loaded, ``metadata.json`` must agree with it:
as many class names as the model gives scores, and the input shape, latent size and sequence
length the model takes.

The names this module exported before it was split (the format constants, the caps,
``validate_metadata``, ``read_verified_metadata``, ``sha256_of``, ``code_categories``,
``latents_for_class``) are still importable from it.
"""

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bigmodels.lite.bundle_format import (
    AGAIN,
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    CLASSIFIER_TASKS,
    FILE_NAME,
    MAX_BUNDLE_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_METADATA_BYTES,
    MAX_ZIP_DIRECTORY_BYTES,
    METADATA_FILE,
    SHA256_HEX,
    TASKS,
)
from bigmodels.lite.images import load_image, to_array
from bigmodels.lite.latents import code_categories, latents_for_class
from bigmodels.lite.metadata import metadata_error, validate_metadata
from bigmodels.lite.micro import MicroModel
from bigmodels.lite.reference import reference_bundles, resolve_bundle_path
from bigmodels.lite.runtime import TFLiteModel
from bigmodels.lite.selftest import read_selftest, selftest_result
from bigmodels.lite.tokenizer import WordPieceTokenizer
from bigmodels.lite.verify import (
    ArchiveFiles,
    FolderFiles,
    read_listed_files,
    read_metadata,
    read_verified_metadata,
    sha256_of,
)

__all__ = [
    "AGAIN",
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "CLASSIFIER_TASKS",
    "FILE_NAME",
    "MAX_BUNDLE_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_ZIP_DIRECTORY_BYTES",
    "METADATA_FILE",
    "SHA256_HEX",
    "TASKS",
    "Bundle",
    "code_categories",
    "latents_for_class",
    "load_bundle",
    "read_verified_metadata",
    "run_selftest",
    "sha256_of",
    "validate_metadata",
]


RUNTIMES = ("litert", "tflm")


def _load_micro_model(content: bytes, metadata: dict, label: str) -> MicroModel:
    """The bundle's model on TensorFlow Lite Micro, which runs full-integer (int8) models."""
    if metadata["quantization"] != "int8":
        raise ValueError(
            f"{label}: TensorFlow Lite Micro runs int8 models and this bundle's {metadata['model_file']} "
            f"is {metadata['quantization']}; export with --quantization int8 (and --bundle-artifact "
            "with its int8 file when another one was chosen)"
        )
    try:
        return MicroModel(content).check()
    except ValueError as error:  # an op TFLM lacks, or tflite-micro not installed
        raise ValueError(f"{label}: {error}; run it with ai-edge-litert instead") from error


def _load_model(content: bytes, metadata: dict, label: str, num_threads: int, runtime: str) -> TFLiteModel:
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime '{runtime}'; choose {' or '.join(RUNTIMES)}")
    if runtime == "tflm":
        return _load_micro_model(content, metadata, label)
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
        raise metadata_error(
            label,
            "input.shape",
            f"says {metadata['input']['shape']} but the model takes [null, {', '.join(map(str, takes))}]",
        )
    if bundle.task in CLASSIFIER_TASKS and gives[-1:] != [len(bundle.class_names)]:
        raise metadata_error(
            label,
            "class_names",
            f"has {len(bundle.class_names)} names but the model gives {gives[-1] if gives else 0} scores",
        )
    if bundle.task == "image_generation" and takes != [metadata["latent_size"]]:
        raise metadata_error(
            label, "latent_size", f"is {metadata['latent_size']} but the model takes {takes}"
        )
    if bundle.tokenizer is not None and [bundle.tokenizer.sequence_length] != takes:
        raise metadata_error(
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
        bundle.selftest()  # {"passed": 16, "total": 16, "failures": [], ...}
    """

    def __init__(
        self,
        folder: Path,
        metadata: dict,
        *,
        num_threads: int = 1,
        contents: dict[str, bytes] | None = None,
        label: str | None = None,
        runtime: str = "litert",
    ):
        """``contents``: the listed files' verified bytes (``load_bundle`` passes them); without
        them, ``metadata`` is validated and the files are read from ``folder`` and verified.
        ``runtime``: "litert" (ai-edge-litert) or "tflm" (TensorFlow Lite Micro, int8 files)."""
        label = label or str(folder)
        if contents is None:
            metadata = validate_metadata(metadata, label)
            contents = read_listed_files(FolderFiles(Path(folder), label), metadata, label)
        self.folder, self.metadata, self._label = Path(folder), metadata, label
        self.task = metadata["task"]
        # selftest.json's verified bytes (bundles exported before the self-test have none)
        self._selftest_bytes = contents.get(metadata.get("selftest", {}).get("file"))
        self.class_names = metadata.get("class_names", [])
        self.model = _load_model(contents[metadata["model_file"]], metadata, label, num_threads, runtime)
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
            # Stable: tied scores (an int8 output has 256 levels) rank by class index, so the
            # label is np.argmax's, as the self-test, the evaluation and the web page pick it.
            order = np.argsort(-row, kind="stable")[: top_k or len(row)]
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
        return self.images_from_latents(latents)

    def images_from_latents(self, latents: np.ndarray) -> np.ndarray:
        """uint8 images from the given latent vectors (image_generation bundles)."""
        images = self.model.predict(np.asarray(latents, dtype=np.float32))
        return np.clip(np.round(images), 0, 255).astype(np.uint8)

    def selftest(self) -> dict:
        """Runs the bundle's stored examples (selftest.json) and compares with the outputs its
        model file gave at export: images go through ``prepare`` as in ``predict``, texts through
        the tokenizer (whose ids are checked too), latent vectors through the generator.

        Returns:
            {"passed": int, "total": int, "failures": [one entry per failed example], "model_file"}.

        Raises:
            ValueError: the bundle has no self-test (an older export: export the run again), or
                its selftest.json is malformed.
        """
        document = read_selftest(self._selftest_bytes, self.metadata, self._label)
        return selftest_result(self, document, self._label)

    def _draw_class(self, latents: np.ndarray, label: str) -> np.ndarray:
        code = self.metadata.get("class_code")
        if code is None:
            raise ValueError("this generator was not conditioned on the class; generate without a label")
        if label not in self.class_names:
            raise ValueError(f"unknown label '{label}'; the generator draws {', '.join(self.class_names)}")
        return latents_for_class(latents, self.class_names.index(label), code["latent_entries"])


def _write_copy(folder: Path, metadata_bytes: bytes, contents: dict[str, bytes]) -> Path:
    """Writes a verified archive's files to ``folder`` (for ``Bundle.folder``; nothing reads them back)."""
    for name, data in {METADATA_FILE: metadata_bytes, **contents}.items():
        with open(folder / name, "xb") as handle:
            handle.write(data)
    return folder


def run_selftest(path: str | Path, *, num_threads: int = 1) -> dict:
    """Loads (and verifies) a bundle and runs its self-test; see ``Bundle.selftest``.

    Example:
        result = run_selftest("bundle.zip")
        assert result["passed"] == result["total"], result["failures"]
    """
    return load_bundle(path, num_threads=num_threads).selftest()


def load_bundle(path: str | Path, *, num_threads: int = 1, runtime: str = "litert") -> Bundle:
    """Loads a bundle folder or its .zip archive after verifying it (see ``bigmodels.lite.verify``).

    ``path`` may also be a folder holding ``bundle/`` (a shipped reference folder such as
    ``saved_models/cifar10_tiny``, or a run's ``export/``), a run folder, or the name of a shipped
    reference bundle (``bigmodels.lite.reference_bundles()``).

    ``runtime="tflm"`` runs the bundle's int8 model on TensorFlow Lite Micro's interpreter (the
    ``tflite-micro`` package) instead of ai-edge-litert: what a microcontroller computes.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: fewer than one thread, not a bundle, an unsupported format version, metadata
            that breaks the schema, a cap passed, or a file that is not the one its sha256 names.
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"--threads must be at least 1, got {num_threads}")
    path = resolve_bundle_path(Path(path))
    if not path.exists():
        raise FileNotFoundError(
            f"bundle '{path}' does not exist; pass the bundle folder or its .zip "
            f"(or a shipped name: {', '.join(reference_bundles()) or 'none installed'})"
        )
    if not (path.is_dir() or path.is_file()):
        raise ValueError(f"{path}: not a bundle folder or .zip (a device or other special file)")
    label = str(path)
    files = FolderFiles(path, label) if path.is_dir() else ArchiveFiles(path, label)
    try:
        metadata, metadata_bytes = read_metadata(files, label)
        contents = read_listed_files(files, metadata, label)
    finally:
        files.close()
    bundle = Bundle(path, metadata, num_threads=num_threads, contents=contents, label=label, runtime=runtime)
    bundle._temporary = None
    if isinstance(files, ArchiveFiles):  # verified: only now is anything written
        bundle._temporary = tempfile.TemporaryDirectory(prefix="bigmodels-bundle-")
        bundle.folder = _write_copy(Path(bundle._temporary.name), metadata_bytes, contents)
    return bundle
