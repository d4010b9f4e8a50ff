"""The classifier training loop: compile, augment, fit with the standard callbacks."""

import time
from pathlib import Path

import keras
import numpy as np

from bigmodels.models.losses import SmoothedSparseCrossentropy, label_accuracy_metric
from bigmodels.training.augmentation import PlainTail, augment_pipeline, uses_soft_labels
from bigmodels.training.callbacks import (
    DivergenceGuard,
    PreciseBatchNorm,
    SaveOnImprovement,
    raise_if_at_chance,
    run_folder_callbacks,
    start_fresh,
)
from bigmodels.training.precision import SavedAsFloat32, mixed_precision_twin
from bigmodels.training.settings import check_optimizer_settings

# What a run trains with when neither the caller nor a recipe says otherwise.
OPTIMIZER_DEFAULTS = {
    "optimizer": "adam",
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "precision": "float32",
    "weight_averaging": 0.0,
    "plain_last_epochs": 0,
}
# Below this many steps an epoch, BatchNorm's moving statistics (momentum 0.9) still hold their
# initial values at the first validations; they are recomputed before each one instead.
PRECISE_BATCH_NORM_STEPS = 50


def averaging_momentum(epochs: float, steps_per_epoch: int) -> float | None:
    """The exponential moving average's momentum that averages the weights over about ``epochs``
    epochs (1 - 1 / steps), whatever the data's size; None: no averaging."""
    if not epochs:
        return None
    return 1.0 - 1.0 / max(2.0, epochs * steps_per_epoch)


def make_optimizer(name: str, schedule, weight_decay: float = 0.0, ema_momentum: float | None = None):
    """Adam, or SGD with Nesterov momentum 0.9; ``weight_decay`` is decoupled (AdamW-style:
    weights shrink by learning rate x decay each step), never applied to BatchNorm or biases.
    ``ema_momentum``: the optimizer also keeps an exponential moving average of the weights
    (Polyak averaging), which ``fit_classifier`` validates and saves."""
    check_optimizer_settings(name, weight_decay, None)
    options = {"weight_decay": weight_decay} if weight_decay else {}
    if ema_momentum is not None:
        options.update(use_ema=True, ema_momentum=ema_momentum)
    if name == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, **options)
    else:
        optimizer = keras.optimizers.Adam(schedule, **options)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def compile_classifier(
    model,
    *,
    learning_rate: float,
    total_steps: int,
    label_smoothing: float = 0.0,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    ema_momentum: float | None = None,
    soft_labels: bool = False,
):
    """A short linear warm-up and cosine decay of ``optimizer``'s learning rate, sparse
    cross-entropy (label-smoothed when asked), accuracy; ``ema_momentum``: ``make_optimizer``'s.
    ``soft_labels``: training batches carry mixed one-hot labels (mixup), validation integers."""
    warmup = max(1, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=learning_rate, warmup_steps=warmup
    )
    loss = (
        SmoothedSparseCrossentropy(label_smoothing)
        if label_smoothing or soft_labels
        else keras.losses.SparseCategoricalCrossentropy()
    )
    model.compile(
        optimizer=make_optimizer(optimizer, schedule, weight_decay, ema_momentum),
        loss=loss,
        # Keras's "accuracy" picks sparse or one-hot from the first batch it sees; this one takes both.
        metrics=[label_accuracy_metric()] if soft_labels else ["accuracy"],
    )
    return model


def _precise_batch_norm(dataset, steps_per_epoch: int, averaged: bool) -> list:
    """PreciseBatchNorm when epochs are too short for BatchNorm's moving statistics to settle, or
    when the weights validated are an average: the optimizer averages trainable weights only, so
    the statistics the raw weights gathered are recomputed for the averaged ones."""
    if steps_per_epoch >= PRECISE_BATCH_NORM_STEPS and not averaged:
        return []
    # A seeded random sample, not the split's first batches: class folders load one class after
    # another, and the first 16 batches of CIFAR-10's training folder are all airplanes (weights
    # averaged over 10 epochs validated at 69% with those statistics, against 82% unaveraged).
    sample = dataset.shuffled_sample("train", PreciseBatchNorm.MAX_BATCHES * dataset.batch_size)
    return [PreciseBatchNorm(sample)]


def _averaged_weights(weight_averaging: float) -> list:
    """The moving average swapped in for validation and for the callbacks after it (the saver,
    early stopping), and out for training; after the backup, which keeps the raw weights a
    resumed run goes on from. A run stopped early ends with Keras writing the raw weights back;
    early stopping's restore of its best (averaged) epoch is what the model is left with."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if weight_averaging else []


def _augmented(dataset, augmentation: str, seed: int, epochs: int, plain_last_epochs: int):
    """The augmented training pipeline, and the callback that turns its cutout and mixup off
    for the last ``plain_last_epochs`` epochs (none when 0)."""
    tails = [PlainTail(epochs, plain_last_epochs)] if plain_last_epochs else []
    strong = tails[0].strong if tails else None  # None: cutout and mixup every epoch
    classes = dataset.info.num_classes
    return augment_pipeline(dataset.train, augmentation, seed, classes=classes, strong=strong), tails


def _saver(model, saved_model, dataset, run_dir: Path, *, keep_best: bool, start: bool):
    """The callback that writes model.keras (``saved_model``); ``start``: the model as it starts,
    validated now, is its first candidate."""
    saver = SaveOnImprovement(saved_model, run_dir / "model.keras", keep_best=keep_best)
    if start and keep_best:
        accuracy = model.evaluate(dataset.validation, verbose=0, return_dict=True)["accuracy"]
        saver.save_start(accuracy, dataset.info.counts["validation"])
    return saver


def _early_stopping(patience: int, restore_best: bool):
    return keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=restore_best
    )


def _fit_summary(history, dataset, saver, initial_epoch: int, patience: int, started: float,
                 judge_at_chance: bool) -> dict:  # fmt: skip
    """fit_classifier's result; a run kept by its best epoch is refused when it stayed at chance."""
    val_accuracy = history.history.get("val_accuracy", [])
    if saver.keep_best and judge_at_chance:  # a pruned or distilled model is judged by its own gates
        raise_if_at_chance(val_accuracy, dataset.arrays["validation"][1], patience)
    improved = val_accuracy and max(val_accuracy) > saver.start_accuracy
    return {
        "epochs_trained": len(val_accuracy),
        # 0: no epoch beat the start, which model.keras keeps
        "best_epoch": initial_epoch + int(np.argmax(val_accuracy)) + 1 if improved else 0,
        "training_seconds": round(time.perf_counter() - started, 2),
    }


def _in_precision(precision: str, model, saved_model, phase):
    """The model to train and the one model.keras saves: in bfloat16, a mixed-precision twin of
    ``model``, saved as ``model`` (float32); a distiller trains its own twin (``in_mixed_precision``),
    saved as its float32 student. A backbone's phases train in float32."""
    if precision == "float32":
        return model, saved_model
    if precision == "bfloat16" and phase is None:
        if saved_model is model:
            twin = mixed_precision_twin(model)
            return twin, SavedAsFloat32(twin, model)
        if hasattr(model, "in_mixed_precision"):  # a distiller
            trained, student_twin = model.in_mixed_precision()
            return trained, SavedAsFloat32(student_twin, saved_model)
    raise ValueError(f"precision '{precision}' trains a classifier from scratch; use float32 here")


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
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    precision: str = "float32",
    weight_averaging: float = 0.0,
    plain_last_epochs: int = 0,
    initial_epoch: int = 0,
    phase: int | None = None,
    start_is_candidate: bool = False,
    judge_at_chance: bool = True,
) -> dict:
    """Trains ``model`` on ``dataset`` and writes the run's training files into ``run_dir``.

    Files: model.keras (best validation accuracy), history.csv, logs/ (TensorBoard), backup/ (lets
    a killed run resume; deleted at the end). ``callbacks`` are added to the standard ones.
    ``optimizer``, ``weight_decay`` and ``label_smoothing`` are ``compile_classifier``'s;
    ``precision="bfloat16"`` trains a mixed-precision twin and saves float32 (``training.precision``).
    ``weight_averaging``: epochs over which an exponential moving average of the weights is kept
    (0: none); validation, early stopping and model.keras then see the averaged weights, and
    training goes on from the raw ones. ``plain_last_epochs``: the schedule's last epochs train
    without cutout and mixup (``augmentation.PlainTail``).
    ``keep_best=False`` keeps the last epoch (pruning: it has the final sparsity). ``saved_model``
    is what model.keras holds when it is not ``model`` (distillation saves the student). A later
    phase (``training.transfer``) numbers its epochs on from ``initial_epoch`` and appends to
    history.csv ("phase" column); ``judge_at_chance=False``: the caller refuses a run at chance.
    ``start_is_candidate``: the model as it starts is saved first and kept unless an epoch beats
    its validation accuracy by more than one standard error (QAT: fine-tuning that does not
    clearly help keeps the calibrated start, which is PTQ's file).

    Returns: {"epochs_trained", "best_epoch", "training_seconds"}.
    """
    keras.utils.set_random_seed(seed)
    if not initial_epoch:
        start_fresh(run_dir)
    model, saved_model = _in_precision(precision, model, saved_model or model, phase)
    steps_per_epoch = int(np.ceil(dataset.info.counts["train"] / dataset.batch_size))
    total_steps = (epochs - initial_epoch) * steps_per_epoch
    compile_classifier(model, learning_rate=learning_rate, optimizer=optimizer, weight_decay=weight_decay,
                       label_smoothing=label_smoothing, total_steps=total_steps,
                       ema_momentum=averaging_momentum(weight_averaging, steps_per_epoch),
                       soft_labels=uses_soft_labels(augmentation))  # fmt: skip
    train, tail = _augmented(dataset, augmentation, seed, epochs, plain_last_epochs)
    guard = DivergenceGuard()
    saver = _saver(model, saved_model, dataset, run_dir, keep_best=keep_best, start=start_is_candidate)
    all_callbacks = [
        *run_folder_callbacks(run_dir, guard, phase=phase),
        *_averaged_weights(weight_averaging),
        *_precise_batch_norm(dataset, steps_per_epoch, averaged=bool(weight_averaging)),
        saver,
        _early_stopping(patience if keep_best else epochs, keep_best),
        *tail,
        *(callbacks or []),
    ]
    started = time.perf_counter()
    # The pipeline reshuffles itself every epoch (seeded); Keras's own flag does not apply to it.
    history = model.fit(
        train,
        validation_data=dataset.validation,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=all_callbacks,
        verbose=verbose,
        shuffle=False,
    )
    guard.raise_if_diverged(run_dir, learning_rate)
    return _fit_summary(history, dataset, saver, initial_epoch, patience, started, judge_at_chance)
