"""What a kind of model supplies to the workflows: the parts that differ between kinds.

The workflows (train, evaluate, export, prune, distill) are written once; each asks the run's
task how it fits, how it is scored, how an exported file is checked against Keras, and what its
bundle says. A new kind of model (keyword spotting, detection, ...) is one new module that
subclasses ``Task`` and registers its builders with ``task=`` its name.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigmodels.run_folder import load_run_dataset
from bigmodels.run_records import ExportReport, RunConfig, RunMetrics

SELFTEST_EXAMPLES = 16  # a bundle's self-test holds 8 to 16 examples (fewer only if the test split has)
MIN_SELFTEST_EXAMPLES = 8


@dataclass
class SelfTestExamples:
    """The examples a bundle's self-test (selftest.json) stores, as the task chose them.

    Attributes:
        model_inputs: what the TFLite file takes for them (uint8 pixels, int32 ids, latents).
        stored: selftest.json's "inputs": what a device starts from (raw pixels, raw strings
            and their token ids, latent vectors), arrays in ``bigmodels.lite.selftest``'s form.
        classes: each example's class name (None where it has none).
        class_names: the model's classes, in output order.
        selection: how the examples were chosen, as selftest.json records it.
    """

    model_inputs: np.ndarray
    stored: dict
    classes: list
    class_names: list[str]
    selection: str


@dataclass
class ExportSubject:
    """What the export workflow converts, runs every file on, and how it judges each file.

    Attributes:
        model: the Keras network converted to every format (its input is what the device sends).
        examples: the inputs every artifact runs on (the test split, or fixed latent vectors).
        representative: calibration inputs for the full-integer modes.
        file_prefix: TFLite files are named PREFIX_MODE.tflite.
        compare: an artifact's outputs on ``examples`` -> its quality fields (accuracy and
            agreement, or pixel difference and scores).
        gate_failure: an artifact's report entry -> its parity-gate failure, or None.
        gate: the parity gate's settings, as report.json records them.
        criterion: why the chosen file qualifies ("within 1.0 points of the Keras accuracy").
        header: the report's fields before "artifacts" (the Keras model's own quality).
        serving_inputs: what the SavedModel's signature takes (raw strings for text models).
        serving_tokenizer: a keras-hub tokenizer to run inside the SavedModel, or None.
        saved_model_fields: how the SavedModel's entry describes its input and output.
        extra_files: run files the export and its bundle carry (the text vocabulary).
        to_outputs: a TFLite runner's raw outputs -> what ``compare`` takes.
        record_input: whether each TFLite entry records its input dtype and quantization.
        selftest: the examples the bundle's self-test stores (the shipped file runs on them).
    """

    model: object
    examples: np.ndarray
    representative: np.ndarray
    file_prefix: str
    compare: Callable[[np.ndarray], dict]
    gate_failure: Callable[[dict], dict | None]
    gate: dict
    criterion: str
    header: dict
    serving_inputs: np.ndarray
    serving_tokenizer: object = None
    saved_model_fields: dict = field(default_factory=dict)
    extra_files: tuple[Path, ...] = ()
    to_outputs: Callable[[np.ndarray], np.ndarray] = staticmethod(lambda outputs: outputs)
    record_input: bool = False
    selftest: SelfTestExamples | None = None


@dataclass
class BundleParts:
    """The task-specific parts of a bundle's metadata.json and model card."""

    input_spec: dict
    output_spec: dict
    metrics: dict
    card_facts: list[str]
    intended_use: str
    metadata: dict = field(default_factory=dict)
    files: tuple[Path, ...] = ()


class Task:
    """The base every kind of model extends. Attribute values are the kind's defaults.

    Attributes:
        name: the task's name, as bundle metadata records it.
        data_kind: the data its models train on ("image" or "text").
        default_learning_rate: peak learning rate when --learning-rate is not given.
        quantization_modes: the TFLite modes it can export; default_modes: those exported by default.
        can_distill: whether apps/distill.py applies.
        keeps_best_epoch: whether training keeps its best validation epoch (a GAN keeps its last).
        latency_budget_ms: 1-thread milliseconds per example the export's chosen file keeps to
            when a file at most 10% bigger than the smallest does (None: no budget).
    """

    name = ""
    data_kind = "image"
    default_model: str | None = None  # what train_run picks for data of this kind without --model
    default_learning_rate = 3e-3
    quantization_modes: tuple[str, ...] = ()
    default_modes: tuple[str, ...] = ()
    can_distill = False
    keeps_best_epoch = True
    latency_budget_ms: float | None = None
    optimizer_settings = True  # trains with --optimizer, --weight-decay and label smoothing
    carried_files: tuple[str, ...] = ()  # run files a pruned or distilled run copies from its source

    def load_data(
        self, run_dir: Path, config: RunConfig, source: str | None = None, all_as_test: bool = False
    ):
        """A finished run's data (or ``source``, shaped the same way): images at the model's size;
        ``all_as_test``: every example of it in the test split (``load_dataset``)."""
        image_size = (
            config["data"].get("image_size") or config["model_args"].get("input_shape", [None, None])[:2]
        )
        shape = config["model_args"].get("input_shape") or config["model_args"].get("image_shape")
        return load_run_dataset(
            config,
            source,
            image_size=tuple(image_size) if image_size and None not in image_size else None,
            channels=shape[-1] if shape else None,
            all_as_test=all_as_test,
        )

    def prepare_data(self, dataset, staging: Path, tokenizer):
        """The dataset as the model takes it (text learns its vocabulary into ``staging``)."""
        return dataset

    def default_augmentation(self, info) -> str:
        return "none"

    def default_training(self, info) -> dict:
        """Epochs, batch size and early-stopping patience when the caller gives none."""
        return {"epochs": 30, "batch_size": 64, "patience": 8}

    def default_model_args(self, info) -> dict:
        """Builder arguments this data suggests; the caller's own arguments override them."""
        return {}

    def companion_runs(self, config: dict, staging: Path, options: dict) -> list[dict]:
        """Runs to train into the staging folder before this one (train_run keyword arguments).

        ``options`` are the task's own train_run options (the DCGAN's score_classifier).
        """
        return []

    def complete_config(self, config: dict, staging: Path, dataset, options: dict) -> dict:
        """Adds what the task records about itself to config.json (after companion runs)."""
        return config

    def fit_into(
        self, staging: Path, model, dataset, config: RunConfig, *, verbose, callbacks, keep_best=True,
        start_is_candidate=False, saved_model=None,
    ) -> RunMetrics:  # fmt: skip
        """Trains ``model`` into ``staging``; writes metrics.json; returns its content.
        ``keep_best``: keep the best validation epoch (else the last); ``start_is_candidate``: the
        model as it starts counts as one (a fine-tune that does not help keeps its start);
        ``saved_model``: what model.keras holds when ``model`` wraps it (a distiller's student)."""
        raise NotImplementedError

    def evaluate(
        self, run_dir: Path, config: RunConfig, data_source: str | None, all_examples: bool = False
    ) -> dict:
        raise NotImplementedError

    def export_subject(self, run_dir: Path, config: RunConfig, gates: dict) -> ExportSubject:
        raise NotImplementedError

    def bundle_parts(
        self, config: RunConfig, report: ExportReport, artifact: dict, run_metrics: RunMetrics
    ) -> BundleParts:
        raise NotImplementedError

    def selftest_examples(self, dataset, config: RunConfig) -> SelfTestExamples:
        """The examples a bundle's self-test stores: 8 to 16, chosen across the classes, seeded."""
        raise NotImplementedError

    def selftest_expectations(
        self, examples: SelfTestExamples, outputs: np.ndarray, output_quantization, gate: dict
    ) -> dict:
        """selftest.json's "expected" and "tolerance": what the shipped file gave for ``examples``
        (``outputs``, after ``ExportSubject.to_outputs``) and how far a device may differ.

        Args:
            output_quantization: the file's output (scale, zero point); scale 0 for float output.
            gate: the export's parity gate (``ExportSubject.gate``).
        """
        raise NotImplementedError

    # What the apps print: the export table's task columns (title, report key, width, decimals),
    # the key of the pipeline's "quality" column, and one-line summaries.
    export_columns: tuple[tuple[str, str, int, int], ...] = ()
    quality_key = ""
    latency_title = "ms/ex"

    def keras_line(self, report: dict) -> str:
        """The export report's first line: the Keras model's own quality."""
        raise NotImplementedError

    def gate_failure_text(self, failure: dict, gate: dict) -> str:
        """Why a file failed the parity gate, after its name."""
        raise NotImplementedError

    def training_summary(self, metrics: dict) -> str:
        """The train app's closing line (before the run folder)."""
        raise NotImplementedError

    def evaluation_lines(self, report: dict) -> list[str]:
        """What the evaluate app prints."""
        raise NotImplementedError

    def pruning_target(self, model):
        """The network whose kernels pruning sparsifies."""
        return model

    def calibrate_quantized(self, trained, network, dataset) -> None:
        """Sets the activation ranges of ``network`` (QAT's, inside ``trained``) from the inputs
        the export calibrates PTQ's full-integer files on, so QAT starts where PTQ is."""
        raise NotImplementedError

    def with_quantization_aware(self, model, quantize):
        """(the model QAT fine-tunes, the network ``quantize`` made quantization-aware in it)."""
        network = quantize(model)
        return network, network

    def derived_config(self, config: dict, source_dir: Path) -> dict:
        """``config`` for a run derived from ``source_dir`` (pruned): paths made absolute."""
        return dict(config)

    def bundle_data_options(self, metadata: dict) -> dict:
        """``load_dataset``'s shape options for data a bundle of this task is scored on, from its
        metadata (``evaluate_bundle``); only classifiers are scored on labelled data."""
        raise ValueError(
            f"{self.name} bundles have no classes to score on labelled data; evaluate a classifier bundle"
        )


def data_fields(info) -> dict:
    """What metrics.json says about the data a run was trained on (every task records it)."""
    return {
        "data_source": info.source,
        "class_names": info.class_names,
        "counts": info.counts,
        "input_shape": list(info.input_shape),
        "preprocessing": info.preprocessing,
        "skipped_files": info.skipped_files,
        "num_skipped_files": len(info.skipped_files),
        "repaired_rows": info.repaired_rows,  # kept, with undecodable bytes replaced
        "num_repaired_rows": len(info.repaired_rows),
    }
