"""What the compression workflows (prune, cluster, qat) share: a trained run fine-tuned into a new
run folder, with the source's files carried over and one config entry saying what was done."""

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigmodels.compress.clustering import check_cluster_count
from bigmodels.compress.pruning import prunable_weights
from bigmodels.compress.quantization import quantize_model
from bigmodels.run_folder import (
    check_derived_run_folder,
    load_run_model,
    read_run,
    staged_run_folder,
    write_json,
)
from bigmodels.tasks import task_of
from bigmodels.training.precision import resolve_precision


@dataclass
class FineTune:
    """How one compression fine-tunes a run (what ``plan`` returns to ``fine_tune_run``).

    Attributes:
        model: the model to train and save (the run's own, or a quantization-aware copy).
        callbacks: what keeps the compression through training (masks, clusters, ranges).
        record: config.json's entry for this compression.
        measure: the saved model -> what metrics.json adds (sparsity, distinct values).
        before_fit: the loaded data -> None, run before training (QAT calibrates its ranges).
        keep_best: keep the best validation epoch, the start included (else the last epoch:
            pruning reaches its final sparsity only there).
        saved_model: what model.keras holds when ``model`` wraps it (a pruned student taught by
            its unpruned source); None: ``model`` itself.
    """

    model: object
    callbacks: list
    record: dict
    measure: Callable[[object], dict] = field(default=lambda saved: {})
    before_fit: Callable[[object], None] = field(default=lambda dataset: None)
    keep_best: bool = False
    saved_model: object = None


def copy_carried_files(task, source_dir: Path, staging: Path) -> None:
    """A run made from another keeps the files its task carries (a text run's vocabulary)."""
    for name in task.carried_files:
        shutil.copy2(source_dir / name, staging / name)


def derived_training(
    source: dict, *, epochs: int, learning_rate: float, keep_precision: bool = False
) -> dict:
    """A derived run's training settings (fine-tuning, distillation): the source run's, with its
    own epochs and learning rate; in float32 unless ``keep_precision`` (fine-tuning wraps or
    rebuilds the model; a distiller trains bfloat16 twins: ``training.precision``); without
    weight averaging (masks, clusters and ranges are kept by callbacks on the trained weights,
    which an average would blur; distillation as measured), without a plain tail (its own few
    epochs have no cutout-free end to reach), and without retraining on the
    validation examples (validation judges a derived run's epochs)."""
    training = {
        **source,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "weight_averaging": 0.0,
        "plain_last_epochs": 0,
        "retrain_on_all": False,
    }
    if "precision" in training:
        # A teacher trained in bfloat16 elsewhere: this machine may have no bfloat16 instructions.
        kept = keep_precision and training["precision"] == "bfloat16"
        training["precision"] = resolve_precision("auto") if kept else "float32"
    return training


def fine_tune_run(
    run_dir,
    out_dir,
    *,
    key: str,
    from_key: str,
    plan,
    epochs: int,
    learning_rate: float | None,
    learning_rate_share: float,
    overwrite: bool,
    verbose: int,
) -> tuple[Path, dict]:
    """Fine-tunes a finished run into ``out_dir`` (a new run folder) as ``plan`` says.

    Args:
        key: config.json's key for the compression ("pruning", "clustering", "qat").
        from_key: config.json's and metrics.json's key for the source run ("pruned_from", ...).
        plan: (task, source model, training steps, source config) -> ``FineTune``; raises
            ValueError on bad input, before anything is written.
        learning_rate: peak learning rate; None takes ``learning_rate_share`` of the run's.
    """
    run_dir, config = read_run(run_dir)
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    check_derived_run_folder(out_dir, run_dir, overwrite=overwrite)  # before minutes of loading
    task = task_of(config["model"])
    dataset = task.load_data(run_dir, config)
    steps = epochs * math.ceil(dataset.info.counts["train"] / dataset.batch_size)
    tune = plan(task, load_run_model(run_dir), steps, config)
    source = config["training"]
    training = derived_training(
        source, epochs=epochs, learning_rate=learning_rate or source["learning_rate"] * learning_rate_share
    )
    derived = {
        **task.derived_config(config, run_dir),
        "training": training,
        from_key: str(run_dir.resolve()),
        key: tune.record,
    }
    with staged_run_folder(Path(out_dir), overwrite=overwrite) as staging:
        copy_carried_files(task, run_dir, staging)
        write_json(staging / "config.json", derived)
        tune.before_fit(dataset)
        metrics = task.fit_into(
            staging, tune.model, dataset, derived, verbose=verbose, callbacks=tune.callbacks,
            keep_best=tune.keep_best, start_is_candidate=tune.keep_best, saved_model=tune.saved_model,
        )  # fmt: skip
        metrics.update(tune.measure(load_run_model(staging)), **{from_key: str(run_dir)})
        write_json(staging / "metrics.json", metrics)
    return Path(out_dir), metrics


def check_compression_chain(task, model, *, clusters: int | None = None, qat: bool = False) -> None:
    """Refuses, before anything trains, later stages the model could not take: more clusters than
    the smallest kernel's weights, or a layer QAT cannot wrap (each would fail only after
    training). ``model`` is the freshly built model of ``task``; raises ValueError.

    Example:
        train_run(..., before_training=partial(check_compression_chain, clusters=16, qat=True))
    """
    if clusters is not None:
        sizes = [
            int(np.prod(variable.shape)) for _, variable, _, _ in prunable_weights(task.pruning_target(model))
        ]
        if not sizes:
            raise ValueError("the model has no kernel to cluster; leave out --clusters")
        check_cluster_count(clusters, sizes)
    if qat:
        task.with_quantization_aware(model, quantize_model)
