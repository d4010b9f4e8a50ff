"""Transfer learning (--backbone): from one of our own runs and from a keras-hub image preset
(tiny, random weights, saved with save_to_preset: nothing is downloaded), two phases, the
export of every image mode, and the one-line errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import predict_without_tensorflow, write_image_folder, write_reviews_csv

ROOT = Path(__file__).resolve().parents[1]
PHOTO_SIZE = (36, 44)  # not the backbones' 32x32: the models resize (and crop) inside
PRESET_SCALE = [1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)]  # ImageNet's mean and std
PRESET_OFFSET = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
OFFLINE_LINE = (
    "error: preset mobilenet_v3_small_100_imagenet could not be downloaded: connect once, "
    "or pass a local preset folder"
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("photos") / "data", per_class=16, size=PHOTO_SIZE)


@pytest.fixture(scope="module")
def source_run(photos, tmp_path_factory):
    """A tiny residual CNN run: the backbone of our own."""
    from bigmodels.workflows.train import train_run

    out = tmp_path_factory.mktemp("source") / "run"
    model_args = {"variant": "resnet", "width_multiplier": 0.25, "resolution": 32}
    run_dir, _ = train_run("cnn_classifier", str(photos), out, epochs=1, model_args=model_args, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A keras-hub MobileNetBackbone (the class of mobilenet_v3_small_100_imagenet) of 3k random
    weights, with an ImageNet-style image converter and a licence in its metadata."""
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[16], [24]],
        stackwise_num_blocks=[1, 1],
        stackwise_num_filters=[[8], [16]],
        stackwise_kernel_size=[[3], [3]],
        stackwise_num_strides=[[2], [1]],
        stackwise_se_ratio=[[None], [0.25]],
        stackwise_activation=[["relu"], ["hard_swish"]],
        stackwise_padding=[[1], [1]],
        output_num_filters=32,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=32,
        squeeze_and_excite=0.5,
        image_shape=(32, 32, 3),
        input_num_filters=8,
    )
    folder = tmp_path_factory.mktemp("preset") / "tiny_mobilenet"
    backbone.save_to_preset(str(folder))
    converter = keras_hub.layers.MobileNetImageConverter(
        image_size=(32, 32), scale=PRESET_SCALE, offset=PRESET_OFFSET
    )
    converter.save_to_preset(str(folder))
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "license": "Apache-2.0"}))
    return folder


def history_phases(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv", newline="") as handle:
        return [int(float(row["phase"])) for row in csv.DictReader(handle)]


def layer_weights(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}


class PhaseEnd(keras.callbacks.Callback):
    """The backbone's weights at the end of each phase (after the best epoch is restored)."""

    def __init__(self):
        super().__init__()
        self.snapshots = []

    def on_train_end(self, logs=None):
        self.snapshots.append(layer_weights(self.model.get_layer("backbone")))


def test_backbone_from_our_run_copies_its_features_fine_tunes_from_a_layer_and_exports_int8(
    source_run, photos, tmp_path
):
    from bigmodels import load_model
    from bigmodels.workflows.export import export_run
    from bigmodels.workflows.train import train_run

    phase_end = PhaseEnd()
    run_dir, metrics = train_run(
        None, str(photos), tmp_path / "run", backbone=str(source_run), epochs=1, fine_tune_epochs=1,
        fine_tune_from="stack2_a_conv", callbacks=[phase_end], verbose=0,
    )  # fmt: skip
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "backbone_classifier"
    assert config["backbone"]["kind"] == "run" and config["backbone"]["model"] == "cnn_classifier"
    assert config["backbone"]["fine_tune_from"] == "stack2_a_conv"
    assert [p["name"] for p in config["backbone"]["phases"]] == ["feature_extraction", "fine_tuning"]
    assert config["backbone"]["phases"][1]["learning_rate"] == pytest.approx(
        config["backbone"]["phases"][0]["learning_rate"] / 10
    )
    assert history_phases(run_dir) == [1, 2]
    assert [phase["phase"] for phase in metrics["phases"]] == [1, 2]
    # A few photos on our own run: once validated, both phases run again on train + validation.
    assert config["training"]["retrain_on_all"] is True and config["model_args"]["flip_average"] is True
    counts = metrics["counts"]
    assert metrics["retrained_on_all"]["train_examples"] == counts["train"] + counts["validation"]
    assert (
        history_phases(run_dir / "retrain") == [1, 2] and not (run_dir / "retrain" / "model.keras").exists()
    )

    source = layer_weights(keras.models.load_model(source_run / "model.keras"))
    after_frozen, after_fine_tuning, retrained_frozen, retrained = phase_end.snapshots
    for name, weights in retrained_frozen.items():  # the retrain starts again from the source's weights
        for ours, theirs in zip(weights, source[name], strict=True):
            np.testing.assert_array_equal(ours, theirs, err_msg=name)
    final = layer_weights(load_model(run_dir).get_layer("backbone"))
    for name, weights in retrained.items():  # model.keras is the retrain's last epoch
        for ours, theirs in zip(weights, final[name], strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg=name)
    assert set(after_frozen) <= set(source)
    for name, weights in after_frozen.items():  # phase 1: every backbone weight is the source's
        for ours, theirs in zip(weights, source[name], strict=True):
            np.testing.assert_array_equal(ours, theirs, err_msg=name)
    order = [layer.name for layer in load_model(run_dir).get_layer("backbone").layers]
    frozen = set(order[: order.index("stack2_a_conv")])
    for name, weights in after_fine_tuning.items():  # phase 2: BatchNorm and the early layers frozen
        unchanged = name in frozen or name.endswith("_bn")
        same = all(np.array_equal(a, b) for a, b in zip(weights, source[name], strict=True))
        assert same == unchanged, name
    assert "stack2_a_conv" not in frozen and any(name.startswith("stack2") for name in after_fine_tuning)

    report = export_run(run_dir, quantization=["int8"], latency_repeats=5)
    assert report["bundle"]["artifact"] == "model_int8.tflite"
    assert report["micro"]["ops_supported"] and "GATHER" in report["micro"]["ops"]  # the mirrored views
    card = (run_dir / "export" / "bundle" / "MODEL_CARD.md").read_text()
    assert f"training + validation ({counts['train'] + counts['validation']} examples)" in card
    images = sorted(photos.rglob("*.png"))[:4]
    device = predict_without_tensorflow(run_dir / "export" / "bundle.zip", images)
    assert len(device["labels"]) == 4 and set(device["labels"]) <= {"ants", "bees"}
    assert device["selftest"]["passed"] == device["selftest"]["total"] > 0

    # This run as a backbone lends its features without the mirroring (the new model has its own).
    from bigmodels.models.backbones import load_backbone
    from bigmodels.models.layers import MirrorPairs

    features = load_backbone(str(run_dir)).features
    assert not any(isinstance(layer, MirrorPairs) for layer in features._flatten_layers())
    assert features.predict(np.zeros((3, *features.input_shape[1:]), "float32"), verbose=0).shape[0] == 3


def test_keras_hub_preset_trains_in_two_phases_and_exports_every_image_mode(tiny_preset, photos, tmp_path):
    from bigmodels.workflows.export import export_run
    from bigmodels.workflows.train import train_run

    run_dir, _ = train_run(
        None,
        str(photos),
        tmp_path / "run",
        backbone=str(tiny_preset),
        epochs=1,
        fine_tune_epochs=1,
        verbose=0,
    )
    config = json.loads((run_dir / "config.json").read_text())
    record = config["backbone"]
    assert record["kind"] == "keras_hub_preset" and record["class"] == "MobileNetBackbone"
    assert record["preset"] == "tiny_mobilenet" and record["licence"] == "Apache-2.0"
    assert record["image_size"] == [32, 32] and record["preprocessing"]["crop_to_aspect_ratio"] is True
    np.testing.assert_allclose(record["preprocessing"]["scale"], PRESET_SCALE)
    np.testing.assert_allclose(record["preprocessing"]["offset"], PRESET_OFFSET)
    assert config["model_args"]["input_shape"] == [*PHOTO_SIZE, 3]  # the user's raw pixels go in
    assert history_phases(run_dir) == [1, 2]

    report = export_run(run_dir, latency_repeats=5)
    tflite = [a["quantization"] for a in report["artifacts"] if a["format"] == "tflite"]
    assert tflite == ["float32", "dynamic", "float16", "int8"]
    assert all("accuracy" in a for a in report["artifacts"])  # every file ran on the test split
    float32 = next(a for a in report["artifacts"] if a["quantization"] == "float32")
    assert float32["agreement"] == 1.0
    card = (run_dir / "export" / "bundle" / "MODEL_CARD.md").read_text()
    assert "MobileNetBackbone" in card and "Apache-2.0" in card and "tiny_mobilenet" in card
    images = sorted(photos.rglob("*.png"))[-3:]
    device = predict_without_tensorflow(run_dir / "export" / "bundle.zip", images)
    assert len(device["labels"]) == 3
    assert device["selftest"]["passed"] == device["selftest"]["total"] > 0


def test_in_model_preprocessing_matches_the_presets_image_converter(tiny_preset):
    import keras_hub

    from bigmodels.models import backbone_classifier

    model = backbone_classifier(backbone=str(tiny_preset), input_shape=(*PHOTO_SIZE, 3), num_classes=2)
    ours = keras.Model(model.input, model.get_layer("resize").output)
    converter = keras_hub.layers.ImageConverter.from_preset(str(tiny_preset))
    images = np.random.default_rng(0).integers(0, 256, (6, *PHOTO_SIZE, 3)).astype(np.uint8)
    expected = keras.ops.convert_to_numpy(converter(images))
    assert expected.shape == (6, 32, 32, 3)
    # Within one pixel level (1/255 of the range) in the converter's units.
    np.testing.assert_allclose(ours.predict(images, verbose=0), expected, atol=max(PRESET_SCALE))


def test_a_preset_handle_offline_is_one_line_and_writes_nothing(photos, tmp_path):
    out = tmp_path / "run"
    # An empty download cache: the handle cannot come from an earlier download either.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KAGGLEHUB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "apps" / "train.py"), "--data", str(photos), "--out", str(out),
         "--backbone", "mobilenet_v3_small_100_imagenet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [OFFLINE_LINE]
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "cache") == []


def write_fake_text_run(folder: Path) -> Path:
    """A run folder of a text model: the kind is read from config.json before anything loads."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": "transformer_classifier", "model_args": {}}))
    (folder / "metrics.json").write_text("{}")
    (folder / "model.keras").write_bytes(b"not read")
    return folder


@pytest.mark.parametrize(
    "backbone, options, error, fragment",
    [
        ("missing/folder", {}, FileNotFoundError, "backbone folder 'missing/folder' does not exist"),
        ("TEXT_RUN", {}, ValueError, "is a text classification run (transformer_classifier)"),
        ("not_a_preset_name", {}, ValueError, "neither a folder nor a keras-hub preset name"),
        ("SOURCE_RUN", {"fine_tune_from": "no_such_layer"}, ValueError, "names no layer of the backbone"),
        ("SOURCE_RUN", {"model_name": "cnn_classifier"}, ValueError, "leave --model out"),
        ("SOURCE_RUN", {"fine_tune_epochs": -1}, ValueError, "--fine-tune-epochs must be 0"),
        ("SOURCE_RUN", {"data": "REVIEWS"}, ValueError, "--backbone takes image data, and the data is text"),
    ],
)
def test_bad_backbones_are_one_line_errors_before_anything_is_written(
    backbone, options, error, fragment, source_run, photos, tmp_path
):
    from bigmodels.workflows.train import train_run

    named = {"TEXT_RUN": lambda: write_fake_text_run(tmp_path / "text_run"), "SOURCE_RUN": lambda: source_run}
    source = str(named[backbone]()) if backbone in named else backbone
    options = dict(options)  # the parameters' own dict stays as pytest listed it
    model_name = options.pop("model_name", None)
    data = write_reviews_csv(tmp_path / "reviews.csv", 40) if options.pop("data", None) else photos
    text_options = {"text_columns": ["body"], "label_column": "sentiment"} if data != photos else None
    out = tmp_path / "out"
    with pytest.raises(error) as raised:
        train_run(
            model_name,
            str(data),
            out,
            backbone=source,
            epochs=1,
            verbose=0,
            data_options=text_options,
            **options,
        )
    assert fragment in str(raised.value) and "\n" not in str(raised.value)
    assert not out.exists() and not list(tmp_path.glob("out.partial*"))


def test_a_run_backbone_takes_other_sized_grayscale_images_through_layers_inside_the_model(source_run):
    """Grayscale photos of another size on the colour run: widened and resized in the model, and
    on same-sized colour pixels the features are the source run's own."""
    from bigmodels import load_model
    from bigmodels.models import backbone_classifier

    model = backbone_classifier(backbone=str(source_run), input_shape=(24, 30, 1), num_classes=3)
    assert model.get_layer("gray_to_rgb") and model.get_layer("resize").output.shape[1:3] == PHOTO_SIZE
    gray = np.random.default_rng(1).integers(0, 256, (2, 24, 30, 1)).astype(np.uint8)
    assert model.predict(gray, verbose=0).shape == (2, 3)

    same_size = backbone_classifier(backbone=str(source_run), input_shape=(*PHOTO_SIZE, 3), num_classes=3)
    source = load_model(source_run)
    pixels = np.random.default_rng(2).integers(0, 256, (3, *PHOTO_SIZE, 3)).astype(np.uint8)
    ours = keras.Model(same_size.input, same_size.get_layer("pool").output).predict(pixels, verbose=0)
    theirs = keras.Model(source.input, source.get_layer("pool").output).predict(pixels, verbose=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


class Killed(BaseException):
    """Stands for SIGKILL arriving after an epoch is logged and backed up."""


class KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed


@pytest.mark.parametrize("killed_after", [1, 4])  # epochs 0-2 are phase 1, 3-5 phase 2
def test_a_run_killed_in_either_phase_resumes_with_each_epoch_numbered_once(
    source_run, photos, tmp_path, killed_after
):
    from bigmodels import get_model, load_dataset
    from bigmodels.training.transfer import fit_in_phases, training_phases

    dataset = load_dataset(str(photos), batch_size=8)
    settings = {
        "phases": training_phases(3, 3, 1e-3, None),
        "seed": 0,
        "patience": 10,
        "augmentation": "none",
    }

    def fit(callbacks):
        model = get_model("backbone_classifier", backbone=str(source_run), input_shape=(*PHOTO_SIZE, 3))
        return fit_in_phases(model, dataset, tmp_path, callbacks=callbacks, verbose=0, **settings)

    with pytest.raises(Killed):
        fit([KillAfterEpoch(killed_after)])
    summary = fit([])
    with open(tmp_path / "history.csv", newline="") as handle:
        logged = [(int(row["epoch"]), int(float(row["phase"]))) for row in csv.DictReader(handle)]
    assert logged == [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
    assert summary["epochs_trained"] == 6
    assert [phase["epochs_trained"] for phase in summary["phases"]] == [3, 3]
    assert 1 <= summary["phases"][0]["best_epoch"] <= 3 < summary["phases"][1]["best_epoch"] <= 6


def test_resolution_runs_a_run_backbone_at_another_size(source_run):
    from bigmodels.models import backbone_classifier

    model = backbone_classifier(
        backbone=str(source_run), input_shape=(*PHOTO_SIZE, 3), num_classes=2, resolution=24
    )
    assert model.get_layer("resize").output.shape[1:3] == (24, 24)
    assert model.get_layer("backbone").input.shape[1:3] == (24, 24)
    pixels = np.random.default_rng(3).integers(0, 256, (2, *PHOTO_SIZE, 3)).astype(np.uint8)
    assert model.predict(pixels, verbose=0).shape == (2, 2)


STANDARD = {"epochs": 10, "patience": 5, "fine_tune": 10, "resolution": None, "retrain_on_all": False}


@pytest.mark.parametrize(
    "kind, data, train_examples, given, expected",
    [
        # A few hundred photos on one of our runs: the longer schedule at 1.5x the run's side.
        ("run", "image", 196, {}, {"epochs": 30, "patience": 15, "fine_tune": 40, "resolution": 48,
                                   "retrain_on_all": True}),
        # What the caller gives stays theirs.
        ("run", "image", 196, {"epochs": 5, "resolution": 32, "retrain_on_all": False},
         {"epochs": 5, "patience": 15, "fine_tune": 40, "resolution": 32, "retrain_on_all": False}),
        # Grayscale digits on our run: the small set's schedule, but never mirrored.
        ("run", "image", 196, {"channels": 1},
         {"epochs": 30, "patience": 15, "fine_tune": 40, "resolution": 48, "retrain_on_all": True,
          "flip_average": False}),
        # An augmentation the caller names stays theirs (else photos keep shifts and flips).
        ("run", "image", 196, {"augmentation": "resized_crop_flip"},
         {"epochs": 30, "patience": 15, "fine_tune": 40, "resolution": 48, "retrain_on_all": True,
          "augmentation": "resized_crop_flip"}),
        ("run", "image", 5000, {}, STANDARD),
        ("keras_hub_preset", "image", 196, {}, STANDARD),
    ],
)  # fmt: skip
def test_the_backbone_schedule_is_chosen_by_the_data_size_and_kind(
    kind, data, train_examples, given, expected
):
    from types import SimpleNamespace

    from bigmodels.workflows.backbone_settings import backbone_schedule

    settings = {
        "epochs": given.get("epochs"),
        "patience": None,
        "learning_rate": None,
        "retrain_on_all": given.get("retrain_on_all"),
        "augmentation": given.get("augmentation"),
    }
    model_args = {"backbone": "x", "resolution": given.get("resolution")}
    transfer = {"record": {"kind": kind, "image_size": [32, 32]}, "fine_tune_epochs": None}
    shape = (40, 40, given.get("channels", 3))
    info = SimpleNamespace(kind=data, counts={"train": train_examples}, input_shape=shape)
    settings, model_args, transfer = backbone_schedule(settings, model_args, transfer, info)
    assert (settings["epochs"], settings["patience"]) == (expected["epochs"], expected["patience"])
    assert transfer["fine_tune_epochs"] == expected["fine_tune"] and settings["learning_rate"] is None
    assert model_args["resolution"] == expected["resolution"]
    assert settings["retrain_on_all"] is expected["retrain_on_all"]
    flip = expected.get("flip_average", expected["patience"] == 15)  # the small set's, for colour photos
    assert model_args.get("flip_average", False) is flip
    assert transfer["schedule"] == ("small set" if expected["patience"] == 15 else "standard")
    # Not the random-resized crops a few hundred camera photos get from scratch: unmeasured here.
    colour = given.get("channels", 3) == 3
    assert settings["augmentation"] == expected.get("augmentation", "shift_flip" if colour else None)
