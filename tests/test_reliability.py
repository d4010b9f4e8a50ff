"""Faults: killed training resumes, divergence stops cleanly, killed exports leave nothing
complete, model files cannot run code, and the same seed gives the same run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import write_reviews_csv

ROOT = Path(__file__).resolve().parents[1]


def start_app(name, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, str(ROOT / "apps" / f"{name}.py"), *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def logged_epochs(history: Path) -> list[int]:
    if not history.is_file():
        return []
    return [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:] if line.strip()]


def kill_after_epochs(process, history: Path, epochs: int, timeout: float = 240.0) -> None:
    """SIGKILLs ``process`` a moment after ``epochs`` epochs are logged (mid-way through the next)."""
    deadline = time.monotonic() + timeout
    while len(logged_epochs(history)) < epochs:
        assert process.poll() is None, f"training ended before it could be killed: {process.stderr.read()}"
        assert time.monotonic() < deadline, "training did not reach the epoch to kill in"
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


FAMILIES = {
    "cnn": ["--data", "digits", "--batch-size", "8"],
    "text": [
        "--model",
        "embedding_bag_classifier",
        "--text-column",
        "title",
        "body",
        "--label-column",
        "sentiment",
    ],
    "dcgan": [
        "--model",
        "dcgan",
        "--data",
        "digits",
        "--batch-size",
        "8",
        "--latent-size",
        "8",
        "--base-filters",
        "8",
    ],
}


@pytest.mark.long(45)
@pytest.mark.parametrize("family", FAMILIES)
def test_a_killed_run_resumes_with_the_same_command_and_loses_at_most_one_epoch(tmp_path, family):
    arguments = list(FAMILIES[family])
    if family == "text":
        arguments += ["--data", write_reviews_csv(tmp_path / "reviews.csv", 1200), "--batch-size", "4"]
    out = tmp_path / "run"
    command = ["train", *arguments, "--out", out, "--epochs", "4", "--patience", "10"]
    process = start_app(*command)
    kill_after_epochs(process, out.with_name("run.partial") / "history.csv", 2)
    assert not out.exists() and (out.with_name("run.partial") / "backup").is_dir()
    resumed = start_app(*command)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert logged_epochs(out / "history.csv") == [0, 1, 2, 3]  # resumed at epoch 3, no epoch repeated
    assert (out / "metrics.json").is_file() and not (out / "backup").exists()
    assert not out.with_name("run.partial").exists()


def test_a_run_killed_while_it_retrains_on_all_resumes_the_retrain_from_its_backup(tmp_path):
    out = tmp_path / "run"
    command = [
        "train",
        *FAMILIES["cnn"],
        "--out",
        out,
        "--epochs",
        "4",
        "--patience",
        "10",
        "--retrain-on-all",
    ]
    process = start_app(*command)
    kill_after_epochs(process, out.with_name("run.partial") / "retrain" / "history.csv", 2)
    assert (out.with_name("run.partial") / "retrain" / "backup").is_dir()
    resumed = start_app(*command)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert logged_epochs(out / "history.csv") == [0, 1, 2, 3]  # the validated pass, trained again
    assert logged_epochs(out / "retrain" / "history.csv") == [0, 1, 2, 3]  # resumed, no epoch repeated
    assert json.loads((out / "metrics.json").read_text())["retrained_on_all"]["epochs_trained"] == 4
    assert not list(out.rglob("backup*"))


class KilledWhileSaving(BaseException):
    """Stands for SIGKILL arriving while a file is being written (nothing after it runs)."""


def die_halfway_through_writing(path, *args, **kwargs):
    Path(path).write_bytes(b"\x89HDF\r\n half a file")
    raise KilledWhileSaving


def tiny_model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


def test_a_kill_while_the_backup_is_written_leaves_the_previous_epoch_loadable(tmp_path, monkeypatch):
    from bigmodels.training.callbacks import AtomicBackupAndRestore

    saved = tiny_model(1)
    backup = AtomicBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(saved)
    backup.on_epoch_end(0)  # epoch 1 is backed up whole
    expected = [weight.copy() for weight in saved.get_weights()]
    saved.layers[0].kernel.assign(np.zeros((3, 2), "float32"))
    monkeypatch.setattr(saved, "save_weights", die_halfway_through_writing)
    with pytest.raises(KilledWhileSaving):
        backup.on_epoch_end(1)
    resumed = tiny_model(2)
    restore = AtomicBackupAndRestore(str(tmp_path / "backup"))
    restore.set_model(resumed)
    restore.on_train_begin()
    assert resumed._initial_epoch == 1
    for weight, wanted in zip(resumed.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(weight, wanted)


def test_a_kill_while_the_checkpoint_is_written_keeps_the_previous_one(tmp_path, monkeypatch):
    from bigmodels.training.callbacks import SaveOnImprovement

    model = tiny_model(1)
    checkpoint = SaveOnImprovement(model, tmp_path / "model.keras", keep_best=False)
    checkpoint.on_epoch_end(0)
    monkeypatch.setattr(model, "save", die_halfway_through_writing)
    with pytest.raises(KilledWhileSaving):
        checkpoint.on_epoch_end(1)
    kept = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(kept.get_weights()[0], model.get_weights()[0])
    SaveOnImprovement(model, tmp_path / "model.keras")  # the resumed run clears the half file
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.keras"]


def test_an_epoch_replaces_the_start_only_when_it_beats_it_by_more_than_one_standard_error(tmp_path):
    """QAT's start is PTQ's file: 90% on 100 validation examples (one standard error: 3 points)
    is replaced by 94%, not by 92%, and the first epoch to beat it sets the bar from then on."""
    from bigmodels.training.callbacks import SaveOnImprovement, accuracy_standard_error

    assert accuracy_standard_error(0.9, 100) == pytest.approx(0.03)
    model = tiny_model(1)
    checkpoint = SaveOnImprovement(model, tmp_path / "model.keras")
    checkpoint.save_start(0.90, examples=100)
    start_weights = model.get_weights()[0].copy()
    saved = lambda: keras.models.load_model(tmp_path / "model.keras").get_weights()[0]  # noqa: E731
    model.set_weights([weight + 1.0 for weight in model.get_weights()])
    checkpoint.on_epoch_end(0, {"val_accuracy": 0.92})
    np.testing.assert_array_equal(saved(), start_weights)
    checkpoint.on_epoch_end(1, {"val_accuracy": 0.94})
    np.testing.assert_array_equal(saved(), model.get_weights()[0])
    kept = model.get_weights()[0].copy()
    model.set_weights([weight + 1.0 for weight in model.get_weights()])
    checkpoint.on_epoch_end(2, {"val_accuracy": 0.935})
    np.testing.assert_array_equal(saved(), kept)


def test_divergence_stops_with_one_message_and_keeps_the_last_good_checkpoint(tmp_path):
    from bigmodels.training.callbacks import TrainingDiverged
    from bigmodels.workflows.train import train_run

    class BreakWeightsInThirdEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                kernel = self.model.get_layer("probabilities").kernel
                kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    out = tmp_path / "run"
    with pytest.raises(
        TrainingDiverged, match=r"loss became nan in epoch 3, step 1; the last good checkpoint"
    ):
        train_run(
            "cnn_classifier", "digits", out, epochs=5, verbose=0, callbacks=[BreakWeightsInThirdEpoch()]
        )
    partial = out.with_name("run.partial")
    assert not out.exists() and not (partial / "backup").exists()
    kept = keras.models.load_model(partial / "model.keras", safe_mode=True)
    assert all(np.isfinite(w).all() for w in kept.get_weights())
    run_dir, metrics = train_run(
        "cnn_classifier", "digits", out, epochs=2, verbose=0
    )  # the next run starts clean
    assert logged_epochs(run_dir / "history.csv") == [0, 1]


def test_a_killed_export_leaves_nothing_that_looks_complete(digits_run, tmp_path):
    run = shutil.copytree(digits_run, tmp_path / "run")
    shutil.rmtree(run / "export", ignore_errors=True)
    process = start_app("export", "--run", run)
    deadline = time.monotonic() + 120
    while not (run / "export.partial" / "saved_model").exists():
        assert process.poll() is None and time.monotonic() < deadline, "export never started"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (run / "export").exists()
    finished = start_app("export", "--run", run, "--quantization", "float32")
    _, stderr = finished.communicate(timeout=300)
    assert finished.returncode == 0, stderr
    assert (run / "export" / "report.json").is_file() and not (run / "export.partial").exists()


def test_a_model_file_that_tries_to_run_code_is_refused(digits_run, tmp_path):
    marker = tmp_path / "pwned"
    inputs = keras.Input(shape=(8, 8, 1), dtype="uint8")
    # The path is a literal in the function's code, so the file carries it (no closure).
    code = eval(f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]")  # noqa: S307
    payload = keras.layers.Lambda(code)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(payload(inputs)))
    crafted = shutil.copytree(digits_run, tmp_path / "crafted")
    shutil.rmtree(crafted / "export", ignore_errors=True)
    marker.unlink(missing_ok=True)  # building the model above ran the lambda once, here
    keras.Model(inputs, outputs).save(crafted / "model.keras")
    process = start_app("evaluate", "--run", crafted)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds code" in lines[0] and "refused" in lines[0], stderr
    assert not marker.exists()


def test_the_same_seed_gives_the_same_run(tmp_path):
    """Same seed, same data, same machine: identical metrics (tolerance 1e-9, i.e. none)."""
    from bigmodels.workflows.train import train_run

    first = train_run("cnn_classifier", "digits", tmp_path / "a", epochs=2, seed=5, verbose=0)[1]
    second = train_run("cnn_classifier", "digits", tmp_path / "b", epochs=2, seed=5, verbose=0)[1]
    assert first["test_accuracy"] == pytest.approx(second["test_accuracy"], abs=1e-9)
    assert (tmp_path / "a" / "history.csv").read_text() == (tmp_path / "b" / "history.csv").read_text()
    other = train_run("cnn_classifier", "digits", tmp_path / "c", epochs=2, seed=6, verbose=0)[1]
    assert (tmp_path / "c" / "history.csv").read_text() != (tmp_path / "a" / "history.csv").read_text()
    assert json.loads((tmp_path / "a" / "config.json").read_text())["training"]["seed"] == 5 and other
