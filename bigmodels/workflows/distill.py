"""The distill workflow: train a smaller student of a run's family by distillation."""

import json
from pathlib import Path

import keras

from bigmodels.compress.distillation import Distiller
from bigmodels.models.arguments import inspect_arguments
from bigmodels.models.registry import get_builder
from bigmodels.run_folder import (
    check_derived_run_folder,
    load_run_model,
    read_run,
    staged_run_folder,
    write_json,
)
from bigmodels.tasks import task_of
from bigmodels.tasks.classification import fit_classifier_into
from bigmodels.workflows.derived import copy_carried_files, derived_training


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))


def distill_run(
    teacher_dir: str | Path,
    out_dir: str | Path,
    *,
    student_args: dict,
    alpha: float = 0.1,
    temperature: float = 4.0,
    epochs: int | None = None,
    learning_rate: float | None = None,
    train_alone: bool = True,
    overwrite: bool = False,
    verbose: int = 1,
) -> tuple[Path, dict]:
    """Trains a smaller student of the teacher's family by distillation, into a new run folder.

    The student is built with the teacher's builder arguments updated by ``student_args`` (e.g.
    {"width": 32}) and trained on the teacher's data and split. With ``train_alone`` the same
    student is also trained without the teacher (RUN_DIR/student_alone/), and metrics.json's
    "distillation" compares teacher, student alone and distilled student on accuracy and size.

    Example:
        distill_run("saved_models/sst2", "saved_models/sst2_small", student_args={"width": 32})
    """
    teacher_dir, config = read_run(teacher_dir)
    task = task_of(config["model"])
    if not task.can_distill:
        raise ValueError("distillation trains classifiers; prune a DCGAN's generator instead (apps/prune.py)")
    unknown = sorted(set(student_args) - set(inspect_arguments(config["model"])))
    if unknown:
        raise ValueError(f"{config['model']} has no argument(s) {', '.join(unknown)} for --student-config")
    check_derived_run_folder(out_dir, teacher_dir, overwrite=overwrite)  # before minutes of loading
    dataset = task.load_data(teacher_dir, config)
    teacher = load_run_model(teacher_dir)
    model_args = {
        k: v for k, v in {**config["model_args"], **student_args}.items() if k != "variant_chosen_by"
    }
    builder = get_builder(config["model"])
    source = config["training"]
    training = derived_training(
        source,
        epochs=epochs or source["epochs"],
        learning_rate=learning_rate or source["learning_rate"],
        keep_precision=True,
    )
    student_config = {**config, "model_args": model_args, "training": training}
    comparison = {"teacher": _size_and_accuracy(teacher_dir, teacher, name=str(teacher_dir))}

    keras.utils.set_random_seed(training["seed"])
    with staged_run_folder(Path(out_dir), overwrite=overwrite) as staging:
        for folder in [staging] + ([staging / "student_alone"] if train_alone else []):
            folder.mkdir(exist_ok=True)
            copy_carried_files(task, teacher_dir, folder)
        if train_alone:
            write_json(staging / "student_alone" / "config.json", student_config)
            fit_classifier_into(
                staging / "student_alone",
                builder(**model_args),
                dataset,
                training,
                verbose=verbose,
                callbacks=None,
            )
            alone = load_run_model(staging / "student_alone")
            comparison["student_alone"] = _size_and_accuracy(
                staging / "student_alone", alone, name="student_alone/"
            )
        distillation = {"teacher": str(teacher_dir.resolve()), "alpha": alpha, "temperature": temperature}
        write_json(staging / "config.json", {**student_config, "distilled_from": distillation})
        student = builder(**model_args)
        distiller = Distiller(student, teacher, alpha=alpha, temperature=temperature)
        metrics = fit_classifier_into(
            staging, distiller, dataset, training, verbose=verbose, callbacks=None, saved_model=student
        )
        comparison["distilled_student"] = _size_and_accuracy(
            staging, load_run_model(staging), metrics, name="this run"
        )
        metrics["distillation"] = comparison
        write_json(staging / "metrics.json", metrics)
    return Path(out_dir), metrics


def _size_and_accuracy(run_dir: Path, model, metrics: dict | None = None, *, name: str) -> dict:
    metrics = metrics or read_metrics(run_dir)
    return {
        "run": name,
        "test_accuracy": metrics["test_accuracy"],
        "num_parameters": int(model.count_params()),
        "float32_bytes": int(model.count_params()) * 4,
    }
