"""Mixup (``--augmentation crop_flip_mixup``, ``crop_flip_cutout_mixup``, ``resized_crop_flip_mixup``):
blended images with blended one-hot labels, a loss and an accuracy that take those soft labels in
training and integer labels in validation, and a training run that saves a model which loads."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_app_in_process, write_image_folder
from test_apps import assert_one_line_error

from bigmodels import train_run
from bigmodels.compress.distillation import distillation_loss
from bigmodels.models.losses import SmoothedSparseCrossentropy, label_accuracy
from bigmodels.run_folder import load_run_model
from bigmodels.training.augmentation import augment_pipeline


def _flat_images(count: int, size: int = 16):
    """Image i is one grey level throughout, so an image's centre survives crops and flips."""
    levels = np.linspace(8, 248, count).round().astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, size, size, 3)).copy(), levels


def test_mixup_blends_each_image_and_its_label_with_a_partner_by_one_weight():
    images, levels = _flat_images(16)
    labels = np.arange(16)  # one class per image: a soft label names both images of a pair
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    x, y = next(iter(augment_pipeline(batches, "crop_flip_mixup", seed=3, classes=16)))
    x, y = x.numpy(), y.numpy()
    assert x.dtype == np.uint8 and x.shape == images.shape and y.shape == (16, 16)
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
    weights = y[np.arange(16), labels]  # each image's own share
    partners = 15 - labels
    np.testing.assert_allclose(y[np.arange(16), partners] + weights, 1.0, rtol=1e-6)
    centre = x[:, 8, 8, 0].astype(float)
    expected = weights * levels + (1 - weights) * levels[partners]
    np.testing.assert_allclose(centre, expected, atol=1.0)  # rounded back to uint8
    mixed = (weights > 0.05) & (weights < 0.95)
    assert 0 < mixed.sum() < 16  # Beta(0.4, 0.4): some pairs blended, some mostly one image
    again = next(iter(augment_pipeline(batches, "crop_flip_mixup", seed=3, classes=16)))
    np.testing.assert_array_equal(again[0].numpy(), x)


def test_cutout_then_mixup_blends_images_that_each_carry_a_grey_square():
    white = np.full((8, 16, 16, 3), 255, np.uint8)
    batches = tf.data.Dataset.from_tensor_slices((white, np.arange(8))).batch(8)
    x, y = next(iter(augment_pipeline(batches, "crop_flip_cutout_mixup", seed=1, classes=8)))
    x, y = x.numpy()[..., 0].astype(float), y.numpy()
    weights = y[np.arange(8), np.arange(8)]
    np.testing.assert_allclose(y[np.arange(8), 7 - np.arange(8)] + weights, 1.0, rtol=1e-6)
    for image, weight in zip(x, weights, strict=True):
        # A pixel is white, zero padding (crop) or mid-grey (cutout) in each image of the pair.
        sources = [(own, partner) for own in (255, 0, 128) for partner in (255, 0, 128)]
        blend = {(own, partner): weight * own + (1 - weight) * partner for own, partner in sources}
        distance = np.abs(image[..., None] - np.array(list(blend.values()))).min(-1)
        assert distance.max() <= 1.0
        without_grey = np.array([v for (own, partner), v in blend.items() if 128 not in (own, partner)])
        assert (np.abs(image[..., None] - without_grey).min(-1) > 1.0).any()  # a cut square shows


def test_mixup_needs_the_number_of_classes():
    images, _ = _flat_images(4)
    batches = tf.data.Dataset.from_tensor_slices((images, np.arange(4))).batch(2)
    with pytest.raises(ValueError, match="number of classes"):
        augment_pipeline(batches, "resized_crop_flip_mixup", seed=0)


def test_loss_and_accuracy_take_soft_and_integer_labels_alike():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype="float32")
    labels = np.array([0, 1])
    soft = np.array([[0.6, 0.4, 0.0], [0.0, 0.9, 0.1]], dtype="float32")
    loss = SmoothedSparseCrossentropy(0.0)
    assert float(loss(np.eye(3, dtype="float32")[labels], probabilities)) == pytest.approx(
        float(loss(labels, probabilities)), rel=1e-6
    )
    expected = -(soft * np.log(probabilities)).sum(-1).mean()
    assert float(loss(soft, probabilities)) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_array_equal(label_accuracy(labels, probabilities), [1.0, 0.0])
    np.testing.assert_array_equal(label_accuracy(soft, probabilities), [1.0, 0.0])  # strongest class


def test_a_mixup_run_trains_validates_and_saves_a_model_that_loads(tmp_path):
    data = write_image_folder(tmp_path / "photos", per_class=24, size=(24, 24), classes=("a", "b"))
    run_dir, metrics = train_run(
        None, str(data), tmp_path / "run", epochs=2, augmentation="crop_flip_mixup", verbose=0
    )
    history = (run_dir / "history.csv").read_text().splitlines()
    assert "val_accuracy" in history[0] and len(history) == 3
    assert json.loads((run_dir / "config.json").read_text())["training"]["augmentation"] == "crop_flip_mixup"
    model = load_run_model(run_dir)
    assert isinstance(model, keras.Model) and 0.0 <= metrics["test_accuracy"] <= 1.0


def test_distillation_takes_a_mixup_runs_soft_labels():
    student = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype="float32")
    teacher = np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]], dtype="float32")
    labels = np.array([0, 2])
    options = {"alpha": 0.5, "temperature": 2.0}
    integer = float(distillation_loss(labels, student, teacher, **options))
    one_hot = float(distillation_loss(np.eye(3, dtype="float32")[labels], student, teacher, **options))
    assert one_hot == pytest.approx(integer, rel=1e-6)


def test_train_app_refuses_an_unknown_mixup_in_one_line_and_writes_nothing(tmp_path):
    data = write_image_folder(tmp_path / "photos", per_class=12, size=(24, 24))
    out = tmp_path / "run"
    result = run_app_in_process("train", "--data", data, "--out", out, "--augmentation", "shift_mixup")
    assert_one_line_error(result, "unknown augmentation 'shift_mixup'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
