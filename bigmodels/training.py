"""Compile and fit with the standard callbacks: checkpoint, early stopping, logs, resume."""

import time
from pathlib import Path

import keras
import numpy as np

AUGMENTATIONS = ("none", "shift", "shift_flip")


def default_augmentation(info) -> str:
    """Shifts suit digits and glyphs (a flipped 2 is not a 2); photos are also flipped; token
    ids are never shifted."""
    if info.kind == "text":
        return "none"
    return "shift" if info.input_shape[-1] == 1 else "shift_flip"


def augment_pipeline(dataset, augmentation: str, seed: int):
    """Adds random shifts (and horizontal flips) to a batched uint8 image pipeline."""
    import tensorflow as tf

    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{augmentation}'; choose one of {', '.join(AUGMENTATIONS)}")
    if augmentation == "none":
        return dataset
    if dataset.element_spec[0].dtype != tf.uint8:
        raise ValueError(f"--augmentation {augmentation} shifts images; text takes --augmentation none")
    steps = [keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed)]
    if augmentation == "shift_flip":
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))

    def apply(images, labels):
        x = tf.cast(images, tf.float32)
        for layer in steps:
            x = layer(x, training=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), images.dtype), labels

    # Sequential map: parallel calls would draw from the random layers in a varying order, and
    # the same seed would no longer give the same run.
    return dataset.map(apply).prefetch(tf.data.AUTOTUNE)


def compile_classifier(model, *, learning_rate: float, total_steps: int, label_smoothing: float = 0.0):
    """Adam with a short linear warm-up and cosine decay, sparse cross-entropy, accuracy."""
    warmup = max(1, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=learning_rate, warmup_steps=warmup
    )
    loss = (
        keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        if label_smoothing
        else keras.losses.SparseCategoricalCrossentropy()
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])
    return model


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
    import csv

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


def fit_classifier(
    model,
    dataset,
    run_dir: Path,
    *,
    epochs: int,
    learning_rate: float,
    seed: int,
    patience: int,
    augmentation: str,
    verbose: int = 1,
    callbacks: list | None = None,
    keep_best: bool = True,
    saved_model=None,
) -> dict:
    """Trains ``model`` on ``dataset`` and writes the run's training files into ``run_dir``.

    Files: model.keras (best validation accuracy), history.csv, logs/ (TensorBoard),
    backup/ (deleted when training finishes; lets a killed run resume). ``callbacks`` are
    added to the standard ones (a benchmark's per-epoch test, for instance). ``keep_best=False``
    keeps the last epoch instead of the best one (pruning: the last epoch has the final sparsity).
    ``saved_model`` is what model.keras holds when it is not ``model`` itself (distillation
    trains a wrapper around the student but saves the student).

    Returns:
        {"epochs_trained", "best_epoch", "training_seconds"}.
    """
    keras.utils.set_random_seed(seed)
    start_fresh(run_dir)
    steps_per_epoch = int(np.ceil(dataset.info.counts["train"] / dataset.batch_size))
    compile_classifier(model, learning_rate=learning_rate, total_steps=epochs * steps_per_epoch)
    train = augment_pipeline(dataset.train, augmentation, seed)
    checkpoint = SaveOnImprovement(saved_model or model, run_dir / "model.keras", keep_best=keep_best)
    guard = DivergenceGuard()
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy",
        mode="max",
        patience=patience if keep_best else epochs,
        restore_best_weights=keep_best,
    )
    all_callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        checkpoint,
        early_stopping,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        guard,
        *(callbacks or []),
    ]
    started = time.perf_counter()
    # The pipeline reshuffles itself every epoch (seeded); Keras's own flag does not apply to it.
    history = model.fit(
        train,
        validation_data=dataset.validation,
        epochs=epochs,
        callbacks=all_callbacks,
        verbose=verbose,
        shuffle=False,
    )
    guard.raise_if_diverged(run_dir, learning_rate)
    val_accuracy = history.history.get("val_accuracy", [])
    return {
        "epochs_trained": len(val_accuracy),
        "best_epoch": int(np.argmax(val_accuracy)) + 1 if val_accuracy else 0,
        "training_seconds": round(time.perf_counter() - started, 2),
    }
