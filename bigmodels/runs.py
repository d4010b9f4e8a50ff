"""The run folder: train a registered model into one, evaluate it, and read it back.

A run folder holds model.keras, config.json (every resolved argument), metrics.json,
history.csv, logs/ (TensorBoard), training_curves.png, evaluation.json and
confusion_matrix.png. It is written under RUN_DIR.partial and renamed when complete, so a
folder named RUN_DIR is always a finished run.
"""

import contextlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from bigmodels import __version__
from bigmodels.data import load_dataset
from bigmodels.evaluation import classification_report, plot_confusion_matrix, plot_history
from bigmodels.model_args import (
    DEFAULT_LEARNING_RATES,
    DEFAULT_MODELS,
    GENERATIVE_MODELS,
    check_model_fits_data,
    inspect_arguments,
    prepare_text,
    resolve_model_args,
)
from bigmodels.registry import get_builder
from bigmodels.run_folder import (  # noqa: F401  RUN_FILES, read_run: the run format's home
    RUN_FILES,
    check_output_folder,
    read_run,
    record_entries,
    staged_folder,
    write_json,
)


def load_run_model(run_dir: Path):
    """Loads model.keras in Keras safe mode (a model file cannot run arbitrary code)."""
    import keras

    import bigmodels.models  # noqa: F401  registers the package's own layers for loading

    if (run_dir / "tokenizer.json").is_file():
        import keras_hub  # noqa: F401  registers TokenAndPositionEmbedding, TransformerEncoder

    path = run_dir / "model.keras"
    try:
        return keras.models.load_model(path, safe_mode=True)
    except ValueError as error:
        if "safe_mode" not in str(error):
            raise ValueError(f"{path} cannot be loaded ({_last_line(error)}); train the run again") from None
        raise ValueError(
            f"{path} holds code (a Lambda layer or a Python function) and is refused: models are loaded "
            "in Keras safe mode so that a file cannot run code; rebuild the model from registered layers"
        ) from None
    except (TypeError, KeyError, AttributeError, zipfile.BadZipFile) as error:
        # Keras reports a config naming an unknown function or class (e.g. os.system) as TypeError.
        raise ValueError(
            f"{path} cannot be loaded: it is damaged or names a function or class that bigmodels "
            f"does not provide ({_last_line(error)[:200]}); train the run again"
        ) from None


def _last_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__


@contextlib.contextmanager
def staged_run_folder(out_dir: Path, *, overwrite: bool):
    """Yields the staging folder of run ``out_dir``; it becomes ``out_dir`` only if the block succeeds.

    On an exception the staging folder is removed (on divergence only its backup, so the last
    good checkpoint stays); a process killed outright (SIGKILL, power loss) leaves
    OUT_DIR.partial, which the same command resumes from. Only a run folder bigmodels wrote is
    ever replaced (see ``bigmodels.run_folder``).
    """
    from bigmodels.training import TrainingDiverged

    keep_on = (TrainingDiverged,)
    with staged_folder(out_dir, "run", overwrite=overwrite, resume=True, keep_on=keep_on) as staging:
        try:
            yield staging
        except TrainingDiverged:
            # Keep the last good checkpoint for the user; drop the backup so the next run (with a
            # lower learning rate) starts clean instead of resuming into the divergence.
            shutil.rmtree(staging / "backup", ignore_errors=True)
            raise


TEXT_DATA_OPTIONS = ("text_columns", "label_column", "test_source", "validation_source", "header", "encoding")


def train_run(
    model_name: str | None,
    data_source: str | None,
    out_dir: str | Path,
    *,
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 64,
    learning_rate: float | None = None,
    patience: int = 8,
    augmentation: str | None = None,
    image_size: tuple[int, int] | None = None,
    model_args: dict | None = None,
    data_options: dict | None = None,
    tokenizer=None,
    score_classifier: str | Path | None = None,
    strategy: str = "default",
    logical_cpus: int | None = None,
    overwrite: bool = False,
    verbose: int = 1,
    callbacks: list | None = None,
) -> tuple[Path, dict]:
    """Trains a registered model on a data source and writes a complete run folder.

    Args:
        model_name: a registered model; None picks cnn_classifier for images and
            transformer_classifier for text.
        data_source: anything ``load_dataset`` takes.
        out_dir: the run folder to create.
        data_options: text-source options of ``load_dataset`` (text_columns, label_column,
            test_source, validation_source, header, encoding).
        tokenizer: ``TokenizerSettings`` (or a dict of them) for text data; defaults otherwise.
        model_args: builder arguments; data-dependent ones are filled in.
        learning_rate: peak learning rate (default 3e-3 for classifiers, 2e-4 for the DCGAN).
        score_classifier: for the DCGAN, a classifier run on the same data whose CNN scores the
            samples; by default one is trained into RUN_DIR/score_classifier.
        strategy: "default", "mirrored" (every GPU, or every logical CPU) or "multi_worker"
            (machines from TF_CONFIG; only the chief writes ``out_dir``).
        logical_cpus: split the CPU into this many devices first (for "mirrored" without GPUs).
        Other arguments are the training settings recorded in config.json.

    Example:
        run_dir, metrics = train_run("cnn_classifier", "digits", "saved_models/digits", epochs=5)
        train_run(None, "reviews.csv", "saved_models/reviews",
                  data_options={"text_columns": ["title", "body"], "label_column": "stars"})

    Returns:
        (run_dir, metrics) where metrics is what metrics.json holds.
    """
    from bigmodels.data.vocabulary import TokenizerSettings
    from bigmodels.distribute import describe, is_chief, make_strategy
    from bigmodels.training import default_augmentation

    distribution = make_strategy(strategy, logical_cpus=logical_cpus)  # before any TensorFlow op
    if model_name is not None:
        get_builder(model_name)  # an unknown model fails before any data is read
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    out_dir = Path(out_dir)
    check_output_folder(out_dir, "run", overwrite=overwrite)  # before minutes of loading data
    data_options = {k: v for k, v in (data_options or {}).items() if v is not None}
    unknown = sorted(set(data_options) - set(TEXT_DATA_OPTIONS))
    if unknown:
        raise ValueError(f"unknown data option(s) {', '.join(unknown)}; use {', '.join(TEXT_DATA_OPTIONS)}")
    dataset = load_dataset(
        data_source, batch_size=batch_size, seed=seed, image_size=image_size, **data_options
    )
    model_chosen_by = None
    if model_name is None:
        model_name = DEFAULT_MODELS[dataset.info.kind]
        model_chosen_by = f"auto ({dataset.info.kind} data)"
    data_args = {
        "source": data_source,
        "batch_size": batch_size,
        "seed": seed,
        "image_size": list(image_size) if image_size else None,
        **data_options,
    }
    check_model_fits_data(model_name, inspect_arguments(model_name), dataset.info.kind)
    chief = is_chief(distribution)
    # Every worker trains; only the chief's folder is kept (the others write to a temporary one).
    write_dir = out_dir if chief else Path(tempfile.mkdtemp(prefix="bigmodels-worker-")) / out_dir.name
    with staged_run_folder(write_dir, overwrite=overwrite) as staging, distribution.scope():
        if dataset.info.kind == "text":
            if isinstance(tokenizer, dict):
                tokenizer = TokenizerSettings(**tokenizer)
            dataset = prepare_text(dataset, staging, tokenizer or TokenizerSettings())
        generative = model_name in GENERATIVE_MODELS
        if learning_rate is None:
            learning_rate = DEFAULT_LEARNING_RATES["generative" if generative else "classifier"]
        resolved = resolve_model_args(model_name, dataset.info, model_args or {}, seed=seed)
        builder_args = {k: v for k, v in resolved.items() if k != "variant_chosen_by"}
        import keras

        keras.utils.set_random_seed(seed)  # the initial weights too: same seed, same run
        model = get_builder(model_name)(**builder_args)
        augmentation = "none" if generative else augmentation or default_augmentation(dataset.info)
        training = {
            "epochs": epochs,
            "learning_rate": learning_rate,
            "seed": seed,
            "patience": patience,
            "augmentation": augmentation,
            "batch_size": batch_size,
            "strategy": describe(distribution, strategy),
        }
        config = {
            "model": model_name,
            "model_args": resolved,
            "data": data_args,
            "training": training,
            "bigmodels_version": __version__,
        }
        if model_chosen_by:
            config["model_chosen_by"] = model_chosen_by
        if dataset.info.kind == "text":
            config["tokenizer"] = dataset.info.preprocessing["tokenizer"]
        if generative:
            from bigmodels.gan_runs import train_gan_into

            metrics = train_gan_into(
                staging,
                model,
                dataset,
                config,
                score_classifier=score_classifier,
                verbose=verbose,
                callbacks=callbacks,
            )
        else:
            write_json(staging / "config.json", config)
            metrics = fit_classifier_into(staging, model, dataset, training, verbose, callbacks)
    if not chief:
        shutil.rmtree(write_dir.parent, ignore_errors=True)
    return out_dir, metrics


def fit_classifier_into(
    staging: Path,
    model,
    dataset,
    training: dict,
    verbose: int,
    callbacks,
    *,
    keep_best: bool = True,
    saved_model=None,
) -> dict:
    """Trains a classifier into ``staging``; writes metrics.json and the curves; returns metrics.

    ``saved_model`` is the model that model.keras holds when ``model`` wraps it (distillation).
    """
    from bigmodels.training import fit_classifier

    summary = fit_classifier(
        model,
        dataset,
        staging,
        epochs=training["epochs"],
        learning_rate=training["learning_rate"],
        seed=training["seed"],
        patience=training["patience"],
        augmentation=training["augmentation"],
        verbose=verbose,
        callbacks=callbacks,
        keep_best=keep_best,
        saved_model=saved_model,
    )
    metrics = evaluate_into(staging, dataset, load_run_model(staging))
    metrics.update(summary, num_parameters=int((saved_model or model).count_params()))
    write_json(staging / "metrics.json", metrics)
    plot_history(staging / "history.csv", staging / "training_curves.png")
    return metrics


def evaluate_into(run_dir: Path, dataset, model, *, name: str = "evaluation") -> dict:
    """Evaluates ``model`` on the test split; writes NAME.json and the confusion-matrix PNG."""
    features, labels = dataset.arrays["test"]
    probabilities = model.predict(features, batch_size=256, verbose=0)
    report = classification_report(labels, probabilities.argmax(-1), dataset.info.class_names)
    info = dataset.info
    report.update(data_source=info.source, test_split=info.test_split)
    write_json(run_dir / f"{name}.json", report)
    plot_confusion_matrix(report, run_dir / f"{name.replace('evaluation', 'confusion_matrix')}.png")
    return {
        "test_accuracy": report["accuracy"],
        "num_test_examples": report["num_examples"],
        "class_names": info.class_names,
        "data_source": info.source,
        "test_split": info.test_split,
        "validation_split": info.validation_split,
        "counts": info.counts,
        "input_shape": list(info.input_shape),
        "preprocessing": info.preprocessing,
        "skipped_files": info.skipped_files,
        "num_skipped_files": len(info.skipped_files),
        "repaired_rows": info.repaired_rows,  # kept, with undecodable bytes replaced
        "num_repaired_rows": len(info.repaired_rows),
    }


def load_run_dataset(run_dir: Path, config: dict, source: str | None = None, **overrides):
    """Loads the run's data with its recorded split settings (or ``source`` shaped the same way).

    Text is tokenized with the run's own vocabulary, never a new one.
    """
    data = dict(config["data"])
    model_args = config["model_args"]
    text_options = {k: data[k] for k in TEXT_DATA_OPTIONS if data.get(k) is not None}
    if source is not None:
        text_options.pop("test_source", None)  # other data brings its own splits
        text_options.pop("validation_source", None)
    if "tokenizer" in config:
        from bigmodels.data.vocabulary import load_tokenizer, tokenize_dataset

        raw = load_dataset(
            source if source is not None else data["source"],
            batch_size=overrides.get("batch_size", data["batch_size"]),
            seed=data["seed"],
            **text_options,
        )
        if raw.info.kind != "text":
            raise ValueError(f"{source}: the run was trained on text; evaluate it on text data")
        return tokenize_dataset(raw, *load_tokenizer(run_dir))
    image_size = data.get("image_size") or model_args.get("input_shape", [None, None])[:2]
    return load_dataset(
        source if source is not None else data["source"],
        batch_size=overrides.get("batch_size", data["batch_size"]),
        seed=data["seed"],
        image_size=tuple(image_size) if image_size and None not in image_size else None,
        channels=model_args.get("input_shape", [None, None, None])[-1],
    )


def evaluate_run(run_dir: str | Path, data_source: str | None = None) -> dict:
    """Recomputes accuracy, per-class precision/recall/F1 and the confusion matrix of a run (or
    the quality scores of a DCGAN run)."""
    run_dir, config = read_run(run_dir)
    if config["model"] in GENERATIVE_MODELS:
        if data_source is not None:
            raise ValueError("a DCGAN run is scored against its own data; leave out --data")
        from bigmodels.gan_runs import evaluate_gan_run

        return evaluate_gan_run(run_dir, config)
    dataset = load_run_dataset(run_dir, config, data_source)
    model = load_run_model(run_dir)
    trained_classes = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["class_names"]
    if dataset.info.class_names != trained_classes:
        raise ValueError(
            f"the data's classes ({', '.join(dataset.info.class_names)}) differ from the run's "
            f"({', '.join(trained_classes)}); evaluate on data with the same classes"
        )
    name = "evaluation" if data_source is None else "evaluation_other_data"
    evaluate_into(run_dir, dataset, model, name=name)
    record_entries(run_dir)  # evaluation_other_data.json is the run's own file too
    return json.loads((run_dir / f"{name}.json").read_text(encoding="utf-8"))
