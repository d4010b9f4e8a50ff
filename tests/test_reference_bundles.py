"""The shipped reference bundles keep their promises: they load TF-free (by name, by folder, as a
zip), pass their self-tests, hold their sha256s, are packaged in the wheel, and reproduce their
cards' figures on the data the cards name (where ../shared/data is present)."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_bundle import BLOCK_TENSORFLOW

from bigmodels.lite import load_bundle, reference_bundles
from bigmodels.lite.reference import REFERENCE_NAMES

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
NEEDS_DATA = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"needs the shared data folder {SHARED_DATA} (present in CI; a fresh clone lacks it)",
)
MAX_SHIPPED_BYTES = 10 * 1024 * 1024

DEVICE_SCRIPT = (
    BLOCK_TENSORFLOW
    + """
import json
from bigmodels.lite import load_bundle, reference_bundles
results = {}
for name, folder in reference_bundles().items():
    by_name, by_zip = load_bundle(name), load_bundle(folder.parent / "bundle.zip")
    results[name] = {"selftest": by_name.selftest(), "zip_selftest": by_zip.selftest(),
                     "model_file": by_name.metadata["model_file"],
                     "zip_model_file": by_zip.metadata["model_file"]}
print(json.dumps(results))
"""
)


def reference(name: str) -> dict:
    return json.loads((ROOT / "saved_models" / name / "reference.json").read_text())


def test_every_reference_is_shipped_and_listed():
    shipped = reference_bundles()
    assert sorted(shipped) == sorted(REFERENCE_NAMES)
    for name, folder in shipped.items():
        assert folder == (ROOT / "saved_models" / name / "bundle").resolve()
        card = (folder.parent / "README.md").read_text()
        assert "python apps/" in card and reference(name)["commands"][0] in card


def test_references_load_tf_free_by_name_and_as_zip_and_pass_their_selftests():
    device = subprocess.run(
        [sys.executable, "-c", DEVICE_SCRIPT], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert device.returncode == 0, device.stderr
    results = json.loads(device.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(REFERENCE_NAMES)
    for name, result in results.items():
        for key in ("selftest", "zip_selftest"):
            assert result[key]["passed"] == result[key]["total"] >= 8, (name, result[key])
        assert result["model_file"] == result["zip_model_file"]


def test_only_the_shipped_tflite_file_is_committed_and_the_total_stays_small():
    total = 0
    for name in REFERENCE_NAMES:
        folder = ROOT / "saved_models" / name
        metadata = json.loads((folder / "bundle" / "metadata.json").read_text())
        assert [p.name for p in folder.rglob("*.tflite")] == [metadata["model_file"]]
        total += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total < MAX_SHIPPED_BYTES


def test_a_reference_folder_and_a_changed_reference_are_handled(tmp_path):
    import shutil

    bundle = load_bundle(ROOT / "saved_models" / "mnist_cnn")  # the folder that holds bundle/
    assert bundle.task == "image_classification"
    copy = shutil.copytree(ROOT / "saved_models" / "mnist_cnn" / "bundle", tmp_path / "bundle")
    model = copy / bundle.metadata["model_file"]
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        load_bundle(copy)
    with pytest.raises(FileNotFoundError, match="shipped name: .*cifar10_tiny"):
        load_bundle("no_such_reference")


def test_make_clean_removes_the_demo_run_and_spares_shipped_bundles_and_user_runs(tmp_path):
    import shutil

    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for folder in ("demo", "cifar10_tiny", "my_run"):
        (tmp_path / "saved_models" / folder).mkdir(parents=True)
        (tmp_path / "saved_models" / folder / "model.keras").write_text("kept unless the demo's")
    subprocess.run(["make", "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "saved_models").iterdir()) == ["cifar10_tiny", "my_run"]


def test_the_wheel_packages_the_references(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("bigmodels-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in REFERENCE_NAMES:
        metadata = json.loads((ROOT / "saved_models" / name / "bundle" / "metadata.json").read_text())
        for file in [*metadata["files"], "metadata.json"]:
            assert f"bigmodels/reference/{name}/bundle/{file}" in names
        assert f"bigmodels/reference/{name}/bundle.zip" in names
    assert not any(n.startswith("bigmodels/reference/") and "/export/" in n for n in names)


def test_the_generator_draws_digits_the_shipped_classifier_recognises():
    generator, classifier = load_bundle("mnist_cgan"), load_bundle("mnist_cnn")
    recognised = [
        np.mean(
            [p["label"] == digit for p in classifier.predict(generator.generate(50, seed=0, label=digit))]
        )
        for digit in generator.class_names
    ]
    figure = reference("mnist_cgan")["figures"]["recognised_by_mnist_cnn"]
    assert np.mean(recognised) == pytest.approx(figure, abs=1e-9)
    assert min(recognised) >= 0.8


def _accuracy(bundle, features, labels) -> float:
    probabilities = np.concatenate(
        [bundle.model.predict(bundle.prepare(features[i : i + 500])) for i in range(0, len(labels), 500)]
    )
    return float(np.mean(probabilities.argmax(-1) == labels))


@NEEDS_DATA
def test_mnist_cnn_reproduces_its_card_on_mnist_test():
    from bigmodels.data.images import load_idx_folder

    images, labels = load_idx_folder(SHARED_DATA / "mnist")["test"]
    bundle = load_bundle("mnist_cnn")
    accuracy = _accuracy(bundle, images, labels)
    assert accuracy == pytest.approx(bundle.metadata["metrics"]["test_accuracy"], abs=1e-6)
    assert accuracy >= 0.994


@NEEDS_DATA
def test_cifar10_tiny_reproduces_its_card_on_the_held_out_split():
    from bigmodels.run_folder import load_run_dataset

    # The shipped run's config.json says how its test split was carved (seed, --test-fraction).
    # Carved from train/ itself, which gives the same 5,000 photos: once CIFAR-10's own test/
    # sits beside it, the folder's test split is that one, which the card does not describe.
    config = json.loads((ROOT / "saved_models" / "cifar10_tiny" / "run" / "config.json").read_text())
    dataset = load_run_dataset(config, str(SHARED_DATA / "cifar10" / "train"))
    images, labels = dataset.arrays["test"]
    bundle = load_bundle("cifar10_tiny")
    accuracy = _accuracy(bundle, images, labels)
    assert accuracy == pytest.approx(bundle.metadata["metrics"]["test_accuracy"], abs=1e-6)
    assert accuracy == pytest.approx(reference("cifar10_tiny")["figures"]["test_accuracy"], abs=1e-6)


@NEEDS_DATA
def test_sst2_text_reproduces_its_card_on_sst2_test():
    from bigmodels.data.text import read_table

    texts, labels, _ = read_table(
        SHARED_DATA / "sst2" / "test.tsv", text_columns=["sentence"], label_column="label"
    )
    bundle = load_bundle("sst2_text")
    predicted = [p["label"] for p in bundle.predict(texts)]
    accuracy = float(np.mean([p == str(label) for p, label in zip(predicted, labels, strict=True)]))
    assert accuracy == pytest.approx(bundle.metadata["metrics"]["test_accuracy"], abs=1e-6)
