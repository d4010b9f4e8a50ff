"""The evaluate workflow: recompute a finished run's test metrics, score it on other data, or
score a bundle's shipped TFLite file on labelled data, as a device runs it."""

from pathlib import Path

import numpy as np

from bigmodels.data import load_dataset
from bigmodels.data.loading import source_kind
from bigmodels.data.splits import NoTestSplitError
from bigmodels.lite import load_bundle
from bigmodels.quality.classification import classification_report, plot_confusion_matrix
from bigmodels.run_folder import check_output_folder, read_run, staged_folder, write_json
from bigmodels.tasks import TASKS, task_of
from bigmodels.tasks.classification import check_same_classes

EVALUATION_KIND = "report"  # the marker kind of the folder evaluate_bundle writes
SCORING_BATCH = 256
# How a CSV/TSV is read: argument -> the apps' flag, for the messages.
TEXT_COLUMN_FLAGS = {
    "text_columns": "--text-column",
    "label_column": "--label-column",
    "header": "--header",
    "encoding": "--encoding",
}


def evaluate_run(
    run_dir: str | Path,
    data_source: str | None = None,
    all_examples: bool = False,
    *,
    text_columns: list[str | int] | str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    encoding: str | None = None,
) -> dict:
    """Recomputes a run's test metrics and writes evaluation.json.

    Classifiers: accuracy, per-class precision/recall/F1 and the confusion matrix, on the run's
    test split or on ``data_source`` (same classes; written as evaluation_other_data.json): its
    own test split, or with ``all_examples`` every example it has (a folder of new photos).
    Generators: the quality scores of the saved generator on the run's fixed latent vectors.
    text_columns, label_column, header, encoding: how a text run's ``data_source`` CSV/TSV is
    read, as ``load_dataset`` takes them (default: as the run's own data was read).

    Example:
        report = evaluate_run("saved_models/digits")
    """
    run_dir, config = read_run(run_dir)
    task = task_of(config["model"])
    given = _given(
        {"text_columns": text_columns, "label_column": label_column, "header": header, "encoding": encoding}
    )
    if given:
        flags = ", ".join(TEXT_COLUMN_FLAGS[name] for name in given)
        if data_source is None:
            raise ValueError(f"{flags}: they say how --data is read; name the data to score")
        if task.data_kind != "text":
            raise ValueError(f"{flags}: only for text runs; this run classifies {task.data_kind}s")
        config = {**config, "data": {**config["data"], **given}}  # read --data this way, this once
    return task.evaluate(run_dir, config, data_source, all_examples)


def evaluate_bundle(
    bundle: str | Path,
    data_source: str,
    *,
    all_examples: bool = False,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    runtime: str = "litert",
    num_threads: int = 1,
    text_columns: list[str | int] | str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    encoding: str | None = None,
) -> dict:
    """Scores a classifier bundle's TFLite file on labelled data as a device runs it (ai-edge-litert,
    or TensorFlow Lite Micro with ``runtime="tflm"``): the shipped int8 file's own accuracy, not the
    Keras model's. Images are decoded and resized by the device's rule, texts tokenized by the
    bundle's tokenizer.

    Args:
        bundle: a bundle folder or .zip, a folder holding ``bundle/``, or a shipped name.
        data_source: any ``load_dataset`` source with the bundle's classes. Its own test split is
            scored (a test/ or val/ folder, MNIST's t10k files, CIFAR's test batch, a tfds test split); with
            ``all_examples``, every example it has.
        out_dir: a new folder for evaluation.json and confusion_matrix.png (None: nothing written).
        overwrite: replace an evaluation folder this function wrote before.
        text_columns, label_column, header, encoding: how a CSV/TSV is read, as ``load_dataset``
            takes them (default: the columns and encoding the bundle was trained on).

    Returns:
        ``classification_report``'s fields with data_source, test_split, num_skipped_files,
        bundle, model_family, model_file, quantization and runtime.

    Raises:
        FileNotFoundError / ValueError: a missing or broken bundle, a generator bundle, data of
            another kind or other classes, a source without a test split of its own (pass
            ``all_examples``), or an ``out_dir`` bigmodels may not write.

    Example:
        report = evaluate_bundle("cifar10_tiny", "path/to/cifar10/test", all_examples=True)
    """
    if out_dir is not None:  # refused before minutes of loading, not after
        check_output_folder(Path(out_dir), EVALUATION_KIND, overwrite=overwrite)
    loaded = load_bundle(bundle, num_threads=num_threads, runtime=runtime)
    given = {
        "text_columns": text_columns,
        "label_column": label_column,
        "header": header,
        "encoding": encoding,
    }
    options = {**TASKS[loaded.task].bundle_data_options(loaded.metadata), **_given(given)}
    dataset = _test_data(loaded, data_source, all_examples, options)
    features, labels = dataset.arrays["test"]
    probabilities = np.concatenate(
        [
            loaded.model.predict(loaded.prepare(features[start : start + SCORING_BATCH]))
            for start in range(0, len(labels), SCORING_BATCH)
        ]
    )
    report = classification_report(labels, probabilities.argmax(-1), loaded.class_names)
    report.update(
        data_source=dataset.info.source,
        test_split=dataset.info.test_split,
        num_skipped_files=len(dataset.info.skipped_files),
        bundle=str(bundle),
        model_family=loaded.metadata["family"],
        model_file=loaded.metadata["model_file"],
        quantization=loaded.metadata.get("quantization"),
        runtime=runtime,
    )
    if out_dir is not None:
        with staged_folder(out_dir, EVALUATION_KIND, overwrite=overwrite) as staging:
            write_json(staging / "evaluation.json", report)
            plot_confusion_matrix(report, staging / "confusion_matrix.png")
    return report


def _given(options: dict) -> dict:
    return {name: value for name, value in options.items() if value is not None}


def _test_data(bundle, source: str, all_examples: bool, options: dict):
    """``source``'s test split (or every example), checked against the bundle's kind and classes."""
    kind = TASKS[bundle.task].data_kind
    _check_kind(source, source_kind(source), kind)  # before reading it with the other kind's options
    try:
        # Only the source's own test split: the bundle does not say how its run carved one, and
        # a guessed share could hold the very examples it was trained on.
        dataset = load_dataset(source, all_as_test=all_examples, own_test_only=not all_examples, **options)
    except NoTestSplitError as error:
        raise ValueError(f"{error}; score every example of it with --all") from None
    _check_kind(source, dataset.info.kind, kind)  # a tfds name tells its kind once loaded
    check_same_classes(dataset.info.class_names, bundle.class_names, "the bundle's")
    return dataset


def _check_kind(source: str, found: str | None, wanted: str) -> None:
    if found not in (None, wanted):
        raise ValueError(f"{source}: {found} data, but the bundle classifies {wanted}s; give {wanted} data")
