"""Every bundle carries a self-test (selftest.json): stored test examples and the shipped file's
outputs for them. It passes on the TF-free runtime and through apps/predict.py --selftest, and
fails when the expectations or the model are not the exported ones."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_bundle import BLOCK_TENSORFLOW, exported_copy, run_app

from bigmodels.lite import load_bundle
from bigmodels.lite.selftest import decode_array, encode_array

# Runs the self-test through bigmodels.lite with TensorFlow unimportable; prints its result.
DEVICE_SCRIPT = (
    BLOCK_TENSORFLOW
    + """
import json
from bigmodels.lite import run_selftest
print(json.dumps(run_selftest(sys.argv[1])))
"""
)


@pytest.fixture(scope="module")
def digits_bundle(digits_run, tmp_path_factory):
    run_dir, _ = exported_copy(digits_run, tmp_path_factory.mktemp("digits"), quantization=["float32"])
    return run_dir / "export" / "bundle"


@pytest.fixture(scope="module")
def text_bundle(text_export, text_run):
    """The shared text export's bundle (its smallest file within the gate), only read here."""
    return text_run / "export" / "bundle"


@pytest.fixture(scope="module")
def gan_bundle(gan_run, tmp_path_factory):
    run_dir, _ = exported_copy(
        gan_run, tmp_path_factory.mktemp("gan"), quantization=["float32"], max_pixel_difference=1.0
    )
    return run_dir / "export" / "bundle"


FAMILIES = ("digits_bundle", "text_bundle", "gan_bundle")


def rehashed(folder: Path) -> None:
    """Records every listed file's real size and sha256, as an export (or a tamperer) would."""
    metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    for name in metadata["files"]:
        data = (folder / name).read_bytes()
        metadata["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")


def edited_selftest(bundle: Path, tmp_path: Path, change) -> Path:
    """A copy of ``bundle`` whose selftest.json ``change(document)`` edited, re-hashed."""
    folder = shutil.copytree(bundle, tmp_path / "bundle")
    document = json.loads((folder / "selftest.json").read_text(encoding="utf-8"))
    change(document)
    (folder / "selftest.json").write_text(json.dumps(document), encoding="utf-8")
    rehashed(folder)
    return folder


def selftest_line(result: subprocess.CompletedProcess) -> dict:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return json.loads(lines[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_passes_its_selftest_without_tensorflow(family, request):
    bundle = request.getfixturevalue(family)
    metadata = json.loads((bundle / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["selftest"]["file"] == "selftest.json" and "selftest.json" in metadata["files"]
    document = json.loads((bundle / "selftest.json").read_text(encoding="utf-8"))
    assert document["model_file"] == metadata["model_file"]
    assert 8 <= document["examples"] == metadata["selftest"]["examples"] <= 16
    # chosen across the classes: every one of them (the classes drawn, for the conditioned GAN)
    assert set(document["classes"]) == set(metadata["class_names"]) and len(metadata["class_names"]) >= 2
    assert (bundle / "selftest.json").stat().st_size < 64 * 1024
    device = subprocess.run(
        [sys.executable, "-c", DEVICE_SCRIPT, str(bundle.parent / "bundle.zip")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert device.returncode == 0, device.stderr
    result = json.loads(device.stdout.strip().splitlines()[-1])
    assert result["passed"] == result["total"] == document["examples"] and result["failures"] == []
    app = run_app("predict.py", "--bundle", bundle, "--selftest")
    assert app.returncode == 0, app.stderr
    line = selftest_line(app)
    assert line["passed"] == line["total"] == document["examples"] and line["failures"] == []


def test_selftest_stores_raw_inputs_and_the_shipped_files_outputs(digits_bundle, text_bundle, gan_bundle):
    from bigmodels.lite import WordPieceTokenizer

    image = json.loads((digits_bundle / "selftest.json").read_text())
    pixels = decode_array(image["inputs"]["pixels"], "b", "pixels", "uint8", [image["examples"], 8, 8, 1])
    assert pixels.max() > 16  # raw 0-255 pixels, not rescaled ones
    assert image["tolerance"]["score"] == 1e-4  # a float32 file
    assert image["expected"]["labels"] == [
        str(int(np.argmax(row))) for row in image["expected"]["scores"]
    ]  # digits: class i is "i"
    text = json.loads((text_bundle / "selftest.json").read_text(encoding="utf-8"))
    assert all(isinstance(t, str) and t for t in text["inputs"]["texts"])
    tokenizer = WordPieceTokenizer.from_bytes(
        (text_bundle / "vocabulary.txt").read_bytes(), (text_bundle / "tokenizer.json").read_bytes()
    )
    ids = tokenizer(text["inputs"]["texts"])
    np.testing.assert_array_equal(
        decode_array(text["inputs"]["token_ids"], "b", "ids", "int32", list(ids.shape)), ids
    )
    model = load_bundle(text_bundle).model
    scale = float(model.output_detail["quantization"][0])
    assert text["tolerance"]["score"] == (scale if scale else 1e-4)  # one output step for an int8 file
    generator = json.loads((gan_bundle / "selftest.json").read_text())
    assert generator["tolerance"]["mean_abs_pixel_difference"] == 1.0  # the export's parity gate
    latents = decode_array(generator["inputs"]["latents"], "b", "latents", "float32", [16, 16])
    drawn = [str(c) for c in latents[:, :10].argmax(axis=1)]  # the conditioned GAN's class code
    assert drawn == generator["classes"] == [str(i % 10) for i in range(16)]


def test_selftest_examples_are_round_robin_over_classes_and_seeded():
    from bigmodels.tasks.classification import round_robin

    labels = np.array([0] * 30 + [1] * 5 + [2] * 2)
    chosen = round_robin(labels, 16, seed=7)
    assert len(chosen) == 16 and len(set(chosen.tolist())) == 16
    assert labels[chosen[:6]].tolist() == [0, 1, 2, 0, 1, 2]  # classes in turn while each has some
    assert np.bincount(labels[chosen]).tolist() == [9, 5, 2]
    np.testing.assert_array_equal(chosen, round_robin(labels, 16, seed=7))
    assert not np.array_equal(chosen, round_robin(labels, 16, seed=8))
    assert len(round_robin(labels[:4], 16, seed=0)) == 4  # a tiny test split gives what it has


class FakeClassifierBundle:
    """What the classifier check uses of a Bundle, with a model whose scores the test sets."""

    tokenizer, class_names = None, ["a", "b"]
    metadata = {"input": {"shape": [None, 1, 1, 1]}}

    def __init__(self, scores):
        self.model = SimpleNamespace(predict=lambda batch: np.asarray(scores, dtype=np.float32))

    def prepare(self, pixels):
        return pixels


def test_the_score_tolerance_is_one_output_step_and_a_tie_may_change_the_label():
    from bigmodels.lite.selftest import classifier_failures, score_tolerance

    step = score_tolerance((1 / 256, -128))
    assert step == 1 / 256 and score_tolerance((0.0, 0)) == 1e-4
    stored = [[0.75, 0.25], [0.75, 0.25], [0.5, 0.5], [0.9, 0.1], [0.75, 0.25]]
    got = [
        [0.75 - step, 0.25 + step],  # one step off: passes
        [0.75 - 2 * step, 0.25 + 2 * step],  # two steps off: fails
        [0.5 - step, 0.5 + step],  # the label changes, but the stored scores tie: passes
        [0.1, 0.9],  # another label: fails
        [float("nan"), 0.25],  # not a number: fails
    ]
    document = {
        "examples": 5,
        "classes": ["a"] * 5,
        "inputs": {"pixels": encode_array(np.zeros((5, 1, 1, 1), np.uint8))},
        "expected": {"labels": ["a"] * 5, "scores": stored},
        "tolerance": {"score": step},
    }
    failures = classifier_failures(FakeClassifierBundle(got), document, "b")
    assert [f["example"] for f in failures] == [1, 3, 4]
    assert failures[1]["problems"][0] == "label 'b', expected 'a'" and failures[1]["label"] == "b"


def swap_top_label(document: dict) -> None:
    scores = document["expected"]["scores"][0]
    order = np.argsort(scores)
    scores[order[-1]], scores[order[-2]] = scores[order[-2]], scores[order[-1]]
    document["expected"]["labels"][0] = str(int(order[-2]))


def change_token_ids(document: dict) -> None:
    stored = document["inputs"]["token_ids"]
    ids = decode_array(stored, "b", "ids", "int32", stored["shape"]).copy()
    ids[0, 0] = ids[0, 0] + 1
    document["inputs"]["token_ids"] = encode_array(ids)


def invert_image(document: dict) -> None:
    stored = document["expected"]["images"]
    images = decode_array(stored, "b", "images", "uint8", stored["shape"]).copy()
    images[0] = images[0] + np.uint8(128)  # wraps: every pixel moves by 128 levels
    document["expected"]["images"] = encode_array(images)


@pytest.mark.parametrize(
    ("family", "change", "problem"),
    [
        ("digits_bundle", swap_top_label, "expected '"),
        ("text_bundle", change_token_ids, "the tokenizer gives other ids at 1 position(s)"),
        ("gan_bundle", invert_image, "pixel levels on average"),
    ],
)
def test_a_tampered_expectation_fails_the_selftest_with_exit_1(family, change, problem, request, tmp_path):
    bundle = edited_selftest(request.getfixturevalue(family), tmp_path, change)
    result = run_app("predict.py", "--bundle", bundle, "--selftest")
    assert result.returncode == 1, result.stderr
    line = selftest_line(result)
    assert line["passed"] == line["total"] - 1 and [f["example"] for f in line["failures"]] == [0]
    assert any(problem in text for text in line["failures"][0]["problems"]), line["failures"]
    assert result.stderr.strip().splitlines() == [
        "error: self-test failed: 1 of 16 example(s) differ from the outputs the model gave at export; "
        "see the JSON line"
    ]


def test_a_model_swapped_for_another_runs_file_fails_the_selftest(digits_bundle, gan_run, tmp_path):
    # The GAN run's scoring classifier is another cnn_classifier run on the same digits: same
    # input and classes, so the bundle loads, and only the self-test can tell the models apart.
    other, _ = exported_copy(gan_run / "score_classifier", tmp_path, quantization=["float32"])
    bundle = shutil.copytree(digits_bundle, tmp_path / "bundle")
    shutil.copy(other / "export" / "model_float32.tflite", bundle / "model_float32.tflite")
    rehashed(bundle)
    result = load_bundle(bundle).selftest()
    assert result["passed"] < result["total"] == 16
    assert all("scores differ by up to" in " ".join(f["problems"]) for f in result["failures"])
    app = run_app("predict.py", "--bundle", bundle, "--selftest")
    assert app.returncode == 1 and selftest_line(app)["passed"] == result["passed"]


def drop_selftest(metadata: dict) -> None:
    """An export from before the self-test: neither the file nor the key."""
    metadata.pop("selftest")
    metadata["files"].pop("selftest.json")


def unlist_selftest(metadata: dict) -> None:
    metadata["files"].pop("selftest.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (drop_selftest, "has no self-test (no selftest.json; it was exported before bundles carried one)"
         "; export the run again to add a self-test"),
        (unlist_selftest, "key 'selftest.file' names selftest.json, which the sha256 table 'files' does not"),
    ],
)  # fmt: skip
def test_a_missing_selftest_gives_exit_2_and_one_line(digits_bundle, tmp_path, change, message):
    bundle = shutil.copytree(digits_bundle, tmp_path / "bundle")
    metadata = json.loads((bundle / "metadata.json").read_text())
    change(metadata)
    (bundle / "selftest.json").unlink()
    (bundle / "metadata.json").write_text(json.dumps(metadata))
    result = run_app("predict.py", "--bundle", bundle, "--selftest")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    missing = run_app("predict.py", "--bundle", tmp_path / "nowhere.zip", "--selftest")
    assert (
        missing.returncode == 2
        and missing.stderr.startswith("error: ")
        and "does not exist" in missing.stderr
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format_version=2), "selftest.json format 'bigmodels-selftest' version 2"),
        (lambda d: d.update(model_file="other.tflite"), "key 'model_file' names 'other.tflite'"),
        (lambda d: d["inputs"]["pixels"].update(shape=[16, 4, 4, 1]), "key 'inputs.pixels' must be a uint8"),
        (lambda d: d["inputs"]["pixels"].update(base64="###"), "key 'inputs.pixels.base64' is not base64"),
        (lambda d: d["expected"]["labels"].pop(), "key 'expected.labels' must list 16"),
        (lambda d: d["tolerance"].update(score="tiny"), "key 'tolerance.score' must be a number"),
    ],
)
def test_a_malformed_selftest_is_one_clear_error(digits_bundle, tmp_path, change, message):
    bundle = load_bundle(edited_selftest(digits_bundle, tmp_path, change))
    with pytest.raises(ValueError) as error:
        bundle.selftest()
    assert message in str(error.value) and "selftest.json" in str(error.value)
    assert "export the bundle again" in str(error.value) or "export the run again" in str(error.value)
