"""--model auto: every candidate trained on the same split, the best on validation kept as the run."""

import json
from pathlib import Path

import pytest
from helpers import run_app_in_process, write_reviews_csv
from test_apps import assert_one_line_error

from bigmodels.run_folder import open_staging, read_marker, read_run, write_marker
from bigmodels.workflows.auto import CANDIDATES_FOLDER, auto_candidates, train_candidates


def fake_run(
    run_dir: Path, model_name: str, val_accuracies: list[float], validation_examples=100_000, weights=1000
) -> None:
    """What train_run leaves behind, enough for the choice: a marked folder, metrics, history."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"model": model_name}))
    counts = {"train": 10 * validation_examples, "validation": validation_examples, "test": 1000}
    metrics = {"model": model_name, "test_accuracy": 0.5, "counts": counts, "num_parameters": weights}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    rows = "".join(f"{epoch},{value}\n" for epoch, value in enumerate(val_accuracies))
    (run_dir / "history.csv").write_text("epoch,val_accuracy\n" + rows)
    (run_dir / "model.keras").write_text(model_name)
    write_marker(run_dir, "run")


class FakeTraining:
    """train_one for train_candidates: records the calls, writes a fake run per candidate."""

    def __init__(self, val_accuracies: dict[str, list[float]], validation_examples=100_000, weights=None):
        self.val_accuracies, self.trained = val_accuracies, []
        self.validation_examples, self.weights = validation_examples, weights or {}

    def __call__(self, model_name, run_dir):
        self.trained.append(model_name)
        accuracies, weights = self.val_accuracies[model_name], self.weights.get(model_name, 1000)
        fake_run(run_dir, model_name, accuracies, self.validation_examples, weights)


def test_the_best_validation_accuracy_is_kept_and_every_candidate_recorded(tmp_path):
    training = FakeTraining({"a": [0.6, 0.7], "b": [0.8, 0.75], "c": [0.79]})
    metrics = train_candidates(training, ("a", "b", "c"), tmp_path / "run", overwrite=False)
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert metrics["model"] == config["model"] == "b" and (run / "model.keras").read_text() == "b"
    assert [c["model"] for c in config["model_candidates"]] == ["a", "b", "c"]
    assert [c["val_accuracy"] for c in config["model_candidates"]] == [0.7, 0.8, 0.79]
    assert config["model_chosen_by"] == (
        "auto: the best validation accuracy (a 0.7000, b 0.8000, c 0.7900); none within one standard "
        "error (0.0013, 100000 validation examples) is half its size"
    )
    assert not (run / CANDIDATES_FOLDER).exists() and read_marker(run)["kind"] == "run"
    assert not run.with_name("run.partial").exists()


def test_a_tie_keeps_the_smaller_model_listed_first(tmp_path):
    training = FakeTraining({"small": [0.8], "large": [0.8]})
    assert (
        train_candidates(training, ("small", "large"), tmp_path / "run", overwrite=False)["model"] == "small"
    )


@pytest.mark.parametrize(
    "validation_examples, small_weights, kept",
    [(872, 500, "small"), (872, 501, "large"), (100_000, 500, "large")],
)
def test_a_smaller_model_within_one_standard_error_is_kept_only_at_half_the_size_or_less(
    tmp_path, validation_examples, small_weights, kept
):
    """0.79 against 0.80: within one standard error of 872 examples (0.0135), not of 100,000
    (0.0013); the large model has 1,000 weights."""
    training = FakeTraining(
        {"small": [0.79], "large": [0.80]}, validation_examples, {"small": small_weights, "large": 1000}
    )
    metrics = train_candidates(training, ("small", "large"), tmp_path / "run", overwrite=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert metrics["model"] == kept
    assert config["model_chosen_by"].startswith("auto: within" if kept == "small" else "auto: the best")
    assert [c["num_parameters"] for c in config["model_candidates"]] == [small_weights, 1000]


def test_a_killed_auto_run_does_not_train_its_finished_candidates_again(tmp_path):
    out = tmp_path / "run"
    staging = open_staging(out.absolute(), resume=True)  # what a killed auto run leaves
    fake_run(staging / CANDIDATES_FOLDER / "a", "a", [0.9])
    training = FakeTraining({"a": [0.1], "b": [0.5]})
    metrics = train_candidates(training, ("a", "b"), out, overwrite=False)
    assert training.trained == ["b"] and metrics["model"] == "a"


def test_text_candidates_are_the_ngram_model_and_the_transformer_and_images_have_one():
    assert auto_candidates("text") == ("ngram_classifier", "transformer_classifier")
    assert auto_candidates("image") == ("cnn_classifier",)


def test_auto_on_a_text_file_trains_each_candidate_and_keeps_a_loadable_run(tmp_path):
    from bigmodels.workflows.train import train_run

    data = write_reviews_csv(tmp_path / "reviews.csv", 160)
    options = {"text_columns": ["title", "body"], "label_column": "sentiment"}
    run_dir, metrics = train_run(
        "auto", str(data), tmp_path / "run", epochs=3, data_options=options, verbose=0
    )
    _, config = read_run(run_dir)
    candidates = config["model_candidates"]
    assert [c["model"] for c in candidates] == list(auto_candidates("text"))
    kept = next(c for c in candidates if c["model"] == config["model"])
    assert config["model"] == metrics["model"] and metrics["test_accuracy"] == kept["test_accuracy"]
    best = max(candidates, key=lambda c: c["val_accuracy"])
    error = (best["val_accuracy"] * (1 - best["val_accuracy"]) / kept["validation_examples"]) ** 0.5
    assert kept["validation_examples"] > 10 and all(c["num_parameters"] > 0 for c in candidates)
    assert kept is best or (
        kept["val_accuracy"] >= best["val_accuracy"] - error - 1e-9
        and kept["num_parameters"] <= best["num_parameters"] / 2
    )
    assert all(c["epochs_trained"] >= 1 and 0 <= c["val_accuracy"] <= 1 for c in candidates)
    assert (run_dir / "vocabulary.txt").is_file() and not (run_dir / CANDIDATES_FOLDER).exists()


def test_auto_on_images_trains_the_image_model(tmp_path):
    from bigmodels.workflows.train import train_run

    run_dir, metrics = train_run("auto", "digits", tmp_path / "run", epochs=1, verbose=0)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == metrics["model"] == "cnn_classifier"
    assert config["model_chosen_by"] == "auto (image data)"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--width", "32"], "--width: --model auto uses each candidate's own settings"),
        (["--recipe", "cifar10_tiny"], "chooses among models trained from scratch"),
        (["--strategy", "mirrored"], "leave out --strategy mirrored"),
    ],
)
def test_auto_refuses_what_cannot_apply_to_every_candidate(tmp_path, flags, message):
    result = run_app_in_process("train", "--model", "auto", "--out", tmp_path / "run", *flags)
    assert_one_line_error(result, message)
    assert not any(tmp_path.iterdir())


def test_a_candidate_stuck_at_chance_is_dropped_and_the_others_still_compete(tmp_path):
    from bigmodels.training.callbacks import StuckAtChance

    training = FakeTraining({"a": [0.6], "c": [0.7]})

    def stuck_b(model_name, run_dir):
        if model_name == "b":
            raise StuckAtChance("validation accuracy never rose above chance")
        training(model_name, run_dir)

    metrics = train_candidates(stuck_b, ("a", "b", "c"), tmp_path / "run", overwrite=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert metrics["model"] == "c" and config["model_candidates"][1] == {
        "model": "b",
        "dropped": "validation accuracy never rose above chance",
    }
    with pytest.raises(ValueError, match="no candidate could be kept .validation accuracy never rose"):
        train_candidates(stuck_b, ("b",), tmp_path / "other", overwrite=False)
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.partial").exists()


@pytest.mark.long(55)
def test_text_without_a_model_is_auto_unless_a_model_flag_names_the_transformer(tmp_path):
    from bigmodels.workflows.train import train_run

    data = write_reviews_csv(tmp_path / "reviews.csv", 120)
    options = {"text_columns": ["title", "body"], "label_column": "sentiment"}
    run_dir, _ = train_run(None, str(data), tmp_path / "auto", epochs=1, data_options=options, verbose=0)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_chosen_by"].startswith("auto: ")
    assert [c["model"] for c in config["model_candidates"]] == list(auto_candidates("text"))
    run_dir, _ = train_run(
        None,
        str(data),
        tmp_path / "wide",
        epochs=1,
        data_options=options,
        model_args={"width": 16},
        verbose=0,
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "transformer_classifier" and "model_candidates" not in config
