"""The evaluate workflow: recompute a finished run's test metrics, or score it on other data."""

from pathlib import Path

from bigmodels.run_folder import read_run
from bigmodels.tasks import task_of


def evaluate_run(run_dir: str | Path, data_source: str | None = None, all_examples: bool = False) -> dict:
    """Recomputes a run's test metrics and writes evaluation.json.

    Classifiers: accuracy, per-class precision/recall/F1 and the confusion matrix, on the run's
    test split or on ``data_source`` (same classes; written as evaluation_other_data.json): its
    own test split, or with ``all_examples`` every example it has (a folder of new photos).
    Generators: the quality scores of the saved generator on the run's fixed latent vectors.

    Example:
        report = evaluate_run("saved_models/digits")
    """
    run_dir, config = read_run(run_dir)
    return task_of(config["model"]).evaluate(run_dir, config, data_source, all_examples)
