"""The cifar10_tiny pieces: the residual CNN's cost, crop-and-flip augmentation, label-smoothed
loss, SGD with decoupled weight decay, and --recipe through train_run and the train app."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import load_app, run_app_in_process, write_image_folder
from test_apps import assert_one_line_error

from bigmodels import train_run
from bigmodels.data.dataset import Dataset, DatasetInfo
from bigmodels.models.cnn import cnn_classifier
from bigmodels.models.cost import multiply_accumulates
from bigmodels.models.losses import SmoothedSparseCrossentropy
from bigmodels.run_folder import load_run_model
from bigmodels.training.augmentation import augment_pipeline
from bigmodels.training.classifier import fit_classifier, make_optimizer

RESNET8_MACS = 12_500_000  # MLPerf Tiny's reference model for CIFAR-10
INT8_BUDGET_WEIGHTS = 98_500  # an int8 file holds about one byte per weight


def test_resnet_variant_costs_less_than_resnet8():
    model = cnn_classifier(input_shape=(32, 32, 3), num_classes=10, variant="resnet")
    assert multiply_accumulates(model) < RESNET8_MACS
    assert model.count_params() < INT8_BUDGET_WEIGHTS
    assert model.get_layer("stack2_add").output.shape[1:] == (8, 8, 64)
    assert model.output.shape[-1] == 10


def test_resnet_stacks_take_their_widths_and_block_counts():
    model = cnn_classifier(
        input_shape=(32, 32, 3),
        num_classes=10,
        variant="resnet",
        stack_filters=(12, 20, 40),
        blocks_per_stack=(1, 2, 2),
    )
    adds = [layer.name for layer in model.layers if layer.name.endswith("_add")]
    assert adds == ["stack0_add", "stack1_add", "stack1_1_add", "stack2_add", "stack2_1_add"]
    # Only each stack's first block changes the shape: later ones keep it, with no shortcut conv.
    assert model.get_layer("stack1_1_add").output.shape[1:] == (16, 16, 20)
    assert model.get_layer("stack2_1_add").output.shape[1:] == (8, 8, 40)
    assert "stack2_1_shortcut_conv" not in {layer.name for layer in model.layers}
    assert multiply_accumulates(model) < RESNET8_MACS


@pytest.mark.parametrize(
    "arguments, expected",
    [
        ({"stack_filters": "12,32,64"}, "stack_filters takes whole numbers"),
        ({"blocks_per_stack": (1, 1.5, 1)}, "blocks_per_stack takes whole numbers"),
        ({"stack_filters": (12, 32), "blocks_per_stack": (1, 2, 2)}, "need one number per stack"),
        ({"stack_filters": (12, 0, 64)}, "at least one filter and one block"),
        ({"variant": "mobile", "blocks_per_stack": (1, 2, 2)}, "resnet variant only, not 'mobile'"),
    ],
)
def test_bad_resnet_stacks_raise_value_error(arguments, expected):
    with pytest.raises(ValueError, match=expected):
        cnn_classifier(input_shape=(32, 32, 3), **{"variant": "resnet", **arguments})


def test_multiply_accumulates_counts_each_kernel_weight_once_per_output_position():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 3*3*3*4 weights x 64 positions
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5)(x))  # 4*5
    assert multiply_accumulates(model) == 108 * 64 + 20


def _batches(images, labels, batch=8):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)


def test_crop_flip_moves_whole_pixels_within_the_padding_and_flips():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (16, 16, 16, 3), dtype=np.uint8)  # no zero pixel in the input
    labels = np.arange(16)
    out_images, out_labels = [], []
    for x, y in augment_pipeline(_batches(images, labels), "crop_flip", seed=3):
        out_images.append(x.numpy())
        out_labels.append(y.numpy())
    out, out_labels = np.concatenate(out_images), np.concatenate(out_labels)
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out_labels, labels)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))  # an eighth of 16
    flips, shifted = 0, 0
    for index in range(16):
        candidates = [
            (dy, dx, flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (False, True)
            if np.array_equal(
                out[index],
                (lambda c: c[:, ::-1] if flip else c)(padded[index, dy : dy + 16, dx : dx + 16]),
            )
        ]
        assert candidates, f"image {index} is not a crop of the padded image (or its mirror)"
        flips += candidates[0][2]
        shifted += (candidates[0][0], candidates[0][1]) != (2, 2)
    assert 0 < flips < 16 and shifted > 8


def test_crop_flip_is_seeded():
    images = np.random.default_rng(1).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)

    def run(seed):
        return next(iter(augment_pipeline(_batches(images, np.zeros(8)), "crop_flip", seed=seed)))[0].numpy()

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_cutout_greys_one_square_a_quarter_of_the_side_after_crop_flip():
    images = np.full((32, 32, 32, 3), 7, np.uint8)  # one colour: the crop's zero padding shows as 0
    plain = next(iter(augment_pipeline(_batches(images, np.zeros(32), 32), "crop_flip", seed=2)))[0]
    cut = next(iter(augment_pipeline(_batches(images, np.zeros(32), 32), "crop_flip_cutout", seed=2)))[0]
    plain, cut = plain.numpy(), cut.numpy()
    changed = (cut != plain).any(-1)  # the pixels cutout touched, per image
    assert set(np.unique(cut[np.broadcast_to(changed[..., None], cut.shape)])) == {128}
    for mask in changed:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8  # a quarter of 32, clipped at the borders
        assert mask.sum() == len(rows) * len(cols)  # one rectangle
    assert (changed.sum((1, 2)) == 64).sum() > 4  # most squares lie wholly inside


def test_resized_crop_flip_zooms_flips_and_is_seeded():
    columns = np.linspace(80, 176, 32)  # a left-to-right ramp, clear of 0 and 255 after the jitter
    images = np.broadcast_to(columns[None, None, :, None], (32, 32, 32, 3)).astype(np.uint8)
    labels = np.arange(32)

    def run(seed):
        x, y = next(iter(augment_pipeline(_batches(images, labels, 32), "resized_crop_flip", seed=seed)))
        return x.numpy(), y.numpy()

    out, out_labels = run(4)
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out_labels, labels)
    rows = out[:, 16, :, 0].astype(int)  # one row of each image
    rising, falling = (np.diff(rows) >= 0).all(1), (np.diff(rows) <= 0).all(1)
    assert (rising | falling).all()  # a crop of a ramp is a ramp, mirrored or not
    assert 0 < falling.sum() < 32  # some flipped
    spans = np.abs(rows[:, -1] - rows[:, 0])
    assert spans.min() < 0.7 * spans.max()  # crops of different widths
    np.testing.assert_array_equal(run(4)[0], out)
    assert not np.array_equal(run(5)[0], out)


def test_resized_crop_flip_cutout_greys_one_square_of_the_same_crops():
    columns = np.linspace(80, 176, 32)
    images = np.broadcast_to(columns[None, None, :, None], (32, 32, 32, 3)).astype(np.uint8)
    crops = next(iter(augment_pipeline(_batches(images, np.zeros(32), 32), "resized_crop_flip", seed=6)))[0]
    cut = next(
        iter(augment_pipeline(_batches(images, np.zeros(32), 32), "resized_crop_flip_cutout", seed=6))
    )[0]
    crops, cut = crops.numpy(), cut.numpy()
    changed = (cut != crops).any(-1)  # the first batch: the same crops, cutout draws after them
    assert (cut[changed] == 128).all() and changed.any((1, 2)).sum() > 24
    for mask in changed:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert len(rows) <= 8 and len(cols) <= 8  # inside one square a quarter of the side wide


def test_crop_flip_refuses_text():
    ids = tf.data.Dataset.from_tensor_slices((np.zeros((4, 6), np.int32), np.zeros(4))).batch(2)
    with pytest.raises(ValueError, match="text takes --augmentation none"):
        augment_pipeline(ids, "crop_flip", seed=0)


def test_smoothed_sparse_crossentropy_equals_smoothed_one_hot_crossentropy():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype="float32")
    labels = np.array([0, 2])
    smoothing = 0.1
    targets = np.eye(3)[labels] * (1 - smoothing) + smoothing / 3
    expected = -(targets * np.log(probabilities)).sum(-1).mean()
    got = float(SmoothedSparseCrossentropy(smoothing)(labels, probabilities))
    assert got == pytest.approx(expected, rel=1e-5)


def test_sgd_weight_decay_spares_batch_norm_and_biases():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    optimizer = make_optimizer("sgd", 0.1, weight_decay=0.5)
    model.layers[1].bias.assign(np.ones(3))
    before = {v.path: np.array(v) for v in model.trainable_variables}
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    for variable in model.trainable_variables:
        changed = not np.allclose(np.array(variable), before[variable.path])
        assert changed == variable.path.endswith("kernel"), variable.path
    assert optimizer.nesterov and optimizer.momentum == 0.9


@pytest.mark.parametrize("bad", [{"name": "rmsprop"}, {"name": "sgd", "weight_decay": -1.0}])
def test_bad_optimizer_settings_raise_value_error(bad):
    with pytest.raises(ValueError):
        make_optimizer(bad["name"], 0.1, weight_decay=bad.get("weight_decay", 0.0))


def test_recipe_fills_in_what_the_caller_left_out(tmp_path):
    data = write_image_folder(tmp_path / "photos", per_class=20, size=(32, 32), classes=("a", "b", "c"))
    run_dir, _ = train_run(None, str(data), tmp_path / "run", recipe="cifar10_tiny", epochs=1, verbose=0)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"] == "cifar10_tiny"
    assert config["model"] == "cnn_classifier" and config["model_args"]["variant"] == "resnet"
    training = config["training"]
    assert training["epochs"] == 1  # the caller's
    assert (training["optimizer"], training["augmentation"], training["label_smoothing"]) == (
        "sgd",
        "crop_flip_cutout",
        0.1,
    )
    assert training["batch_size"] == 256 and training["learning_rate"] == 0.2
    load_run_model(run_dir)  # the saved loss loads (registered)


def test_train_app_flags_shape_the_resnet_stacks(tmp_path):
    data = write_image_folder(tmp_path / "photos", per_class=8, size=(16, 16), classes=("a", "b"))
    out = tmp_path / "run"
    flags = ["--stack-filters", "8,16", "--blocks-per-stack", "1,2", "--width-multiplier", "1"]
    result = run_app_in_process(
        "train", "--recipe", "cifar10_tiny", "--data", data, "--out", out, "--epochs", "1", *flags
    )
    assert result.returncode == 0, result.stderr
    model_args = json.loads((out / "config.json").read_text())["model_args"]
    assert (model_args["stack_filters"], model_args["blocks_per_stack"]) == ([8, 16], [1, 2])
    model = load_run_model(out)
    assert model.get_layer("stack1_1_add").output.shape[1:] == (8, 8, 16)


def test_runs_without_a_recipe_keep_adam_and_record_it(digits_run):
    training = json.loads((digits_run / "config.json").read_text())["training"]
    assert (training["optimizer"], training["weight_decay"], training["label_smoothing"]) == (
        "adam",
        0.0,
        0.0,
    )
    assert training["weight_averaging"] == 0.0  # images train on their last weights


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--weight-averaging", "-1"], "--weight-averaging must be 0 (off) or a positive number"),
        (["--label-smoothing", "1.5"], "label smoothing must be in [0, 1)"),
    ],
)
def test_bad_optimizer_flags_are_one_line_errors_before_anything_is_written(tmp_path, flags, fragment):
    result = run_app_in_process("train", *flags, "--out", tmp_path / "run")
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags, model_args, training",
    [
        ([], {}, 0.2),  # the data's model: a classifier
        (["--recipe", "cifar10_tiny"], {}, 0.2),  # over the recipe's 0.1
        (["--model", "cnn_classifier"], {}, 0.2),
        (["--model", "dcgan"], {"label_smoothing": 0.2}, None),  # the discriminator's real targets
    ],
)
def test_label_smoothing_flag_smooths_a_classifiers_targets_or_the_dcgans(
    monkeypatch, tmp_path, flags, model_args, training
):
    import bigmodels
    from bigmodels.cli import train_from_args

    calls = []
    monkeypatch.setattr(bigmodels, "train_run", lambda *args, **options: calls.append(options))
    argv = [*flags, "--label-smoothing", "0.2", "--out", str(tmp_path)]
    train_from_args(load_app("train").parse_args(argv))
    given = {name: value for name, value in calls[0]["model_args"].items() if value is not None}
    assert given == model_args and calls[0]["label_smoothing"] == training


def test_an_unknown_augmentation_is_refused_before_the_data_loads(tmp_path):
    # Loading first would answer with the missing folder (after minutes, for a large one).
    with pytest.raises(ValueError, match="unknown augmentation 'shift_mixup'"):
        train_run(None, str(tmp_path / "nowhere"), tmp_path / "run", augmentation="shift_mixup")
    assert list(tmp_path.iterdir()) == []


def test_recipe_of_another_model_and_unknown_recipe_are_refused(tmp_path):
    with pytest.raises(ValueError, match="recipe 'cifar10_tiny' trains cnn_classifier"):
        train_run("transformer_classifier", "digits", tmp_path / "a", recipe="cifar10_tiny")
    result = run_app_in_process("train", "--recipe", "imagenet_huge", "--out", tmp_path / "b")
    assert_one_line_error(result, "unknown recipe 'imagenet_huge'", "cifar10_tiny")
    assert not (tmp_path / "b").exists()


class _RawWeights(keras.callbacks.Callback):
    """The trained (not averaged) weights after every step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(w) for w in self.model.trainable_weights])


def test_weight_averaging_validates_and_saves_the_moving_average_of_the_weights(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(96, 4)).astype("float32")
    labels = (features[:, 0] > 0).astype("int64")
    counts = {"train": 64, "validation": 16, "test": 16}
    info = DatasetInfo("made by the test", "table", ["a", "b"], (4,), counts, "", "")
    arrays = {"train": (features[:64], labels[:64]), "validation": (features[64:80], labels[64:80]),
              "test": (features[80:], labels[80:])}  # fmt: skip
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    raw = _RawWeights()
    fit_classifier(model, Dataset(arrays=arrays, info=info, batch_size=16), tmp_path, epochs=2,
                   learning_rate=0.1, seed=0, patience=2, augmentation="none", verbose=0, keep_best=False,
                   weight_averaging=1.0, callbacks=[raw])  # fmt: skip
    momentum = 1 - 1 / 4  # one epoch of 4 steps
    expected = raw.steps[0]
    for step in raw.steps[1:]:
        pairs = zip(expected, step, strict=True)
        expected = [momentum * average + (1 - momentum) * weights for average, weights in pairs]
    saved = keras.models.load_model(tmp_path / "model.keras").trainable_weights
    assert len(raw.steps) == 8
    for average, last, kept in zip(expected, raw.steps[-1], saved, strict=True):
        np.testing.assert_allclose(np.array(kept), average, atol=1e-6)
        assert np.abs(average - last).max() > 1e-3  # the average is not the last step's weights


def test_averaged_weights_are_validated_with_batch_norm_statistics_of_their_own(tmp_path):
    """The optimizer averages trainable weights only: BatchNorm's moving statistics are recomputed
    for the averaged weights (over 16 batches of training examples drawn at random, seeded), even
    with epochs long enough that they are not recomputed otherwise."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(240, 4)).astype("float32")
    labels = (features[:, 0] + features[:, 1] > 0).astype("int64")
    counts = {"train": 200, "validation": 20, "test": 20}
    info = DatasetInfo("made by the test", "table", ["a", "b"], (4,), counts, "", "")
    arrays = {"train": (features[:200], labels[:200]), "validation": (features[200:220], labels[200:220]),
              "test": (features[220:], labels[220:])}  # fmt: skip
    layers = [keras.layers.Dense(3, name="features"), keras.layers.BatchNormalization(name="bn")]
    model = keras.Sequential([keras.Input((4,)), *layers, keras.layers.Dense(2, activation="softmax")])
    fit_classifier(model, Dataset(arrays=arrays, info=info, batch_size=4), tmp_path, epochs=2,
                   learning_rate=0.05, seed=0, patience=2, augmentation="none", verbose=0, keep_best=False,
                   weight_averaging=1.0)  # fmt: skip  # 50 steps an epoch
    saved = keras.models.load_model(tmp_path / "model.keras")
    sample = np.random.default_rng(0).permutation(200)[:64]  # Dataset.shuffled_sample: 16 batches of 4
    dense = saved.get_layer("features")(features[sample])
    np.testing.assert_allclose(np.array(saved.get_layer("bn").moving_mean), np.mean(dense, axis=0), atol=1e-5)


def test_trivialaugment_gives_each_crop_one_operation_or_none_and_is_seeded():
    rng = np.random.default_rng(0)
    columns = np.linspace(40, 216, 32)  # a ramp with noise: every operation changes it
    images = (columns[None, None, :, None] + rng.normal(0, 8, (64, 32, 32, 3))).clip(0, 255).astype(np.uint8)
    labels = np.arange(64)

    def run(augmentation, seed):
        x, y = next(iter(augment_pipeline(_batches(images, labels, 64), augmentation, seed=seed)))
        return x.numpy(), y.numpy()

    crops, _ = run("resized_crop_flip", 3)
    out, out_labels = run("resized_crop_flip_trivialaugment", 3)
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out_labels, labels)
    # The same crops are drawn first; then about one image in 13 is left as cropped.
    kept = (out == crops).all((1, 2, 3))
    assert 0 < kept.sum() < 16, kept.sum()
    np.testing.assert_array_equal(run("resized_crop_flip_trivialaugment", 3)[0], out)
    assert not np.array_equal(run("resized_crop_flip_trivialaugment", 4)[0], out)
