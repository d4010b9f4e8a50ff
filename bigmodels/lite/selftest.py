"""A bundle's self-test: test-split examples and the shipped file's expected outputs.

Export writes ``selftest.json`` into every bundle (listed in metadata.json's sha256 table like
every file, and named by its ``selftest`` key). It holds 8 to 16 examples chosen across the
classes and what the bundle's own .tflite file gave for them on ai-edge-litert at export, so a
phone app or a field technician can check, on the device itself, that the model, the runtime
and (for text) the tokenizer still give those outputs:

    {
      "format": "bigmodels-selftest", "format_version": 1,
      "model_file": "model_float32.tflite",   the bundle's model file the outputs came from
      "examples": 16,
      "selection": "round-robin over the test split's classes, seed 42",
      "classes": ["0", "1", ...],             each example's class (null where it has none)
      "inputs": {"pixels": ARRAY}                      image classifiers: raw uint8 pixels
              | {"texts": [...], "token_ids": ARRAY}   text classifiers: raw strings, their ids
              | {"latents": ARRAY},                    generators: fixed float32 latent vectors
      "expected": {"labels": [...], "scores": [[...], ...]}   classifiers: top-1 and all scores
                | {"images": ARRAY},                          generators: uint8 images
      "tolerance": {"score": 0.0001, "rule": "..."}
                 | {"mean_abs_pixel_difference": 8.0, "rule": "..."}
    }

ARRAY is ``{"dtype": "uint8", "shape": [16, 8, 8, 1], "base64": "..."}``: the array's raw bytes,
little-endian, in C order (row by row), base64-encoded. Scores are float32 values written
exactly. The tolerance rules are ``CLASSIFIER_RULE`` and ``GENERATOR_RULE``.
"""

import base64
import json

import numpy as np

from bigmodels.lite.bundle_format import AGAIN, CLASSIFIER_TASKS

SELFTEST_FILE = "selftest.json"
SELFTEST_FORMAT = "bigmodels-selftest"
SELFTEST_FORMAT_VERSION = 1
MAX_SELFTEST_EXAMPLES = 64
FLOAT_SCORE_TOLERANCE = 1e-4
CLASSIFIER_RULE = (
    "an example passes when every score is within 'score' of the stored one (1e-4 for a file "
    "with float output; one quantization step of the output, its scale, for a file with integer "
    "output) and the top-1 label equals the stored one, unless the stored scores of the two "
    "labels are within 'score' of each other (a tie); for text, the tokenizer must also give the "
    "stored token ids exactly"
)
GENERATOR_RULE = (
    "an example passes when the mean absolute difference between the image made from its latent "
    "vector and the stored image is at most 'mean_abs_pixel_difference' pixel levels (0-255): "
    "the parity gate the export held this file to against Keras"
)
NO_SELFTEST = (
    "this bundle has no self-test (no selftest.json; it was exported before bundles carried one); "
    "export the run again to add a self-test"
)
# Stored scores are float32 values; comparing their differences in float64 can land a rounding
# error past a quantization step that is exactly the tolerance.
RELATIVE_SLACK = 1e-5
DTYPES = {"uint8": np.uint8, "int32": np.int32, "float32": np.float32}


def score_tolerance(output_quantization) -> float:
    """The score tolerance of a classifier file: one step of an integer output, else 1e-4."""
    scale = float(output_quantization[0]) if output_quantization else 0.0
    return scale if scale > 0.0 else FLOAT_SCORE_TOLERANCE


def encode_array(array: np.ndarray) -> dict:
    """An array as selftest.json stores it: dtype, shape and its little-endian bytes in base64."""
    array = np.ascontiguousarray(array)
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "base64": base64.b64encode(little_endian.tobytes()).decode("ascii"),
    }


def _malformed(label: str, key: str, problem: str) -> ValueError:
    return ValueError(f"{label}: {SELFTEST_FILE} key '{key}' {problem}; {AGAIN}")


def _mapping(value, label: str, key: str) -> dict:
    if not isinstance(value, dict):
        raise _malformed(label, key, "must be an object")
    return value


def decode_array(value, label: str, key: str, dtype: str, shape: list[int]) -> np.ndarray:
    """The array stored under ``key``, which must have ``dtype`` and ``shape``."""
    value = _mapping(value, label, key)
    if value.get("dtype") != dtype or value.get("shape") != list(shape):
        raise _malformed(
            label,
            key,
            f"must be a {dtype} array of shape {list(shape)}, got {value.get('dtype')!r} "
            f"{value.get('shape')!r}",
        )
    try:
        data = base64.b64decode(value.get("base64", ""), validate=True)
    except (ValueError, TypeError) as error:
        raise _malformed(label, f"{key}.base64", f"is not base64 ({error})") from error
    expected = int(np.prod(shape)) * np.dtype(DTYPES[dtype]).itemsize
    if len(data) != expected:
        raise _malformed(label, f"{key}.base64", f"holds {len(data)} bytes, not {expected}")
    return np.frombuffer(data, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).reshape(shape)


def read_selftest(data: bytes | None, metadata: dict, label: str) -> dict:
    """selftest.json's verified bytes, parsed and checked against the bundle's metadata."""
    if data is None:
        raise ValueError(f"{label}: {NO_SELFTEST}")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{label}: {SELFTEST_FILE} is unreadable ({error}); {AGAIN}") from error
    document = _mapping(document, label, "(the whole file)")
    if (document.get("format"), document.get("format_version")) != (SELFTEST_FORMAT, SELFTEST_FORMAT_VERSION):
        raise ValueError(
            f"{label}: {SELFTEST_FILE} format {document.get('format')!r} version "
            f"{document.get('format_version')!r} is not supported (this runtime reads {SELFTEST_FORMAT} "
            f"version {SELFTEST_FORMAT_VERSION}); export the run again with this bigmodels version"
        )
    if document.get("model_file") != metadata["model_file"]:
        raise _malformed(
            label,
            "model_file",
            f"names {document.get('model_file')!r}, but the bundle's model is {metadata['model_file']}",
        )
    count = document.get("examples")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SELFTEST_EXAMPLES:
        raise _malformed(label, "examples", f"must be a whole number from 1 to {MAX_SELFTEST_EXAMPLES}")
    classes = document.get("classes")
    if not isinstance(classes, list) or len(classes) != count:
        raise _malformed(label, "classes", f"must list the class of each of the {count} examples")
    for key in ("inputs", "expected", "tolerance"):
        _mapping(document.get(key), label, key)
    return document


def _tolerance(document: dict, key: str, label: str) -> float:
    value = document["tolerance"].get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise _malformed(label, f"tolerance.{key}", "must be a number of at least 0")
    return float(value)


def _classifier_batch(bundle, document: dict, label: str) -> tuple[np.ndarray, list[int]]:
    """The model's input batch, made by predict's own path; for text, the examples whose ids
    differ from the stored ones (the tokenizer check) and how many positions differ in each."""
    count, inputs, shape = document["examples"], document["inputs"], bundle.metadata["input"]["shape"][1:]
    if bundle.tokenizer is None:
        return bundle.prepare(
            decode_array(inputs.get("pixels"), label, "inputs.pixels", "uint8", [count, *shape])
        ), []
    texts = inputs.get("texts")
    if not isinstance(texts, list) or len(texts) != count or not all(isinstance(t, str) for t in texts):
        raise _malformed(label, "inputs.texts", f"must be a list of {count} strings")
    expected = decode_array(inputs.get("token_ids"), label, "inputs.token_ids", "int32", [count, *shape])
    batch = bundle.prepare(texts)
    return batch, [int(n) for n in np.sum(np.asarray(batch) != expected, axis=1)]


def classifier_failures(bundle, document: dict, label: str) -> list[dict]:
    """Each example whose label, scores or (text) token ids differ from the stored ones."""
    batch, differing_ids = _classifier_batch(bundle, document, label)
    count, names, expected = document["examples"], bundle.class_names, document["expected"]
    labels, stored = expected.get("labels"), expected.get("scores")
    if not isinstance(labels, list) or len(labels) != count or not all(name in names for name in labels):
        raise _malformed(label, "expected.labels", f"must list {count} of the bundle's class names")
    try:
        stored = np.asarray(stored, dtype=np.float64).reshape(count, len(names))
    except (ValueError, TypeError) as error:
        raise _malformed(label, "expected.scores", f"must be {count} rows of {len(names)} numbers") from error
    tolerance = _tolerance(document, "score", label)
    scores = bundle.model.predict(batch).astype(np.float64)
    failures = []
    for index in range(count):
        got, wanted = int(np.argmax(scores[index])), names.index(labels[index])
        difference = float(np.max(np.abs(scores[index] - stored[index])))
        problems = []
        if differing_ids and differing_ids[index]:
            problems.append(f"the tokenizer gives other ids at {differing_ids[index]} position(s)")
        if got != wanted and abs(stored[index, wanted] - stored[index, got]) > tolerance:
            problems.append(f"label '{names[got]}', expected '{labels[index]}'")
        if not difference <= tolerance * (1 + RELATIVE_SLACK):  # a NaN score fails too
            problems.append(f"scores differ by up to {difference:.6g} (tolerance {tolerance:.6g})")
        if problems:
            failures.append(
                {
                    "example": index,
                    "class": document["classes"][index],
                    "expected_label": labels[index],
                    "label": names[got],
                    "max_score_difference": round(difference, 8),
                    "problems": problems,
                }
            )
    return failures


def generator_failures(bundle, document: dict, label: str) -> list[dict]:
    """Each example whose image differs from the stored one by more than the tolerance."""
    count = document["examples"]
    latents = decode_array(
        document["inputs"].get("latents"),
        label,
        "inputs.latents",
        "float32",
        [count, bundle.metadata["latent_size"]],
    )
    images = bundle.images_from_latents(latents)
    stored = decode_array(
        document["expected"].get("images"), label, "expected.images", "uint8", list(images.shape)
    )
    tolerance = _tolerance(document, "mean_abs_pixel_difference", label)
    differences = np.abs(images.astype(np.int16) - stored.astype(np.int16)).reshape(count, -1)
    failures = []
    for index, difference in enumerate(differences):
        mean = float(difference.mean())
        if not mean <= tolerance:
            failures.append(
                {
                    "example": index,
                    "class": document["classes"][index],
                    "mean_abs_pixel_difference": round(mean, 4),
                    "max_abs_pixel_difference": int(difference.max()),
                    "problems": [
                        f"the image differs by {mean:.3f} pixel levels on average (tolerance {tolerance})"
                    ],
                }
            )
    return failures


def selftest_result(bundle, document: dict, label: str) -> dict:
    """Runs the stored examples through ``bundle``: {"passed", "total", "failures", "model_file"}."""
    check = classifier_failures if bundle.task in CLASSIFIER_TASKS else generator_failures
    failures = check(bundle, document, label)
    total = document["examples"]
    return {
        "passed": total - len(failures),
        "total": total,
        "failures": failures,
        "model_file": document["model_file"],
    }
