"""Callbacks every training loop shares: divergence guard, best-checkpoint saving, fresh starts."""

import csv
import json
from pathlib import Path

import keras
import numpy as np


class TrainingDiverged(ValueError):
    """The loss stopped being a finite number; the run folder keeps its last good checkpoint."""


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss (as TerminateOnNaN) and remembers where."""

    def __init__(self):
        super().__init__()
        self.where = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        losses = {name: value for name, value in (logs or {}).items() if "loss" in name}
        bad = {name: float(value) for name, value in losses.items() if not np.isfinite(float(value))}
        if bad and self.where is None:
            self.where = {"epoch": self.epoch + 1, "step": batch + 1, "losses": bad}
            self.model.stop_training = True

    def raise_if_diverged(self, run_dir: Path, learning_rate: float) -> None:
        if self.where is None:
            return
        checkpoint = run_dir / "model.keras"
        kept = f"the last good checkpoint is {checkpoint}" if checkpoint.is_file() else "no epoch finished"
        raise TrainingDiverged(
            f"training diverged: the loss became {next(iter(self.where['losses'].values()))} in epoch "
            f"{self.where['epoch']}, step {self.where['step']}; {kept}; lower --learning-rate "
            f"(it was {learning_rate}) and run again"
        )


class StuckAtChance(ValueError):
    """Validation accuracy never beat always answering the commonest class: nothing to ship."""


def raise_if_at_chance(val_accuracy: list, validation_labels: np.ndarray, patience: int) -> None:
    """Refuses a run whose every epoch did no better than a constant answer on validation.

    Only once early stopping has judged it (more epochs than ``patience``): a short run (a test,
    a smoke run of 1-2 epochs) has not had the chance to move.
    """
    if len(val_accuracy) <= patience or not len(validation_labels):
        return
    constant = np.bincount(validation_labels).max() / len(validation_labels)
    if max(val_accuracy) <= constant + 1e-6:
        raise StuckAtChance(
            f"validation accuracy never rose above chance ({constant:.2f}, always answering one "
            f"class) in {len(val_accuracy)} epochs; the model is not saved: add photos per class, "
            "lower --learning-rate or --batch-size, or check the labels"
        )


def start_fresh(run_dir: Path, logs=("history.csv",)) -> None:
    """Without a backup to resume from, training starts over: old per-epoch logs go."""
    if not (Path(run_dir) / "backup").is_dir():
        for name in logs:
            (Path(run_dir) / name).unlink(missing_ok=True)


def best_logged(history_csv: Path, metric: str) -> float:
    """The best value of ``metric`` in an existing history.csv (a resumed run keeps its best)."""

    if not Path(history_csv).is_file():
        return -np.inf
    with open(history_csv, newline="") as handle:
        values = [row.get(metric, "NA") for row in csv.DictReader(handle)]
    numbers = [float(value) for value in values if value not in ("NA", "", None)]
    return max(numbers, default=-np.inf)


def save_atomically(save, path: Path) -> None:
    """Calls ``save(temporary)`` beside ``path`` (same suffixes, which Keras checks), then renames
    it over ``path``: a run killed while saving keeps the previous file whole, never half of one."""
    path = Path(path)
    temporary = saving_name(path)
    save(str(temporary))
    temporary.replace(path)


def saving_name(path: Path) -> Path:
    """Where ``save_atomically`` writes ``path`` before renaming it ("model.keras" ->
    "model.saving.keras"; "x.weights.h5" -> "x.saving.weights.h5")."""
    stem, _, suffixes = Path(path).name.partition(".")
    return Path(path).with_name(f"{stem}.saving.{suffixes}")


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's per-epoch backup, made safe to kill at any moment.

    Keras overwrites latest.weights.h5 in place: a run killed while it was being written left a
    file the resumed run could not open ("bad object header version number", seen in CI). Here
    the weights are saved through a temporary file, then training_metadata.json (also renamed
    into place) names them, so a resumed run reads either the previous epoch's pair or the new one.
    """

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        save_atomically(self.model.save_weights, Path(self._weights_path))
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        write_metadata = lambda name: Path(name).write_text(json.dumps(metadata))  # noqa: E731
        save_atomically(write_metadata, folder / "training_metadata.json")


def accuracy_standard_error(accuracy: float, examples: int) -> float:
    """The standard error of an accuracy measured on ``examples`` (binomial): on SST-2's 872 dev
    sentences at 80% it is 1.35 points, on 6,000 MNIST digits at 99.4% 0.1 points."""
    return (accuracy * (1.0 - accuracy) / max(examples, 1)) ** 0.5


class SaveOnImprovement(keras.callbacks.Callback):
    """Saves ``target`` to ``path`` when validation accuracy improves (or every epoch), through a
    temporary file so that a killed run's checkpoint is never half written."""

    def __init__(self, target, path: Path, *, keep_best: bool = True):
        super().__init__()
        self.target, self.path, self.keep_best = target, Path(path), keep_best
        self.best = best_logged(self.path.with_name("history.csv"), "val_accuracy")
        self.start_accuracy = -np.inf
        saving_name(self.path).unlink(missing_ok=True)  # left by a run killed while saving

    def save_start(self, accuracy: float, examples: int) -> None:
        """Saves the target as it is before training (``accuracy``: its validation accuracy on
        ``examples``), so that an epoch is kept only when it beats the start by more than one
        standard error: a gain inside the validation split's noise is as likely to be a loss on
        new data, and the start is the known quantity (QAT's start is PTQ's file)."""
        self.start_accuracy = self.best = accuracy + accuracy_standard_error(accuracy, examples)
        save_atomically(self.target.save, self.path)

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy", -np.inf)
        if not self.keep_best or accuracy > self.best:
            self.best = max(self.best, accuracy)
            save_atomically(self.target.save, self.path)


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before each validation, sets BatchNorm's moving statistics to the average of the current
    weights' batch statistics over up to ``max_batches`` training batches ("precise BN").

    With a few steps an epoch, momentum 0.9 keeps much of the initial variance of 1 (0.9^4 = 66%
    after one 4-step epoch) while the true one is far smaller: inference-mode outputs shrink to a
    constant and validation sits at chance while training accuracy climbs (ants/bees, issue 18).
    ``dataset`` should batch training examples in a random order (``Dataset.shuffled_sample``):
    batches of one class each describe that class, not the data.
    """

    MAX_BATCHES = 16

    def __init__(self, dataset, max_batches: int = MAX_BATCHES):
        super().__init__()
        self.dataset, self.max_batches = dataset, max_batches

    def on_test_begin(self, logs=None):
        layers = [
            layer
            for layer in self.model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
        ]
        if not layers:  # all frozen (a backbone being fine-tuned): their statistics cannot move
            return
        saved = [layer.momentum for layer in layers]
        for index, (images, _) in enumerate(self.dataset.take(self.max_batches)):
            for layer in layers:  # a running mean: batch i weighs 1/(i+1)
                layer.momentum = index / (index + 1)
            self.model(images, training=True)
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum


class PhaseColumn(keras.callbacks.Callback):
    """Adds the training phase (1: feature extraction, 2: fine-tuning) to each epoch's logs, so
    history.csv (and TensorBoard) show which phase an epoch belongs to."""

    def __init__(self, phase: int):
        super().__init__()
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = self.phase


def backup_folder(run_dir: Path, phase: int | None = None) -> Path:
    """Where a phase keeps its per-epoch backup: a later phase has its own, so that resuming
    never loads one phase's weights and optimizer into another's frozen layout."""
    return Path(run_dir) / ("backup" if (phase or 1) == 1 else f"backup_phase{phase}")


def run_folder_callbacks(run_dir: Path, guard: DivergenceGuard, *, phase: int | None = None) -> list:
    """What every training loop writes into its run folder, first of its callbacks: the per-epoch
    backup a killed run resumes from (it must restore before the others start), history.csv
    (with a "phase" column when ``phase`` is given), TensorBoard logs; and the guard that stops
    at the first non-finite loss."""
    return [
        AtomicBackupAndRestore(str(backup_folder(run_dir, phase))),
        *([PhaseColumn(phase)] if phase else []),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        guard,
    ]
