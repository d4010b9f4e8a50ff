"""The plain tail (``--plain-last-epochs N``): the schedule's last N epochs train without the
augmentation's cutout and mixup, with the crops and flips the same run would otherwise draw."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_app_in_process, write_image_folder
from test_apps import assert_one_line_error

from bigmodels import train_run
from bigmodels.training.augmentation import PlainTail, augment_pipeline
from bigmodels.workflows.derived import derived_training

GREY = 128  # cutout's fill; the test images below hold no other pixel of that level


def _noise_batches(count=16, batch=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, size, size, 3)).astype(np.uint8)
    images[images == GREY] = GREY + 1
    return tf.data.Dataset.from_tensor_slices((images, np.arange(count) % 4)).batch(batch)


def _epoch(pipeline):
    return [(x.numpy(), y.numpy()) for x, y in pipeline]


def test_a_plain_epoch_skips_cutout_and_keeps_the_crops_and_flips_of_the_run_with_it():
    strong = tf.Variable(True)
    gated = augment_pipeline(_noise_batches(), "crop_flip_cutout", seed=5, strong=strong)
    always = augment_pipeline(_noise_batches(), "crop_flip_cutout", seed=5)
    first_on, first_always = _epoch(gated), _epoch(always)
    for (x, _), (expected, _) in zip(first_on, first_always, strict=True):
        np.testing.assert_array_equal(x, expected)  # on: the pipeline without a gate
    strong.assign(False)
    plain, with_cutout = _epoch(gated), _epoch(always)  # each pipeline's second epoch
    for (x, _), (cut, _) in zip(plain, with_cutout, strict=True):
        assert not (x == GREY).all(-1).any()  # no grey square
        differs = (x != cut).any(-1)
        assert differs.any(axis=(1, 2)).all()  # every image lost its square
        assert (cut[differs] == GREY).all()  # and only the square: the same crops and flips
    # A pipeline plain from the start: its first batch is crop_flip's (nothing else drawn yet).
    fresh = _epoch(augment_pipeline(_noise_batches(), "crop_flip_cutout", seed=5, strong=strong))
    np.testing.assert_array_equal(
        fresh[0][0], _epoch(augment_pipeline(_noise_batches(), "crop_flip", seed=5))[0][0]
    )


def test_a_plain_epoch_of_mixup_keeps_one_hot_labels_and_unblended_images():
    strong = tf.Variable(False)
    x, y = _epoch(augment_pipeline(_noise_batches(), "crop_flip_mixup", seed=2, classes=4, strong=strong))[0]
    expected_x, labels = _epoch(augment_pipeline(_noise_batches(), "crop_flip", seed=2))[0]
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, np.eye(4, dtype=np.float32)[labels])  # soft-label type, one-hot values
    strong.assign(True)
    _, mixed = _epoch(
        augment_pipeline(_noise_batches(), "crop_flip_mixup", seed=2, classes=4, strong=strong)
    )[0]
    assert (mixed.max(-1) < 0.99).any()  # on again: blended labels


class _GreySeen(keras.Model):
    """Records, per training batch, whether any pixel carries cutout's grey (eager steps)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen = []

    def call(self, x):
        return self.dense(keras.ops.mean(keras.ops.cast(x, "float32"), axis=(1, 2)))

    def train_step(self, data):
        images, _ = data
        self.seen.append(bool((images.numpy() == GREY).all(-1).any()))
        return {"grey": float(self.seen[-1])}


def test_keras_fit_sees_the_tail_from_its_first_plain_epoch_on():
    """The gate is set at each epoch's start, before fit makes the epoch's iterator: no batch
    prefetched earlier carries a square into a plain epoch, and the epochs before keep theirs."""
    tail = PlainTail(epochs=3, plain_epochs=1)
    model = _GreySeen()
    model.compile(optimizer="sgd", run_eagerly=True)
    pipeline = augment_pipeline(_noise_batches(), "crop_flip_cutout", seed=0, strong=tail.strong)
    model.fit(pipeline, epochs=3, callbacks=[tail], verbose=0, shuffle=False)
    assert model.seen == [True, True, True, True, False, False]  # 2 batches an epoch
    resumed = _GreySeen()
    resumed.compile(optimizer="sgd", run_eagerly=True)
    resumed.fit(pipeline, epochs=3, initial_epoch=2, callbacks=[tail], verbose=0, shuffle=False)
    assert resumed.seen == [False, False]


def test_train_run_records_the_tail_and_derived_runs_drop_it(tmp_path):
    data = write_image_folder(tmp_path / "photos", per_class=12, size=(32, 32), classes=("a", "b"))
    run_dir, _ = train_run(None, str(data), tmp_path / "run", recipe="cifar10_tiny", epochs=2,
                           plain_last_epochs=1, verbose=0)  # fmt: skip
    training = json.loads((run_dir / "config.json").read_text())["training"]
    assert training["plain_last_epochs"] == 1 and training["augmentation"] == "crop_flip_cutout"
    assert derived_training(training, epochs=3, learning_rate=0.01)["plain_last_epochs"] == 0


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--plain-last-epochs", "-1"], "--plain-last-epochs must be a whole number of epochs, 0 or more"),
        (
            ["--recipe", "cifar10_tiny", "--epochs", "5", "--plain-last-epochs", "5"],
            "give fewer than --epochs",
        ),
        (["--augmentation", "crop_flip", "--plain-last-epochs", "3"], "--augmentation crop_flip has neither"),
        (["--recipe", "cifar10_tiny", "--augmentation", "shift", "--plain-last-epochs", "3"], "has neither"),
    ],
)
def test_a_plain_tail_that_cannot_apply_is_one_line_error_before_anything_is_written(
    tmp_path, flags, fragment
):
    result = run_app_in_process("train", *flags, "--out", tmp_path / "run")
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


def test_a_plain_tail_on_data_whose_default_augmentation_has_no_cutout_is_refused(tmp_path):
    # Known only once the data's kind and size choose the augmentation (digits: shifts).
    with pytest.raises(ValueError, match="--augmentation shift has neither"):
        train_run(None, "digits", tmp_path / "run", epochs=2, plain_last_epochs=1, verbose=0)
    assert not (tmp_path / "run").exists()


def test_with_a_backbone_each_phase_ends_plain(tmp_path, monkeypatch):
    import bigmodels.training.classifier as classifier

    seen = []

    class Recorded(PlainTail):
        def on_epoch_begin(self, epoch, logs=None):
            super().on_epoch_begin(epoch, logs)
            seen.append((epoch, bool(self.strong.numpy())))

    monkeypatch.setattr(classifier, "PlainTail", Recorded)
    photos = write_image_folder(tmp_path / "photos", per_class=12, size=(32, 32))
    model_args = {"variant": "resnet", "width_multiplier": 0.25, "resolution": 32}
    source, _ = train_run("cnn_classifier", str(photos), tmp_path / "source", epochs=1, model_args=model_args,
                          verbose=0)  # fmt: skip
    assert seen == []  # no tail asked for: no gate
    tail = {"augmentation": "crop_flip_cutout", "plain_last_epochs": 1}
    train_run(None, str(photos), tmp_path / "run", backbone=str(source), epochs=2, fine_tune_epochs=2,
              retrain_on_all=False, verbose=0, **tail)  # fmt: skip
    # Phase 1 numbers its epochs 0-1, fine-tuning 2-3: each schedule's last epoch is plain.
    assert seen == [(0, True), (1, False), (2, True), (3, False)]
