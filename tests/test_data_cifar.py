"""CIFAR-10 and CIFAR-100 as their authors distribute them (binary records, pickled batches): the
pixels come back in the right order, the test batch is the test split, and a pickle that would
run code is refused without running it."""

import os
import pickle

import numpy as np
import pytest
from helpers import run_app_in_process
from test_apps import assert_one_line_error
from test_evaluate_bundle import CIFAR10_CLASSES as CIFAR10_CLASS_TUPLE

from bigmodels.data import load_dataset
from bigmodels.lite import load_bundle
from bigmodels.workflows.evaluate import evaluate_bundle

CIFAR10_CLASSES = list(CIFAR10_CLASS_TUPLE)


def _images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def _planes(images: np.ndarray) -> np.ndarray:
    """The distribution's layout: each image's red, then green, then blue plane, row by row."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar10(root, version: str, *, protocol: int = 2, train=(6, 4), test=5):
    """A small CIFAR-10 download: data_batch_1.. (train sizes), test_batch, the names file."""
    root.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i + 1}": count for i, count in enumerate(train)}
    batches["test_batch"] = test
    written = {}
    for seed, (name, count) in enumerate(batches.items()):
        images, labels = _images(count, seed), np.arange(count) % 10
        written[name] = (images, labels)
        if version == "binary":
            records = np.concatenate([labels.astype(np.uint8)[:, None], _planes(images)], axis=1)
            (root / f"{name}.bin").write_bytes(records.tobytes())
        else:
            batch = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": _planes(images)}
            (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    if version == "binary":
        (root / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    else:
        names = {b"label_names": [name.encode() for name in CIFAR10_CLASSES], b"num_vis": 3072}
        (root / "batches.meta").write_bytes(pickle.dumps(names, protocol=protocol))
    return written


@pytest.mark.parametrize(
    ("version", "protocol"), [("binary", None), ("python", 2), ("python", 4), ("python", 5)]
)
def test_cifar10_batches_load_pixel_exact_with_their_own_test_split(tmp_path, version, protocol):
    written = write_cifar10(tmp_path, version, protocol=protocol)
    dataset = load_dataset(str(tmp_path), validation_fraction=0.5)
    assert dataset.info.class_names == CIFAR10_CLASSES
    assert dataset.info.test_split == "the source's own test batch"
    test_images, test_labels = dataset.arrays["test"]
    assert np.array_equal(test_images, written["test_batch"][0])
    assert np.array_equal(test_labels, written["test_batch"][1])
    every = load_dataset(str(tmp_path), all_as_test=True).arrays["test"][0]
    expected = np.concatenate([images for images, _ in written.values()])
    assert every.shape == (15, 32, 32, 3)
    assert sorted(map(bytes, every)) == sorted(map(bytes, expected))


@pytest.mark.parametrize("version", ["binary", "python"])
def test_cifar100_takes_its_fine_labels(tmp_path, version):
    images, fine, coarse = _images(8, 0), np.arange(8) * 12 % 100, np.arange(8) % 20
    names = [f"class_{i:02d}" for i in range(100)]
    for split in ("train", "test"):
        if version == "binary":
            records = np.concatenate([coarse[:, None], fine[:, None], _planes(images)], axis=1).astype(
                np.uint8
            )
            (tmp_path / f"{split}.bin").write_bytes(records.tobytes())
        else:
            batch = {
                b"fine_labels": fine.tolist(),
                b"coarse_labels": coarse.tolist(),
                b"data": _planes(images),
            }
            (tmp_path / split).write_bytes(pickle.dumps(batch, protocol=2))
    if version == "binary":
        (tmp_path / "fine_label_names.txt").write_text("\n".join(names) + "\n")
    else:
        (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": [n.encode() for n in names]}))
    dataset = load_dataset(str(tmp_path), all_as_test=True)
    assert dataset.info.class_names == names
    assert np.array_equal(dataset.arrays["test"][1], np.concatenate([fine, fine]))
    assert np.array_equal(dataset.arrays["test"][0][:8], images)


def test_the_shipped_int8_model_is_scored_on_a_cifar_test_batch_as_the_device_classifies_it(tmp_path):
    written = write_cifar10(tmp_path, "binary", train=(3,), test=20)
    report = evaluate_bundle("cifar10_tiny", str(tmp_path))
    images, labels = written["test_batch"]
    predicted = [CIFAR10_CLASSES.index(r["label"]) for r in load_bundle("cifar10_tiny").predict(images)]
    assert report["num_examples"] == 20
    assert report["accuracy"] == pytest.approx(np.mean(np.asarray(predicted) == labels), abs=1e-6)


def test_images_are_resized_to_the_size_asked_for(tmp_path):
    write_cifar10(tmp_path, "binary")
    dataset = load_dataset(str(tmp_path), image_size=(24, 24), all_as_test=True)
    assert dataset.arrays["test"][0].shape == (15, 24, 24, 3)
    assert dataset.info.preprocessing["resize"].startswith("centre crop")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    write_cifar10(tmp_path / "cifar", "python")
    marker = tmp_path / "ran"
    (tmp_path / "cifar" / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(marker)}, protocol=2))
    result = run_app_in_process("evaluate", "--bundle", "cifar10_tiny", "--data", tmp_path / "cifar")
    assert_one_line_error(result, "test_batch: not a CIFAR batch pickle", "is not part of a CIFAR batch")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (
            lambda root: (root / "test_batch.bin").write_bytes(b"\x01" * 3000),
            "not a whole number of 3073-byte",
        ),
        (lambda root: (root / "batches.meta.txt").write_text("airplane\n"), "found 1 label names"),
        (lambda root: (root / "data_batch_1.bin").write_bytes(b"\x0b" + bytes(3072)), "label 11 but"),
    ],
)
def test_damaged_binary_batches_are_one_line(tmp_path, damage, fragment):
    write_cifar10(tmp_path, "binary")
    damage(tmp_path)
    result = run_app_in_process("evaluate", "--bundle", "cifar10_tiny", "--data", tmp_path)
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("app", ["train", "evaluate"])
def test_a_downloaded_archive_is_refused_with_what_to_do(tmp_path, app):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + bytes(64))
    arguments = ["--data", archive, "--out", tmp_path / "out"]
    if app == "evaluate":
        arguments = ["--bundle", "cifar10_tiny", "--data", archive, "--all"]
    result = run_app_in_process(app, *arguments)
    assert_one_line_error(result, "an archive, not data; extract it and pass the folder it holds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]
