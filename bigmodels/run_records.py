"""Typed records of the JSON files a run folder holds (config.json, metrics.json, report.json)."""

from typing import TypedDict

# Typed records of the JSON files a run folder holds. The keys on disk are contracts (the README,
# users' scripts and CI read them); these types name them in one place for the code.


class DataConfig(TypedDict, total=False):
    """config.json "data": how the data was loaded and split."""

    source: str | None
    batch_size: int
    seed: int
    image_size: list[int] | None
    text_columns: list[str | int]
    label_column: str | int
    test_source: str
    validation_source: str
    header: bool
    encoding: str


class TrainingConfig(TypedDict):
    """config.json "training": the settings of the fit."""

    epochs: int
    learning_rate: float
    seed: int
    patience: int
    augmentation: str
    batch_size: int
    strategy: dict


class RunConfig(TypedDict, total=False):
    """config.json: everything needed to rebuild and retrain the run."""

    model: str
    model_args: dict
    data: DataConfig
    training: TrainingConfig
    bigmodels_version: str
    model_chosen_by: str
    model_candidates: list[dict]  # --model auto: each candidate's validation and test accuracy
    tokenizer: dict  # text runs
    score_classifier: dict  # generator runs
    pruned_from: str
    pruning: dict
    distilled_from: dict


class RunMetrics(TypedDict, total=False):
    """metrics.json: test-split quality and what the data was (every task writes the data part)."""

    model: str  # the registered model (runs trained by train_run)
    test_accuracy: float  # classifiers
    num_test_examples: int
    classifier_score: float  # generators
    frechet_distance: float
    data_source: str
    class_names: list[str]
    counts: dict
    input_shape: list[int]
    preprocessing: dict
    skipped_files: list[dict]
    num_skipped_files: int
    repaired_rows: list[dict]
    num_repaired_rows: int
    epochs_trained: int
    training_seconds: float


class ParityGate(TypedDict, total=False):
    """report.json "parity_gate": the limit, whether every file is within it, and which are not."""

    max_accuracy_drop_points: float  # classifiers
    max_mean_abs_pixel_difference: float  # generators
    passed: bool
    failures: list[dict]


class ExportReport(TypedDict, total=False):
    """export/report.json: one entry per artifact, the chosen file, the gate and the bundle."""

    run: str
    model: str
    keras_accuracy: float  # classifiers
    num_test_examples: int
    keras: dict  # generators: the Keras generator's scores
    latency_threads: int
    artifacts: list[dict]
    chosen: dict
    parity_gate: ParityGate
    micro: dict  # the int8 file on TFLite Micro: flash, measured arena, ops, or why not
    bundle: dict
