"""Transfer learning in two phases through the one classifier loop (``fit_classifier``).

Phase 1 (feature extraction) trains the new head on a frozen backbone. Phase 2 (fine-tuning)
unfreezes the backbone from a chosen layer on at a tenth of the learning rate, with every
BatchNormalization layer kept in inference mode: a few small batches of new data would
otherwise replace the moving statistics the pretrained weights depend on. history.csv has a
"phase" column; model.keras holds the best validation epoch of either phase.
"""

import csv
from pathlib import Path

import keras
import numpy as np

from bigmodels.training.callbacks import backup_folder, raise_if_at_chance
from bigmodels.training.classifier import fit_classifier

FINE_TUNE_LEARNING_RATE_FACTOR = 0.1
FEATURE_EXTRACTION, FINE_TUNING = 1, 2


def training_phases(epochs: int, fine_tune_epochs: int, learning_rate: float, fine_tune_from) -> list[dict]:
    """The phases config.json records and ``fit_in_phases`` runs (no phase 2 for 0 epochs)."""
    phases = [
        {
            "phase": FEATURE_EXTRACTION,
            "name": "feature_extraction",
            "epochs": epochs,
            "learning_rate": learning_rate,
            "trains": "the new classification head; the backbone is frozen",
        }
    ]
    if fine_tune_epochs:
        start = f"from layer '{fine_tune_from}' on" if fine_tune_from else "all of it"
        phases.append(
            {
                "phase": FINE_TUNING,
                "name": "fine_tuning",
                "epochs": fine_tune_epochs,
                "learning_rate": float(
                    f"{learning_rate * FINE_TUNE_LEARNING_RATE_FACTOR:.6g}"
                ),  # 3e-4, not 3.0000000000000003e-4
                "trains": f"the head and the backbone ({start}); BatchNorm layers stay in inference mode",
            }
        )
    return phases


def find_backbone(model) -> keras.Model:
    """The classifier's nested backbone model (named "backbone", or its only nested model)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    named = [layer for layer in nested if layer.name == "backbone"]
    if len(named) == 1 or len(nested) == 1:
        return (named or nested)[0]
    raise ValueError(f"model '{model.name}' has no single nested backbone model to freeze or fine-tune")


def set_phase_trainable(backbone, phase: int, fine_tune_from: str | None = None) -> None:
    """Phase 1: the whole backbone frozen. Phase 2: trainable from ``fine_tune_from`` on (all of it
    when None), BatchNorm frozen everywhere (a frozen Keras 3 BatchNorm runs in inference mode)."""
    backbone.trainable = phase != FEATURE_EXTRACTION  # sets every nested layer too
    if phase == FEATURE_EXTRACTION:
        return
    names = [layer.name for layer in backbone.layers]
    start = names.index(fine_tune_from) if fine_tune_from else 0
    for layer in backbone.layers[:start]:
        layer.trainable = False
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _logged_epochs(history_csv: Path) -> list[dict]:
    """history.csv's rows that have a validation accuracy."""
    with open(history_csv, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("val_accuracy") not in (None, "", "NA")]


def best_logged_epoch(history_csv: Path) -> int:
    """The 1-based epoch of the best validation accuracy in history.csv (0 when none)."""
    return _best_epoch(_logged_epochs(history_csv))


def _best_epoch(rows: list[dict]) -> int:
    """The 1-based epoch of the best validation accuracy among history.csv ``rows`` (0: none)."""
    if not rows:
        return 0
    best = int(np.argmax([float(row["val_accuracy"]) for row in rows]))
    return int(rows[best]["epoch"]) + 1


def epochs_logged(history_csv: Path, up_to_phase: int | None = None) -> int:
    """Epochs run so far (by the phases up to ``up_to_phase``), by history.csv's epoch numbers:
    an epoch logged twice, by a run killed between the log and the backup, counts once."""
    rows = _logged_epochs(history_csv) if history_csv.is_file() else []
    if up_to_phase is not None:
        rows = [row for row in rows if int(float(row["phase"])) <= up_to_phase]
    return max((int(row["epoch"]) + 1 for row in rows), default=0)


def _phase_to_resume(run_dir: Path, phases: list[dict]) -> int:
    """The index of the phase a killed run resumes in: the last one whose backup exists (the
    phases before it finished, and their backups are gone), else 0."""
    started = [index for index, phase in enumerate(phases) if backup_folder(run_dir, phase["phase"]).is_dir()]
    return max(started, default=0)


def _phase_summary(history_csv: Path, phase: dict, *, training_seconds: float) -> dict:
    """A phase's epochs and best (1-based) epoch, from history.csv."""
    rows = [row for row in _logged_epochs(history_csv) if int(float(row["phase"])) == phase["phase"]]
    return {"phase": phase["phase"], "name": phase["name"], "epochs_trained": len(rows),
            "best_epoch": _best_epoch(rows), "training_seconds": training_seconds}  # fmt: skip


def fit_in_phases(model, dataset, run_dir: Path, *, phases: list[dict], fine_tune_from=None, **settings):
    """Runs ``fit_classifier`` once per phase on ``model`` (a classifier with a nested backbone).

    Args:
        phases: ``training_phases``'s list: each phase's epochs and learning rate.
        fine_tune_from: the backbone layer fine-tuning starts at (None: all of it).
        settings: ``fit_classifier``'s other keyword arguments (seed, patience, augmentation, ...).

    Raises:
        StuckAtChance: after the last phase, when no epoch of any phase beat a constant answer on
            validation (a frozen phase at chance is no verdict: fine-tuning may still move it).

    Returns:
        fit_classifier's summary over both phases, with "phases": each phase's own summary.
    """
    backbone = find_backbone(model)
    history_csv = Path(run_dir) / "history.csv"
    resumed_at = _phase_to_resume(run_dir, phases)
    done, summaries = 0, []
    for index, phase in enumerate(phases):
        if index < resumed_at:  # finished before the run was killed: its epochs are logged
            summaries.append(_phase_summary(history_csv, phase, training_seconds=0.0))
            done = epochs_logged(history_csv, up_to_phase=phase["phase"])
            continue
        set_phase_trainable(backbone, phase["phase"], fine_tune_from)
        # A resumed phase 1 leaves its restored epoch on the model, and fit() would start phase 2
        # from there instead of from ``initial_epoch``.
        model._initial_epoch = None
        summary = fit_classifier(
            model,
            dataset,
            run_dir,
            **{**settings, "epochs": done + phase["epochs"], "learning_rate": phase["learning_rate"]},
            initial_epoch=done,
            phase=phase["phase"],
            judge_at_chance=False,
        )
        # From history.csv, not the summary: a resumed phase counts only the epochs it ran itself.
        summaries.append(_phase_summary(history_csv, phase, training_seconds=summary["training_seconds"]))
        done = epochs_logged(history_csv)
    if settings.get("keep_best", True):
        val_accuracy = [float(row["val_accuracy"]) for row in _logged_epochs(history_csv)]
        raise_if_at_chance(val_accuracy, dataset.arrays["validation"][1], settings["patience"])
    return {
        "epochs_trained": done,
        "best_epoch": best_logged_epoch(history_csv),
        "training_seconds": round(sum(summary["training_seconds"] for summary in summaries), 2),
        "phases": summaries,
    }
