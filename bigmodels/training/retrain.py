"""Retraining on every labelled example once validation has done its job (``--retrain-on-all``).

With a few hundred photos, the validation split is a fifth of the labelled data (49 of the 245
ants/bees training photos). The validated pass trains as usual: it shows the run is not stuck at
chance, gives the validation figure, and writes history.csv. The model then starts again from the
same weights and trains on training + validation examples for the whole schedule (each phase's
warm-up and cosine decay to zero), keeping its last epoch, since no held-out example is left to
pick one: a quarter more photos to learn from. The retrained model is the run's model.keras;
retrain/ holds its history (its "validation" columns score photos it trained on).
"""

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from bigmodels.training.transfer import epochs_logged

RETRAIN_FOLDER = "retrain"


def with_validation_in_training(dataset):
    """``dataset`` with its validation examples appended to the training split (the validation
    split stays as it was, for the training loop's per-epoch report)."""
    (train_x, train_y), (val_x, val_y) = dataset.arrays["train"], dataset.arrays["validation"]
    merged = (np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]))
    counts = {**dataset.info.counts, "train": len(merged[1])}
    info = dataclasses.replace(dataset.info, counts=counts)
    return dataclasses.replace(dataset, arrays={**dataset.arrays, "train": merged}, info=info)


def retrain_on_all(model, starting_weights: list, dataset, run_dir: Path, fit) -> dict:
    """Trains ``model`` again from ``starting_weights`` (``model.get_weights()`` before the
    validated pass) on training + validation examples: ``fit(model, dataset, folder)`` runs the
    training loop into ``run_dir/retrain``, keeping its last epoch. The model it saves replaces
    ``run_dir``'s model.keras. Returns metrics.json's "retrained_on_all"."""
    model.set_weights(starting_weights)
    folder = Path(run_dir) / RETRAIN_FOLDER
    folder.mkdir(exist_ok=True)
    everything = with_validation_in_training(dataset)
    started = time.perf_counter()
    fit(model, everything, folder)
    os.replace(folder / "model.keras", Path(run_dir) / "model.keras")
    return {
        "train_examples": everything.info.counts["train"],
        # From history.csv: a resumed retrain's own summary counts only the epochs it ran itself.
        "epochs_trained": epochs_logged(folder / "history.csv"),
        "training_seconds": round(time.perf_counter() - started, 2),
        "kept": "last epoch",
        "history": f"{RETRAIN_FOLDER}/history.csv",
    }
