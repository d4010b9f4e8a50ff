"""The export workflow: a SavedModel and one TFLite file per mode, verified, gated, reported, bundled.

One path for every kind of model: the run's task says what network is converted, which inputs
every file runs on, how a file's outputs compare with Keras and when a file fails the gate.
"""

import contextlib
import shutil
from pathlib import Path

from bigmodels.convert.artifacts import (
    choose_artifact,
    directory_size,
    gzip_size,
    saved_model_outputs,
    tflite_artifact,
)
from bigmodels.convert.bundle import shipped_artifact, write_bundle
from bigmodels.convert.micro import export_micro
from bigmodels.convert.tflite import export_saved_model, parse_qat_quantization, parse_quantization
from bigmodels.lite.runtime import TFLiteModel
from bigmodels.lite.selftest import SELFTEST_FORMAT, SELFTEST_FORMAT_VERSION
from bigmodels.run_folder import read_run, record_entries, staged_folder, write_json
from bigmodels.run_records import ExportReport
from bigmodels.tasks import task_of


@contextlib.contextmanager
def staged_export(run_dir: Path):
    """Yields a staging folder that becomes RUN_DIR/export only if the block succeeds.

    An existing RUN_DIR/export is replaced only when bigmodels wrote it (its marker file);
    a killed export's own staging folder is cleared, a user's ``export.partial`` is left alone.
    """
    with staged_folder(Path(run_dir) / "export", "export", overwrite=True) as staging:
        yield staging
    record_entries(run_dir)  # the run folder now also holds export/


def export_run(
    run_dir: str | Path,
    *,
    quantization: list[str] | tuple[str, ...] | None = None,
    max_accuracy_drop: float = 1.0,
    max_pixel_difference: float = 8.0,
    latency_repeats: int = 200,
    bundle_artifact: str | None = None,
) -> ExportReport:
    """Exports a run: SavedModel, one TFLite file per mode, each verified on the test split.

    Writes RUN_DIR/export/ (saved_model/, model_<mode>.tflite or generator_<mode>.tflite,
    report.json, bundle/ and bundle.zip, whose selftest.json holds stored test examples and the
    shipped file's outputs for them, micro/ when TFLite Micro runs the int8 file; for text also
    vocabulary.txt and tokenizer.json) atomically: the folder appears only once every artifact has
    been converted and checked. A text model's SavedModel takes raw strings (tokenizer in the
    graph); its TFLite files take int32 token ids.

    Args:
        run_dir: a finished run folder.
        quantization: TFLite modes to produce (default: the task's; float32, dynamic, float16
            and int8 for images and generators; all five, int16x8 included, for text; int8
            alone, with the learned ranges, for a quantization-aware run).
        max_accuracy_drop: parity gate of classifiers, in percentage points below the Keras
            accuracy.
        max_pixel_difference: parity gate of the DCGAN generator: mean absolute difference from
            Keras's images, in pixel levels (0-255), on the same latent vectors.
        latency_repeats: single-example invokes timed per artifact (1 thread).
        bundle_artifact: the TFLite file to ship in export/bundle/ and export/bundle.zip
            (default: the chosen one, the smallest within the parity gate).

    Returns:
        The report; ``report["parity_gate"]["passed"]`` is False when an artifact failed the gate;
        ``report["micro"]`` has the int8 file's flash, measured arena and ops on TFLite Micro, or
        one line (``"skipped"``) naming the op TFLite Micro lacks.

    Example:
        report = export_run("saved_models/digits", quantization=["float32", "int8"])
    """
    run_dir, config = read_run(run_dir)
    task = task_of(config["model"])
    if "qat" in config:  # the quantization-aware model converts with its learned int8 ranges
        modes = parse_qat_quantization(",".join(quantization) if quantization else None)
    else:
        modes = parse_quantization(
            ",".join(quantization or task.default_modes), allowed=task.quantization_modes
        )
    gates = {"max_accuracy_drop": max_accuracy_drop, "max_pixel_difference": max_pixel_difference}
    subject = task.export_subject(run_dir, config, gates)
    with staged_export(run_dir) as staging:
        for path in subject.extra_files:
            shutil.copy2(path, staging / path.name)
        artifacts = [saved_model_artifact(subject, staging / "saved_model")]
        for mode in modes:
            artifacts.append(tflite_entry(subject, mode, staging, latency_repeats))
        failures = [failure for failure in map(subject.gate_failure, artifacts) if failure]
        failed = {failure["file"] for failure in failures}
        shippable = [a for a in artifacts if a["format"] == "tflite" and a["file"] not in failed]
        report = {
            "run": str(run_dir),
            "model": config["model"],
            **subject.header,
            "latency_threads": 1,
            "artifacts": artifacts,
            "chosen": choose_artifact(shippable, subject.criterion, task.latency_budget_ms),
            "parity_gate": {**subject.gate, "passed": not failures, "failures": failures},
            "micro": export_micro(staging, artifacts, subject.examples),
        }
        shipped = shipped_artifact(report, bundle_artifact)
        selftest = None
        if shipped and subject.selftest is not None:
            selftest = selftest_document(task, subject, staging / shipped["file"])
        report["bundle"] = write_bundle(
            staging, run_dir, config, report, task, artifact_file=bundle_artifact, selftest=selftest
        )
        write_json(staging / "report.json", report)
    return report


def saved_model_artifact(subject, directory: Path) -> dict:
    """Writes the SavedModel and checks its serving signature as a server would call it."""
    export_saved_model(subject.model, directory, tokenizer=subject.serving_tokenizer)
    outputs, latency = saved_model_outputs(directory, subject.serving_inputs)
    return {
        "file": "saved_model",
        "format": "saved_model",
        "quantization": "none",
        "size_bytes": directory_size(directory),
        "gzip_bytes": sum(gzip_size(p) for p in directory.rglob("*") if p.is_file()),
        **subject.saved_model_fields,
        **subject.compare(subject.to_outputs(outputs)),
        "latency_ms": round(latency, 4),
        "latency_note": "TensorFlow's default thread pools",
    }


def tflite_entry(subject, mode: str, staging: Path, latency_repeats: int) -> dict:
    """Converts one TFLite file, times it and runs it on every example (ai-edge-litert)."""
    path = staging / f"{subject.file_prefix}_{mode}.tflite"
    entry, runner = tflite_artifact(
        subject.model, mode, path, subject.representative, subject.examples[0], latency_repeats
    )
    entry.update(subject.compare(subject.to_outputs(runner.predict(subject.examples))))
    if subject.record_input:
        entry["input"] = {
            "dtype": runner.input_dtype.name,
            "quantization": [float(q) for q in runner.input_detail["quantization"]],
        }
    return entry


def selftest_document(task, subject, model_path: Path) -> dict:
    """selftest.json: the task's stored examples and what the shipped file gives for them on
    ai-edge-litert, as one batch (the batch a device's self-test runs)."""
    examples = subject.selftest
    runner = TFLiteModel(model_path, num_threads=1)
    outputs = subject.to_outputs(runner.predict(examples.model_inputs))
    quantization = tuple(float(q) for q in runner.output_detail["quantization"])
    return {
        "format": SELFTEST_FORMAT,
        "format_version": SELFTEST_FORMAT_VERSION,
        "model_file": model_path.name,
        "examples": len(examples.model_inputs),
        "selection": examples.selection,
        "classes": examples.classes,
        "inputs": examples.stored,
        **task.selftest_expectations(examples, outputs, quantization, subject.gate),
    }
