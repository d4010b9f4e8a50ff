"""Training learns; a run folder holds what the contract says; evaluation reports per class."""

import csv
import json

import keras
import numpy as np
import pytest
from helpers import separable_images, write_image_folder

from bigmodels import get_model
from bigmodels.data import load_dataset
from bigmodels.data.dataset import Dataset, DatasetInfo
from bigmodels.run_folder import load_run_dataset, read_run
from bigmodels.training.classifier import fit_classifier
from bigmodels.workflows.evaluate import evaluate_run
from bigmodels.workflows.train import train_run


def _dataset():
    images, labels = separable_images(192, size=(16, 16), num_classes=2)
    arrays = {
        "train": (images[:128], labels[:128]),
        "validation": (images[128:160], labels[128:160]),
        "test": (images[160:], labels[160:]),
    }
    info = DatasetInfo(
        source="made by the test",
        kind="image",
        class_names=["left", "right"],
        input_shape=(16, 16, 1),
        counts={"train": 128, "validation": 32, "test": 32},
        test_split="last 32",
        validation_split="32 before",
    )
    return Dataset(arrays=arrays, info=info, batch_size=16)


def test_classifier_learns_separable_data(tmp_path):
    data = _dataset()
    model = get_model("cnn_classifier", input_shape=(16, 16, 1), num_classes=2)
    summary = fit_classifier(
        model,
        data,
        tmp_path,
        epochs=6,
        learning_rate=5e-3,
        seed=0,
        patience=10,
        augmentation="none",
        verbose=0,
    )
    with open(tmp_path / "history.csv", newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert losses[-1] < losses[0] * 0.7
    best = keras.models.load_model(tmp_path / "model.keras")
    features, labels = data.arrays["test"]
    accuracy = np.mean(best.predict(features, verbose=0).argmax(-1) == labels)
    assert accuracy >= 0.75, f"accuracy {accuracy} is no better than chance on separable data"
    assert summary["epochs_trained"] >= 1 and not (tmp_path / "backup").exists()


def test_run_folder_holds_the_contract(digits_run):
    run_dir, config = read_run(digits_run)
    for name in (
        "model.keras",
        "config.json",
        "metrics.json",
        "history.csv",
        "training_curves.png",
        "evaluation.json",
        "confusion_matrix.png",
    ):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "logs").rglob("events.out.tfevents*")), "no TensorBoard log"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "num_test_examples",
        "class_names",
        "data_source",
        "test_split",
        "skipped_files",
    ):
        assert key in metrics, key
    assert metrics["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert config["model_args"]["variant"] == "compact"
    assert config["model_args"]["variant_chosen_by"].startswith("auto")
    assert config["training"]["epochs"] == 3 and config["data"]["source"] == "digits"
    assert not run_dir.with_name(run_dir.name + ".partial").exists()


def test_evaluate_run_recomputes_per_class_metrics(digits_run):
    report = evaluate_run(digits_run)
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert set(report["per_class"]) == {str(d) for d in range(10)}
    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == report["num_examples"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["accuracy"], abs=1e-6)


def test_a_run_reloads_the_test_split_it_was_trained_with(tmp_path):
    """--test-fraction is recorded: evaluation (and every derived run) tests on the same examples,
    never on a 20% split that overlaps the training data."""
    run_dir, metrics = train_run(
        "cnn_classifier", "digits", tmp_path / "run", epochs=1, verbose=0,
        data_options={"test_fraction": 0.1, "validation_fraction": 0.05},
    )  # fmt: skip
    config = read_run(run_dir)[1]
    assert config["data"]["test_fraction"] == 0.1 and config["data"]["validation_fraction"] == 0.05
    report = evaluate_run(run_dir)
    assert report["num_examples"] == metrics["counts"]["test"] == 179  # 10% of 1,797, per class
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_a_run_with_a_split_seed_is_scored_on_the_held_out_examples_of_that_seed(tmp_path):
    """--split-seed is recorded: a run of another --seed evaluates on the same test examples."""
    run_dir, metrics = train_run(
        "cnn_classifier", "digits", tmp_path / "run", epochs=1, seed=5, verbose=0,
        data_options={"split_seed": 0},
    )  # fmt: skip
    config = read_run(run_dir)[1]
    assert config["data"]["split_seed"] == 0 and config["data"]["seed"] == 5
    expected = load_dataset("digits", seed=0).arrays["test"][0]
    np.testing.assert_array_equal(load_run_dataset(config).arrays["test"][0], expected)
    assert not np.array_equal(load_dataset("digits", seed=5).arrays["test"][0], expected)
    assert evaluate_run(run_dir)["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_evaluate_on_data_with_other_classes_is_refused(digits_run, tmp_path):
    write_image_folder(tmp_path, per_class=5, size=(8, 8), channels=1)
    with pytest.raises(ValueError, match="differ from the run's"):
        evaluate_run(digits_run, str(tmp_path))


def _write_digit_folder(root, per_class: int):
    """root/<digit>/<i>.png: the embedded digits' first examples of each class, as 8x8 PNGs."""
    from PIL import Image

    from bigmodels.data.sources import load_digits_arrays

    images, labels, class_names = load_digits_arrays()
    chosen = np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in range(10)])
    for index in chosen:
        folder = root / class_names[labels[index]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[index].squeeze(-1)).save(folder / f"{index}.png")
    return images[chosen], labels[chosen]


def test_evaluate_all_scores_every_example_of_new_data(digits_run, tmp_path):
    """--data alone scores the source's test split (a carved share of a plain class folder); --all
    scores every photo, even two per class, where carving would leave no validation split."""
    from bigmodels.run_folder import load_run_model

    images, labels = _write_digit_folder(tmp_path / "new", per_class=2)
    report = evaluate_run(digits_run, str(tmp_path / "new"), all_examples=True)
    expected = load_run_model(digits_run).predict(images, verbose=0).argmax(-1)
    assert report["num_examples"] == 20 and report["test_split"].startswith("every example")
    assert report["accuracy"] == pytest.approx(np.mean(expected == labels), abs=1e-6)
    with pytest.raises(ValueError, match="validation split is empty.*with --all"):
        evaluate_run(digits_run, str(tmp_path / "new"))
    with pytest.raises(ValueError, match="name the data"):
        evaluate_run(digits_run, all_examples=True)


def test_photo_folder_trains_the_mobile_variant(tmp_path):
    write_image_folder(tmp_path / "photos", per_class=10, uneven=True, extension=".jpg")
    run_dir, metrics = train_run(
        "cnn_classifier",
        str(tmp_path / "photos"),
        tmp_path / "run",
        epochs=1,
        image_size=(32, 32),
        model_args={"width_multiplier": 0.25},
        verbose=0,
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_args"]["variant"] == "mobile"
    assert metrics["input_shape"] == [32, 32, 3]


def test_existing_output_is_not_overwritten_by_accident(digits_run):
    with pytest.raises(ValueError, match="already exists"):
        train_run("cnn_classifier", "digits", digits_run, epochs=1, verbose=0)


def test_precise_batch_norm_statistics_describe_every_class_of_class_sorted_data():
    # Class folders load one class after another. The statistics were once taken from the split's
    # first 16 batches: here class 0 only (mean 0 instead of 5); on CIFAR-10, airplanes only.
    from bigmodels.training.classifier import _precise_batch_norm

    generator = np.random.default_rng(0)
    labels = np.repeat([0, 1], 160)
    features = (labels[:, None] * 10.0 + generator.normal(size=(320, 4))).astype("float32")
    info = DatasetInfo(source="made by the test", kind="image", class_names=["low", "high"],
                       input_shape=(4,), counts={"train": 320, "validation": 2, "test": 2},
                       test_split="made", validation_split="made")  # fmt: skip
    small = (features[:2], labels[:2])
    dataset = Dataset({"train": (features, labels), "validation": small, "test": small}, info, batch_size=8)
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    (callback,) = _precise_batch_norm(dataset, steps_per_epoch=1, averaged=False)
    callback.set_model(model)
    callback.on_test_begin()
    # The whole split's mean is 5 and its variance about 25 + 1; 128 of its 320 examples measure it.
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), 5.0, atol=1.0)
    np.testing.assert_allclose(model.get_layer("bn").moving_variance.numpy(), 26.0, rtol=0.15)
