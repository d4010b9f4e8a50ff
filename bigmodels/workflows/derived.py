"""What the compression workflows (prune, cluster, qat) share: a trained run fine-tuned into a new
run folder, with the source's files carried over and one config entry saying what was done."""

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bigmodels.run_folder import (
    check_derived_run_folder,
    load_run_model,
    read_run,
    staged_run_folder,
    write_json,
)
from bigmodels.tasks import task_of


@dataclass
class FineTune:
    """How one compression fine-tunes a run (what ``plan`` returns to ``fine_tune_run``).

    Attributes:
        model: the model to train and save (the run's own, or a quantization-aware copy).
        callbacks: what keeps the compression through training (masks, clusters, ranges).
        record: config.json's entry for this compression.
        measure: the saved model -> what metrics.json adds (sparsity, distinct values).
    """

    model: object
    callbacks: list
    record: dict
    measure: Callable[[object], dict] = field(default=lambda saved: {})


def copy_carried_files(task, source_dir: Path, staging: Path) -> None:
    """A run made from another keeps the files its task carries (a text run's vocabulary)."""
    for name in task.carried_files:
        shutil.copy2(source_dir / name, staging / name)


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
    training = dict(config["training"])
    training.update(
        epochs=epochs, learning_rate=learning_rate or training["learning_rate"] * learning_rate_share
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
        # The last epoch, not the best: only the last has the final sparsity, clusters and ranges.
        metrics = task.fit_into(
            staging, tune.model, dataset, derived, verbose=verbose, callbacks=tune.callbacks, keep_best=False
        )
        metrics.update(tune.measure(load_run_model(staging)), **{from_key: str(run_dir)})
        write_json(staging / "metrics.json", metrics)
    return Path(out_dir), metrics
