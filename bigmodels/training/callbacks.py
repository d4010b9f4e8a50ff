"""Callbacks every training loop shares: divergence guard, best-checkpoint saving, fresh starts."""

import csv
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


class SaveOnImprovement(keras.callbacks.Callback):
    """Saves ``target`` to ``path`` when validation accuracy improves (or every epoch)."""

    def __init__(self, target, path: Path, *, keep_best: bool = True):
        super().__init__()
        self.target, self.path, self.keep_best = target, Path(path), keep_best
        self.best = best_logged(self.path.with_name("history.csv"), "val_accuracy")

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy", -np.inf)
        if not self.keep_best or accuracy > self.best:
            self.best = max(self.best, accuracy)
            self.target.save(self.path)


def run_folder_callbacks(run_dir: Path, guard: DivergenceGuard) -> list:
    """What every training loop writes into its run folder, first of its callbacks: the per-epoch
    backup a killed run resumes from (it must restore before the others start), history.csv,
    TensorBoard logs; and the guard that stops at the first non-finite loss."""
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        guard,
    ]
