"""Compression as run folders: prune a trained run, or distil it into a smaller student.

Each writes a new, ordinary run folder (model.keras, config.json, metrics.json, ...), so
evaluation and export (every TFLite mode, the parity gate, gzip sizes) work on it unchanged.
"""

import json
import math
import shutil
from pathlib import Path

from bigmodels.compress.pruning import (
    KINDS,
    ConstantSparsity,
    MagnitudePruner,
    PolynomialDecay,
    overall_sparsity,
    sparsity_report,
)
from bigmodels.model_args import GENERATIVE_MODELS
from bigmodels.run_folder import check_derived_run_folder
from bigmodels.runs import (
    fit_classifier_into,
    load_run_dataset,
    load_run_model,
    read_run,
    staged_run_folder,
    write_json,
)

SCHEDULES = ("polynomial", "constant")
RAMP_SHARE = 0.7  # sparsity rises over the first 70% of the steps; the rest fine-tunes at the target
TEXT_RUN_FILES = ("vocabulary.txt", "tokenizer.json")


def make_schedule(name: str, sparsity: float, total_steps: int, frequency: int | None = None):
    """The schedule prune_run uses: the target is reached at 70% of training, then held."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}'; choose one of {', '.join(SCHEDULES)}")
    end_step = max(1, int(total_steps * RAMP_SHARE))
    frequency = frequency or max(1, end_step // 20)
    if name == "constant":
        return ConstantSparsity(sparsity, begin_step=0, end_step=end_step, frequency=frequency)
    return PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end_step, frequency=frequency)


def prune_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    sparsity: float,
    schedule: str = "polynomial",
    epochs: int = 8,
    learning_rate: float | None = None,
    kinds=KINDS,
    structure: str | None = None,
    min_weights: int = 0,
    overwrite: bool = False,
    verbose: int = 1,
) -> tuple[Path, dict]:
    """Fine-tunes a trained run with magnitude pruning into a new run folder.

    Args:
        run_dir: a finished run (any family; for a DCGAN the generator is pruned).
        out_dir: the pruned run folder to create.
        sparsity: target share of zeros in every pruned kernel (ignored with structure="2:4").
        schedule: "polynomial" (TFMOT's PolynomialDecay from 0) or "constant".
        epochs: fine-tuning epochs; the target is reached after 70% of them.
        learning_rate: fine-tuning peak learning rate (default: half the run's; a tenth left the
            MNIST CNN 2 points lower at 80% sparsity than half did).
        kinds: layer kinds to prune (dense, conv, depthwise, embedding, transformer).
        structure: None or "2:4".
        min_weights: kernels with fewer weights stay dense (the report shows them at 0).

    Example:
        pruned_dir, metrics = prune_run("saved_models/mnist", "saved_models/mnist_80", sparsity=0.8)
        export_run(pruned_dir)  # gzip sizes in export/report.json show the zeros
    """
    run_dir, config = read_run(run_dir)
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    check_derived_run_folder(out_dir, run_dir, overwrite=overwrite)  # before minutes of loading
    dataset = load_run_dataset(run_dir, config)
    model = load_run_model(run_dir)
    generative = config["model"] in GENERATIVE_MODELS
    target = model.generator if generative else model
    steps = epochs * math.ceil(dataset.info.counts["train"] / dataset.batch_size)
    pruner = MagnitudePruner(
        target,
        make_schedule(schedule, sparsity, steps),
        kinds=kinds,
        structure=structure,
        min_weights=min_weights,
    )
    training = dict(config["training"])
    training.update(epochs=epochs, learning_rate=learning_rate or training["learning_rate"] / 2)
    pruned_config = {
        **config,
        "training": training,
        "pruned_from": str(run_dir.resolve()),
        "pruning": {
            "sparsity": sparsity if structure is None else 0.5,
            "schedule": pruner.schedule.get_config(),
            "kinds": list(kinds),
            "structure": structure,
            "min_weights": min_weights,
            "target": "generator" if generative else "model",
        },
    }
    with staged_run_folder(Path(out_dir), overwrite=overwrite) as staging:
        for name in TEXT_RUN_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, staging / name)
        if generative:
            from bigmodels.gan_runs import _score_classifier_run, train_gan_into

            metrics = train_gan_into(
                staging,
                model,
                dataset,
                pruned_config,
                score_classifier=_score_classifier_run(run_dir, config).resolve(),
                verbose=verbose,
                callbacks=[pruner],
            )
        else:
            write_json(staging / "config.json", pruned_config)
            metrics = fit_classifier_into(
                staging, model, dataset, training, verbose, [pruner], keep_best=False
            )
        pruned = load_run_model(staging)
        report = sparsity_report(pruned.generator if generative else pruned, kinds)
        metrics.update(
            sparsity=overall_sparsity(report), sparsity_per_weight=report, pruned_from=str(run_dir)
        )
        write_json(staging / "metrics.json", metrics)
    return Path(out_dir), metrics


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
    from bigmodels.compress.distillation import Distiller
    from bigmodels.model_args import inspect_arguments
    from bigmodels.registry import get_builder

    teacher_dir, config = read_run(teacher_dir)
    if config["model"] in GENERATIVE_MODELS:
        raise ValueError("distillation trains classifiers; prune a DCGAN's generator instead (apps/prune.py)")
    unknown = sorted(set(student_args) - set(inspect_arguments(config["model"])))
    if unknown:
        raise ValueError(f"{config['model']} has no argument(s) {', '.join(unknown)} for --student-config")
    check_derived_run_folder(out_dir, teacher_dir, overwrite=overwrite)  # before minutes of loading
    dataset = load_run_dataset(teacher_dir, config)
    teacher = load_run_model(teacher_dir)
    model_args = {
        k: v for k, v in {**config["model_args"], **student_args}.items() if k != "variant_chosen_by"
    }
    builder = get_builder(config["model"])
    training = dict(config["training"])
    training.update(
        epochs=epochs or training["epochs"], learning_rate=learning_rate or training["learning_rate"]
    )
    student_config = {**config, "model_args": model_args, "training": training}
    comparison = {"teacher": _size_and_accuracy(teacher_dir, teacher, name=str(teacher_dir))}
    import keras

    keras.utils.set_random_seed(training["seed"])
    with staged_run_folder(Path(out_dir), overwrite=overwrite) as staging:
        for folder in [staging] + ([staging / "student_alone"] if train_alone else []):
            folder.mkdir(exist_ok=True)
            for name in TEXT_RUN_FILES:
                if (teacher_dir / name).is_file():
                    shutil.copy2(teacher_dir / name, folder / name)
        if train_alone:
            write_json(staging / "student_alone" / "config.json", student_config)
            fit_classifier_into(
                staging / "student_alone", builder(**model_args), dataset, training, verbose, None
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
            staging, distiller, dataset, training, verbose, None, saved_model=student
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
