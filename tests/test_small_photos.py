"""Small photo folders (issue 18): defaults chosen by data size, and a run stuck at chance refused."""

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import write_image_folder
from test_apps import assert_one_line_error, run_app

import bigmodels
from bigmodels.training.callbacks import StuckAtChance, raise_if_at_chance

HYMENOPTERA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hymenoptera"


def test_small_photo_folder_validation_moves_off_chance_with_small_data_defaults(tmp_path):
    # 52 training photos: 1 step an epoch at the old batch of 64, 4 at 16. Either way BatchNorm's
    # moving statistics (momentum 0.9) still held their initial variance, and validation stayed
    # at exactly 0.50 for 8 epochs while training accuracy reached 0.96 (measured before the fix).
    # "shift": the classes are a bright square's side, which a flip would swap.
    folder = write_image_folder(tmp_path / "photos", per_class=40, size=(32, 32))
    run_dir, metrics = bigmodels.train_run(
        None, str(folder), tmp_path / "run", epochs=4, augmentation="shift", verbose=0
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["batch_size"] == 16 and config["training"]["patience"] == 25
    assert config["model_args"]["width_multiplier"] == 0.5 and config["model_args"]["dropout"] == 0.5
    with open(run_dir / "history.csv", newline="") as handle:
        validation = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    assert len(validation) == 4 and max(validation) >= 0.8, validation
    assert metrics["test_accuracy"] >= 0.75, metrics


def test_a_few_hundred_camera_photos_get_width_1_5_random_resized_crops_and_fixres():
    from types import SimpleNamespace

    from bigmodels.tasks.image_classification import TASK

    def info(side, channels=3, labelled=245):
        counts = {"train": labelled - 49, "validation": 49}
        return SimpleNamespace(kind="image", input_shape=(side, side, channels), counts=counts)

    camera = info(224)  # resized inside the model: to 112 pixels while training, 128 at inference
    assert TASK.default_model_args(camera) == {
        "width_multiplier": 1.5,
        "dropout": 0.5,
        "resolution": 128,
        "training_resolution_scale": 0.875,
    }
    assert TASK.default_augmentation(camera) == "resized_crop_flip"
    assert TASK.default_training(camera)["retrain_on_all"] is True
    assert TASK.default_training(camera)["epochs"] == 40 and TASK.default_training(info(32))["epochs"] == 150
    # Small images keep their size, the half width and shifts; digits are never flipped.
    assert TASK.default_model_args(info(32)) == {"width_multiplier": 0.5, "dropout": 0.5}
    assert TASK.default_augmentation(info(32)) == "shift_flip"
    assert TASK.default_augmentation(info(224, channels=1)) == "shift"
    # Thousands of photos keep the builder's defaults.
    assert TASK.default_model_args(info(224, labelled=5000)) == {}
    assert TASK.default_augmentation(info(224, labelled=5000)) == "shift_flip"


def test_validation_split_of_small_data_holds_about_fifty_examples():
    from bigmodels.data.splits import validation_fraction_for

    assert validation_fraction_for(300, None) == pytest.approx(50 / 300)
    assert validation_fraction_for(245, None) == 0.2  # hymenoptera: 49 of 245 photos
    assert validation_fraction_for(100, None) == 0.2  # at most a fifth
    assert validation_fraction_for(1437, None) == 0.1  # larger data keep 10%
    assert validation_fraction_for(245, 0.1) == 0.1  # an explicit fraction wins


def test_stuck_at_chance_is_judged_only_after_patience():
    labels = np.array([0, 0, 1, 1, 1])
    raise_if_at_chance([0.6, 0.6], labels, patience=2)  # too short to judge
    raise_if_at_chance([0.6, 0.6, 0.8], labels, patience=2)  # it moved
    with pytest.raises(StuckAtChance, match="never rose above chance"):
        raise_if_at_chance([0.4, 0.6, 0.6], labels, patience=2)


def test_train_app_refuses_a_run_stuck_at_chance_in_one_line(tmp_path):
    # Every photo is the same picture: no model can beat answering one class.
    folder = tmp_path / "same"
    for name in ("ants", "bees"):
        write_image_folder(folder, per_class=12, size=(16, 16), classes=(name,), seed=0)
    out = tmp_path / "run"
    result = run_app("train", "--data", folder, "--out", out, "--epochs", "3", "--patience", "1")
    assert_one_line_error(result, "never rose above chance", "not saved")
    assert not out.exists()


@pytest.mark.long(360)
@pytest.mark.skipif(
    not HYMENOPTERA.is_dir(),
    reason=f"needs the real ants/bees photos at {HYMENOPTERA} (shared data: in CI, not in a clone)",
)
def test_train_app_defaults_on_hymenoptera_learn_both_classes(tmp_path):
    # Several minutes on 2 cores (the validated pass, then the retrain on all 245 photos): the real
    # folder is the point of issue 18. At width 1.5 (December 7) the 40-epoch default took 619 s
    # with the one thread `make test` gives it, and the suite 18.5 minutes; 20 epochs take about
    # 260 s (72.5% at seed 0). The 40-epoch default is asserted without training, above.
    started = time.perf_counter()
    # train/ and val/ beside each other: val/ is the test split (as --test-data is for text).
    # The app's defaults but the schedule's length, the retrain included.
    # The timeout guards against a hang only: beside other training on 2 cores it ran past the
    # usual 600 s (December 6: over 10 minutes beside two CIFAR-10 runs).
    arguments = ("--data", HYMENOPTERA, "--out", tmp_path / "run", "--epochs", "20")
    result = run_app("train", *arguments, timeout=2400)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    report = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["augmentation"] == "resized_crop_flip"
    assert config["model_args"]["width_multiplier"] == 1.5 and config["model_args"]["resolution"] == 128
    assert config["model_args"]["training_resolution_scale"] == 0.875
    assert config["training"]["retrain_on_all"] is True
    print(f"hymenoptera val accuracy {metrics['test_accuracy']:.4f} in {time.perf_counter() - started:.0f} s")
    assert metrics["num_test_examples"] == 153
    assert all(sum(column) > 0 for column in zip(*report["confusion_matrix"], strict=True)), (
        "one class for every photo"
    )
    # Was 0.458, the constant "ants"; 0.706 measured from scratch, 0.739 with the retrain, 0.771
    # with the camera-photo defaults at 150 epochs, 0.791 at today's 40, 0.765 since precise BN
    # samples its batches (seed 0), 0.745 with the one TensorFlow thread `make test` gives it, 0.725
    # at width 1.5 with FixRes and 20 epochs (the target, 0.80 over seeds with the defaults,
    # is not reached and stays the target: issue 18's notes).
    assert metrics["test_accuracy"] >= 0.65, metrics
