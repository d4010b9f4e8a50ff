"""Scoring a bundle's TFLite file on labelled data (apps/evaluate.py --bundle, evaluate_bundle):
the same answers the device path gives, and bad input refused in one line with nothing written."""

import csv
import json
import shutil

import numpy as np
import pytest
from helpers import review_rows, run_app_in_process, write_image_folder
from test_apps import assert_one_line_error

from bigmodels.lite import load_bundle
from bigmodels.workflows.evaluate import evaluate_bundle

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def cifar_like_folder(tmp_path_factory):
    """train/ and test/ class folders of CIFAR-10's classes, photos of uneven sizes (resized to 32x32)."""
    root = tmp_path_factory.mktemp("cifar_like")
    write_image_folder(root / "train", per_class=2, size=(32, 32), classes=CIFAR10_CLASSES)
    write_image_folder(
        root / "test", per_class=3, size=(36, 40), classes=CIFAR10_CLASSES, seed=1, uneven=True
    )
    return root


def _device_confusion_matrix(bundle, folder) -> np.ndarray:
    """Each photo classified by Bundle.predict from its path (the device's decoding), counted
    against its folder's class."""
    paths = sorted(folder.glob("*/*.png"))
    matrix = np.zeros((len(bundle.class_names),) * 2, dtype=int)
    for result, path in zip(bundle.predict(paths), paths, strict=True):
        matrix[bundle.class_names.index(path.parent.name), bundle.class_names.index(result["label"])] += 1
    return matrix


@pytest.mark.parametrize("runtime", ["litert", "tflm"])
def test_an_image_bundle_is_scored_on_the_test_folder_as_the_device_classifies_it(cifar_like_folder, runtime):
    report = evaluate_bundle("cifar10_tiny", str(cifar_like_folder), runtime=runtime)
    assert report["num_examples"] == 30 and "'test/' folder" in report["test_split"]
    expected = _device_confusion_matrix(
        load_bundle("cifar10_tiny", runtime=runtime), cifar_like_folder / "test"
    )
    assert np.array_equal(report["confusion_matrix"], expected) and list(expected.sum(axis=1)) == [3] * 10
    assert report["accuracy"] == pytest.approx(np.trace(expected) / 30, abs=1e-6)
    assert (report["model_file"], report["quantization"], report["runtime"]) == (
        "model_int8.tflite",
        "int8",
        runtime,
    )


def test_a_folder_holding_only_test_is_scored_without_a_training_split(cifar_like_folder, tmp_path):
    shutil.copytree(cifar_like_folder / "test", tmp_path / "test")
    report = evaluate_bundle("cifar10_tiny", str(tmp_path))
    assert report["num_examples"] == 30 and "'test/' folder" in report["test_split"]
    assert report == {**evaluate_bundle("cifar10_tiny", str(cifar_like_folder)), "data_source": str(tmp_path)}


def test_a_text_bundle_reads_its_own_columns_or_the_ones_given(tmp_path):
    rows = [(body, label) for _, body, label in review_rows(40)]
    named, headerless = tmp_path / "named.csv", tmp_path / "headerless.csv"
    for path, header in ((named, [["label", "sentence"]]), (headerless, [])):
        with open(path, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(header + [[label, text] for text, label in rows])
    bundle = load_bundle("sst2_text")
    predicted = [result["label"] for result in bundle.predict([text for text, _ in rows])]
    expected = float(np.mean([p == label for p, (_, label) in zip(predicted, rows, strict=True)]))
    report = evaluate_bundle("sst2_text", str(named), all_examples=True)  # the bundle's sentence / label
    assert report["num_examples"] == 40 and report["accuracy"] == pytest.approx(expected, abs=1e-6)
    out = tmp_path / "report"
    flags = ["--text-column", "1", "--label-column", "0", "--no-header", "--out", out]
    result = run_app_in_process("evaluate", "--bundle", "sst2_text", "--data", headerless, "--all", *flags)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "evaluation.json").read_text())["accuracy"] == report["accuracy"]
    assert (out / "confusion_matrix.png").is_file() and (out / ".bigmodels.json").is_file()
    assert f"accuracy {report['accuracy']:.4f}" in result.stdout


def test_an_evaluation_folder_is_replaced_only_with_overwrite_and_never_a_users(cifar_like_folder, tmp_path):
    out = tmp_path / "evaluation"
    arguments = ["--bundle", "cifar10_tiny", "--data", cifar_like_folder, "--out", out]
    assert run_app_in_process("evaluate", *arguments).returncode == 0
    assert_one_line_error(run_app_in_process("evaluate", *arguments), "already exists", "--overwrite")
    assert run_app_in_process("evaluate", *arguments, "--overwrite").returncode == 0
    mine = tmp_path / "mine"
    (mine / "notes.txt").parent.mkdir()
    (mine / "notes.txt").write_text("keep")
    result = run_app_in_process(
        "evaluate", "--bundle", "cifar10_tiny", "--data", cifar_like_folder, "--out", mine, "--overwrite"
    )
    assert_one_line_error(result, "not a report folder written by bigmodels")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["--bundle", "cifar10_tiny"], ["--bundle needs --data"]),
        (["--bundle", "cifar10_tiny", "--data", "{folder}/test"], ["no test split of its own", "--all"]),
        (
            ["--bundle", "mnist_cgan", "--data", "{folder}", "--all"],
            ["image_generation bundles have no classes"],
        ),
        (["--bundle", "mnist_cnn", "--data", "{folder}", "--all"], ["classes", "differ from the bundle's"]),
        (
            ["--bundle", "sst2_text", "--data", "{folder}", "--all"],
            ["image data, but the bundle classifies texts"],
        ),
        (
            ["--bundle", "cifar10_tiny", "--data", "{csv}", "--all"],
            ["text data, but the bundle classifies images"],
        ),
        (["--bundle", "{folder}/missing.zip", "--data", "{folder}"], ["does not exist"]),
        (["--bundle", "sst2_text", "--data", "{csv}", "--all", "--runtime", "tflm"], ["int8"]),
        (["--run", "{folder}", "--out", "{out}"], ["--out: only for --bundle"]),
        (
            ["--bundle", "cifar10_tiny", "--data", "{folder}", "--threads", "0"],
            ["--threads must be at least 1"],
        ),
    ],
)
def test_bad_bundle_evaluations_are_one_line_and_write_nothing(
    cifar_like_folder, tmp_path, arguments, fragments
):
    table = tmp_path / "reviews.csv"
    table.write_text("sentence,label\nfine,positive\nbad,negative\n", encoding="utf-8")
    out = tmp_path / "evaluation"
    values = {"folder": cifar_like_folder, "csv": table, "out": out}
    result = run_app_in_process(
        "evaluate", *[argument.format(**values) for argument in arguments], "--out", out
    )
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_other_classes_are_named_briefly(tmp_path):
    """A column of free text taken for the labels gives thousands of classes: the one line names ten."""
    table = tmp_path / "reviews.csv"
    rows = "".join(f"review number {index},label {index}\n" for index in range(40))
    table.write_text("sentence,label\n" + rows, encoding="utf-8")
    result = run_app_in_process("evaluate", "--bundle", "sst2_text", "--data", table, "--all")
    assert_one_line_error(result, "label 0, label 1,", "... (40 in all)", "(negative, positive)")
