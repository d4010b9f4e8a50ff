"""SavedModel and TFLite export (through SavedModel), verification on ai-edge-litert, report."""

import contextlib
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bigmodels.run_folder import record_entries, staged_folder, write_json

QUANTIZATION_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")
DEFAULT_IMAGE_MODES = ("float32", "dynamic", "float16", "int8")
DEFAULT_TEXT_MODES = QUANTIZATION_MODES


def parse_quantization(text: str, allowed=QUANTIZATION_MODES) -> list[str]:
    """Parses "float32,int8" into a list, refusing unknown modes with a clear message."""
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in allowed]
    if unknown or not modes:
        raise ValueError(
            f"unknown quantization mode(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(allowed)}"
        )
    return modes


def float_input_twin(model):
    """The same network with a float32 input, for full-integer conversion.

    A Keras functional model casts its input to the Input's dtype, so a uint8 model cannot be
    calibrated on float pixel values; full-integer TFLite needs a float input to quantize.
    """
    import keras

    twin_input = keras.Input(shape=model.input_shape[1:], dtype="float32", name=model.inputs[0].name)
    twin = keras.models.clone_model(model, input_tensors=twin_input)
    twin.set_weights(model.get_weights())
    return twin


def export_saved_model(model, directory: Path, *, tokenizer=None) -> Path:
    """Writes a SavedModel whose serving signature takes the model's own input dtype, or raw
    strings when a (keras-hub) ``tokenizer`` is given: the tokenizer then runs inside the graph.

    The endpoint calls the model with ``training=False`` explicitly: ``model.export`` traces a
    model that contains a Resizing layer with BatchNormalization in training mode (batch
    statistics and moving-average updates in the graph), which TFLite then runs wrongly.
    """
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    if tokenizer is None:
        spec = tf.TensorSpec([None, *model.input_shape[1:]], dtype=model.inputs[0].dtype, name="inputs")
        archive.add_endpoint("serve", lambda inputs: model(inputs, training=False), input_signature=[spec])
    else:
        if not tokenizer.built:
            tokenizer.build(None)  # a tokenizer has no weights; export still asks for a built layer
        archive.track(tokenizer)
        spec = tf.TensorSpec([None], dtype=tf.string, name="texts")
        archive.add_endpoint(
            "serve", lambda texts: model(tokenizer(texts), training=False), input_signature=[spec]
        )
    archive.write_out(str(directory), verbose=False)
    return directory


def _calibration_batches(examples: np.ndarray):
    """The converter's representative dataset: one example per batch."""

    def batches():
        for example in examples:
            yield [np.asarray(example[None])]

    return batches


def convert_tflite(model, mode: str, representative_inputs: np.ndarray) -> bytes:
    """Converts a Keras model to TFLite through a SavedModel.

    Args:
        model: the trained Keras model (uint8 images or int32 ids in).
        mode: "float32", "dynamic" (int8 weights), "float16" (float16 weights), "int8" (full
            integer, int8 input and output) or "int16x8" (16-bit activations, 8-bit weights).
        representative_inputs: training examples used to calibrate int8/int16x8 ranges.

    Returns:
        The TFLite flatbuffer bytes.
    """
    import tensorflow as tf

    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"unknown quantization mode '{mode}'; choose from {', '.join(QUANTIZATION_MODES)}")
    full_integer = mode in ("int8", "int16x8")
    # uint8 images are calibrated as float pixel values (token ids stay integers).
    floats_in = full_integer and model.inputs[0].dtype == "uint8"
    source = float_input_twin(model) if floats_in else model
    integer_ids_in = model.inputs[0].dtype in ("int32", "int64")
    with tempfile.TemporaryDirectory(prefix="bigmodels-savedmodel-") as directory:
        export_saved_model(source, Path(directory))
        if mode == "int16x8" and integer_ids_in:
            from bigmodels.tflite_int16 import convert_int16x8_integer_input

            return convert_int16x8_integer_input(directory, _calibration_batches(representative_inputs))
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if full_integer:
            converter.representative_dataset = _calibration_batches(
                representative_inputs.astype(np.float32) if floats_in else representative_inputs
            )
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if floats_in:
                converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        if mode == "int16x8":
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
        return converter.convert()


def gzip_size(path: Path) -> int:
    """Bytes after gzip -9: what a download over a slow link costs (and where pruning shows)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@contextlib.contextmanager
def staged_export(run_dir: Path):
    """Yields a staging folder that becomes RUN_DIR/export only if the block succeeds.

    An existing RUN_DIR/export is replaced only when bigmodels wrote it (its marker file);
    a killed export's own staging folder is cleared, a user's ``export.partial`` is left alone.
    """
    with staged_folder(Path(run_dir) / "export", "export", overwrite=True) as staging:
        yield staging
    record_entries(run_dir)  # the run folder now also holds export/


def finish_report(staging: Path, run_dir: Path, config: dict, report: dict, bundle_artifact) -> dict:
    """Adds the bundle of the chosen (or named) artifact and writes report.json."""
    from bigmodels.bundle import write_bundle

    report["bundle"] = write_bundle(staging, run_dir, config, report, artifact_file=bundle_artifact)
    write_json(staging / "report.json", report)
    return report


def _top1_report(probabilities, labels, keras_top1) -> dict:
    top1 = probabilities.argmax(-1)
    return {
        "accuracy": round(float(np.mean(top1 == labels)), 6),
        "agreement": round(float(np.mean(top1 == keras_top1)), 6),
    }


def _verify_saved_model(directory: Path, features, labels, keras_top1) -> dict:
    """Reloads the SavedModel as a server would and scores its serving signature."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(directory)).signatures["serving_default"]
    outputs = [
        next(iter(serve(tf.constant(features[i : i + 256])).values())).numpy()
        for i in range(0, len(features), 256)
    ]
    entry = _top1_report(np.concatenate(outputs), labels, keras_top1)
    timings = []
    single = tf.constant(features[:1])
    for index in range(60):
        started = time.perf_counter()
        serve(single)
        if index >= 10:
            timings.append((time.perf_counter() - started) * 1000.0)
    entry["latency_ms"] = round(float(np.median(timings)), 4)
    entry["latency_note"] = "TensorFlow's default thread pools"
    return entry


def choose_smallest(candidates: list[dict], criterion: str) -> dict:
    """The smallest of the TFLite files that passed the gate (``criterion`` says which), and why."""
    if not candidates:
        return {"file": None, "reason": f"no TFLite file is {criterion}"}
    best = min(candidates, key=lambda a: (a["size_bytes"], a["latency_ms"]))
    return {
        "file": best["file"],
        "reason": (
            f"smallest of the {len(candidates)} TFLite file(s) {criterion}: "
            f"{best['size_bytes'] / 1024:.1f} KB, {best['latency_ms']:.3f} ms per example"
        ),
    }


def tflite_artifact(model, mode: str, path: Path, representative, example, latency_repeats: int):
    """Converts, writes and times one TFLite file; returns (its report entry, its runner)."""
    from bigmodels.lite.runtime import TFLiteModel

    path.write_bytes(convert_tflite(model, mode, representative))
    runner = TFLiteModel(path, num_threads=1)
    latency = runner.latency_ms(example, repeats=latency_repeats)
    entry = {
        "file": path.name,
        "format": "tflite",
        "quantization": mode,
        "size_bytes": path.stat().st_size,
        "gzip_bytes": gzip_size(path),
        "latency_ms": round(latency["p50"], 4),
        "latency_p90_ms": round(latency["p90"], 4),
    }
    return entry, runner


def _representative(dataset, count: int = 200) -> np.ndarray:
    features, _ = dataset.arrays["train"]
    order = np.random.default_rng(dataset.seed).permutation(len(features))[:count]
    return features[order]


def export_run(
    run_dir: str | Path,
    *,
    quantization: list[str] | tuple[str, ...] | None = None,
    max_accuracy_drop: float = 1.0,
    max_pixel_difference: float = 8.0,
    latency_repeats: int = 200,
    bundle_artifact: str | None = None,
) -> dict:
    """Exports a run: SavedModel, one TFLite file per mode, each verified on the test split.

    Writes RUN_DIR/export/ (saved_model/, model_<mode>.tflite, report.json; for text also
    vocabulary.txt and tokenizer.json) atomically: the folder appears only once every artifact
    has been converted and checked. A text model's SavedModel takes raw strings (tokenizer in
    the graph); its TFLite files take int32 token ids.

    Args:
        run_dir: a finished run folder.
        quantization: TFLite modes to produce (default: float32, dynamic, float16 and int8 for
            images; all five, int16x8 included, for text).
        max_accuracy_drop: parity gate of classifiers, in percentage points below the Keras
            accuracy.
        max_pixel_difference: parity gate of the DCGAN generator: mean absolute difference from
            Keras's images, in pixel levels (0-255), on the same latent vectors.
        latency_repeats: single-example invokes timed per artifact (1 thread).
        bundle_artifact: the TFLite file to ship in export/bundle/ and export/bundle.zip
            (default: the chosen one, the smallest within the parity gate).

    Returns:
        The report; ``report["parity_gate"]["passed"]`` is False when an artifact dropped more
        than ``max_accuracy_drop`` points.

    Example:
        report = export_run("saved_models/digits", quantization=["float32", "int8"])
    """
    from bigmodels.model_args import GENERATIVE_MODELS
    from bigmodels.runs import load_run_dataset, load_run_model, read_run

    run_dir, config = read_run(run_dir)
    if config["model"] in GENERATIVE_MODELS:
        from bigmodels.gan_runs import export_generator_run

        return export_generator_run(
            run_dir,
            config,
            quantization=quantization,
            max_pixel_difference=max_pixel_difference,
            latency_repeats=latency_repeats,
            bundle_artifact=bundle_artifact,
        )
    is_text = "tokenizer" in config
    default_modes = DEFAULT_TEXT_MODES if is_text else DEFAULT_IMAGE_MODES
    modes = parse_quantization(",".join(quantization or default_modes))
    dataset = load_run_dataset(run_dir, config)
    model = load_run_model(run_dir)
    features, labels = dataset.arrays["test"]
    keras_top1 = model.predict(features, batch_size=256, verbose=0).argmax(-1)
    keras_accuracy = float(np.mean(keras_top1 == labels))
    with staged_export(run_dir) as staging:
        saved_model_dir = staging / "saved_model"
        served_inputs = features
        if is_text:
            from bigmodels.data.vocabulary import (
                TOKENIZER_FILE,
                VOCABULARY_FILE,
                keras_tokenizer,
                load_tokenizer,
            )

            for name in (VOCABULARY_FILE, TOKENIZER_FILE):
                shutil.copy2(run_dir / name, staging / name)
            export_saved_model(model, saved_model_dir, tokenizer=keras_tokenizer(*load_tokenizer(run_dir)))
            served_inputs = dataset.texts["test"].astype(str)
        else:
            export_saved_model(model, saved_model_dir)
        artifacts = [
            {
                "file": "saved_model",
                "format": "saved_model",
                "quantization": "none",
                "size_bytes": directory_size(saved_model_dir),
                "gzip_bytes": sum(gzip_size(p) for p in saved_model_dir.rglob("*") if p.is_file()),
                "input": "raw strings (tokenizer inside)" if is_text else "raw uint8 pixels",
                **_verify_saved_model(saved_model_dir, served_inputs, labels, keras_top1),
            }
        ]
        representative = _representative(dataset)
        for mode in modes:
            entry, runner = tflite_artifact(
                model, mode, staging / f"model_{mode}.tflite", representative, features[0], latency_repeats
            )
            entry.update(_top1_report(runner.predict(features), labels, keras_top1))
            entry["input"] = {
                "dtype": runner.input_dtype.name,
                "quantization": [float(q) for q in runner.input_detail["quantization"]],
            }
            artifacts.append(entry)
        failures = [
            {"file": a["file"], "drop_points": round((keras_accuracy - a["accuracy"]) * 100, 3)}
            for a in artifacts
            if (keras_accuracy - a["accuracy"]) * 100 > max_accuracy_drop
        ]
        failed = {failure["file"] for failure in failures}
        report = {
            "run": str(run_dir),
            "model": config["model"],
            "keras_accuracy": round(keras_accuracy, 6),
            "num_test_examples": int(len(labels)),
            "data_source": dataset.info.source,
            "test_split": dataset.info.test_split,
            "latency_threads": 1,
            "artifacts": artifacts,
            "chosen": choose_smallest(
                [a for a in artifacts if a["format"] == "tflite" and a["file"] not in failed],
                f"within {max_accuracy_drop} points of the Keras accuracy",
            ),
            "parity_gate": {
                "max_accuracy_drop_points": max_accuracy_drop,
                "passed": not failures,
                "failures": failures,
            },
        }
        finish_report(staging, run_dir, config, report, bundle_artifact)
    return report
