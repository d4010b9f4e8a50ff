"""``--model auto``: every candidate model for the data's kind trained on the same split, and the
one of best validation accuracy kept as the run, unless a much smaller one is within one
standard error of it.

No text model wins everywhere (measured, benchmarks/results/text_*.json). Which one a user's data
favours is found the way a person would find it, on the validation split; the test split is
never looked at to choose. A validation split is small (SST-2's 872 sentences: one standard
error is 1.4 points), so a smaller candidate within one standard error of the best is kept
instead when smallness buys something: at most half the best's weights (the "one-standard-error
rule", applied only where there is a size to save). The text candidates are the same size (each
about 420k weights, files of 430-495 KB), and on all four text sets measured the rule that kept
the n-gram model whenever the Transformer's lead was within one standard error cost test
accuracy: SST-2 phrases 82.9% kept against the Transformer's 84.1%, English fortunes 58.7%
against 61.3% (benchmarks/results/text_sst2_auto.json, text_topics_auto.json).
"""

import json
import shutil
from pathlib import Path

from bigmodels.run_folder import MARKER_FILE, read_marker, staged_run_folder, write_json
from bigmodels.training.callbacks import (
    StuckAtChance,
    TrainingDiverged,
    accuracy_standard_error,
    best_logged,
)

AUTO = "auto"
# Fastest first: on a tie the first is kept. The embedding bag is no candidate:
# since the n-gram model is fitted exactly (training.linear) it beat the bag on test on all four
# sets measured (by 0.4-2.5 points), while the bag's validation accuracy, the best of 30 noisy
# epochs, read high: on the Russian fortunes it was kept at 54.5% on test beside the n-gram
# model's 56.4% and the Transformer's 58.4%.
CANDIDATES = {
    "text": ("ngram_classifier", "transformer_classifier"),
    "image": ("cnn_classifier",),
}
CANDIDATES_FOLDER = "candidates"
# A candidate within one standard error of the best is kept instead of it only with at most
# this fraction of its weights: half the file is worth a difference validation cannot tell
# from noise; a few percent is not.
PARSIMONY_RATIO = 0.5


def auto_candidates(data_kind: str) -> tuple[str, ...]:
    """The models ``--model auto`` tries on data of this kind."""
    return CANDIDATES[data_kind]


def auto_may_choose(request: dict) -> bool:
    """Whether train_run's arguments (``request``) leave the model to auto when none is named: no
    model flag, recipe, backbone or strategy that only one model could take."""
    return _what_auto_cannot_apply(request) is None


def check_auto_request(request: dict) -> None:
    """Refuses, before any data loads, what cannot apply to every candidate alike."""
    problem = _what_auto_cannot_apply(request)
    if problem is not None:
        raise ValueError(problem)


def _what_auto_cannot_apply(request: dict) -> str | None:
    """The one-line refusal for train_run's arguments under --model auto, or None."""
    given = sorted(name for name, value in (request["model_args"] or {}).items() if value is not None)
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        return f"{flags}: --model auto uses each candidate's own settings; leave them out or name a model"
    if request["recipe"] is not None or request["backbone"] is not None:
        return "--model auto chooses among models trained from scratch; leave out --recipe and --backbone"
    if request["strategy"] != "default":
        return f"--model auto trains one candidate after another; leave out --strategy {request['strategy']}"
    return None


def train_candidates(train_one, candidates, out_dir: Path, *, overwrite: bool) -> dict:
    """Trains each of ``candidates`` (fastest first) with ``train_one(model_name, run_dir)``
    (train_run with the caller's settings), keeps the one ``_choose`` picks as the run
    ``out_dir`` and records them all in its config.json
    ("model_candidates"). A killed run resumes: candidates already finished are not trained
    again. Returns the kept run's metrics."""
    with staged_run_folder(out_dir, overwrite=overwrite) as staging:
        folder = staging / CANDIDATES_FOLDER
        results = [_trained(train_one, name, folder / name) for name in candidates]
        finished = [result for result in results if "dropped" not in result]
        if not finished:
            raise ValueError(f"--model auto: no candidate could be kept ({results[0]['dropped']})")
        kept, reason = _choose(finished)
        metrics = _promote(folder / kept["model"], staging)
        config = _read_json(staging / "config.json")
        config["model_chosen_by"] = reason
        config["model_candidates"] = results
        write_json(staging / "config.json", config)
        shutil.rmtree(folder)
    return metrics


def _choose(finished: list[dict]) -> tuple[dict, str]:
    """The candidate of best validation accuracy (the first on a tie), or the first one within
    one standard error of it with at most ``PARSIMONY_RATIO`` of its weights; and why, in words."""
    best = max(finished, key=lambda result: result["val_accuracy"])
    examples = max(result["validation_examples"] for result in finished)
    standard_error = accuracy_standard_error(best["val_accuracy"], examples)
    kept = next(
        result
        for result in finished
        if result is best
        or result["val_accuracy"] >= best["val_accuracy"] - standard_error - 1e-9
        and _much_smaller(result, best)
    )
    scores = ", ".join(f"{result['model']} {result['val_accuracy']:.4f}" for result in finished)
    within = f"one standard error ({standard_error:.4f}, {examples} validation examples)"
    if kept is best:
        return kept, f"auto: the best validation accuracy ({scores}); none within {within} is half its size"
    return kept, f"auto: within {within} of the best validation accuracy ({scores}) at half its size or less"


def _much_smaller(result: dict, best: dict) -> bool:
    """Whether ``result`` has at most ``PARSIMONY_RATIO`` of ``best``'s weights (unknown: no)."""
    mine, theirs = result.get("num_parameters"), best.get("num_parameters")
    return bool(mine and theirs and mine <= PARSIMONY_RATIO * theirs)


def _trained(train_one, model_name: str, run_dir: Path) -> dict:
    """One candidate's summary, training it unless a killed auto run already finished it."""
    finished = read_marker(run_dir) is not None and (run_dir / "metrics.json").is_file()
    if not finished:
        try:
            train_one(model_name, run_dir)
        except (StuckAtChance, TrainingDiverged) as error:  # the others may still do well
            return {"model": model_name, "dropped": str(error)}
    metrics = _read_json(run_dir / "metrics.json")
    return {
        "model": model_name,
        "val_accuracy": round(float(_validation_accuracy(run_dir, metrics)), 6),
        "validation_examples": int(metrics.get("counts", {}).get("validation", 0)),
        "test_accuracy": metrics.get("test_accuracy"),
        "epochs_trained": metrics.get("epochs_trained"),
        "training_seconds": metrics.get("training_seconds"),
        "num_parameters": metrics.get("num_parameters"),
    }


def _validation_accuracy(run_dir: Path, metrics: dict) -> float:
    """The kept model's validation accuracy: its best epoch's, or what a fit after the epochs
    (a linear model's, a refitted n-gram head's) recorded in metrics.json."""
    if "validation_accuracy" in metrics:
        return metrics["validation_accuracy"]
    return best_logged(run_dir / "history.csv", "val_accuracy")


def _promote(run_dir: Path, staging: Path) -> dict:
    """Copies the kept candidate's files up into the auto run's staging folder (copies, so that a
    run killed half-way through resumes from an intact candidate)."""
    for entry in run_dir.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name, dirs_exist_ok=True)
        elif entry.name != MARKER_FILE:
            shutil.copy2(entry, staging / entry.name)
    return _read_json(staging / "metrics.json")


def _read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
