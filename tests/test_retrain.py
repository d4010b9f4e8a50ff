"""--retrain-on-all: once validation has judged a run, the model trains again from its starting
weights on training + validation examples for the whole schedule and keeps its last epoch."""

import csv
import json

import numpy as np
import pytest
from helpers import write_image_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("photos") / "data", per_class=16, size=(24, 24))


def logged_epochs(history_csv) -> list[int]:
    with open(history_csv, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_validation_examples_join_the_training_split_and_nothing_else_moves():
    from bigmodels.data import load_dataset
    from bigmodels.training.retrain import with_validation_in_training

    dataset = load_dataset("digits", seed=3)
    merged = with_validation_in_training(dataset)
    (train_x, train_y), (val_x, val_y) = dataset.arrays["train"], dataset.arrays["validation"]
    np.testing.assert_array_equal(merged.arrays["train"][0], np.concatenate([train_x, val_x]))
    np.testing.assert_array_equal(merged.arrays["train"][1], np.concatenate([train_y, val_y]))
    assert merged.info.counts["train"] == len(train_y) + len(val_y)
    for split in ("validation", "test"):
        assert merged.arrays[split] is dataset.arrays[split]
        assert merged.info.counts[split] == dataset.info.counts[split]
    assert dataset.info.counts["train"] == len(train_y)  # the original is left as it was


@pytest.mark.long(65)
def test_a_from_scratch_run_retrains_for_the_whole_schedule_and_keeps_its_last_epoch(photos, tmp_path):
    from bigmodels import load_model
    from bigmodels.workflows.train import train_run

    options = {"epochs": 3, "patience": 3, "verbose": 0, "seed": 1}
    run_dir, metrics = train_run(
        "cnn_classifier", str(photos), tmp_path / "run", retrain_on_all=True, **options
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["retrain_on_all"] is True
    retrained = metrics["retrained_on_all"]
    assert retrained["train_examples"] == metrics["counts"]["train"] + metrics["counts"]["validation"]
    assert retrained["epochs_trained"] == 3 and retrained["kept"] == "last epoch"
    assert logged_epochs(run_dir / "retrain" / "history.csv") == [0, 1, 2]
    assert len(logged_epochs(run_dir / "history.csv")) == metrics["epochs_trained"]  # the validated pass
    assert not list(run_dir.rglob("backup*")) and not (run_dir / "retrain" / "model.keras").exists()

    plain_dir, plain = train_run("cnn_classifier", str(photos), tmp_path / "plain", retrain_on_all=False,
                                 **options)  # fmt: skip
    assert "retrained_on_all" not in plain and not (plain_dir / "retrain").exists()
    assert json.loads((plain_dir / "config.json").read_text())["training"]["retrain_on_all"] is False
    # Same seed, same validated pass; the retrained model is another one, and the test split says so.
    assert plain["epochs_trained"] == metrics["epochs_trained"]
    pairs = zip(load_model(run_dir).get_weights(), load_model(plain_dir).get_weights(), strict=True)
    assert any(not np.array_equal(a, b) for a, b in pairs)
