"""Writing deployment bundles: the chosen TFLite file, metadata.json, MODEL_CARD.md, and a .zip.

``bigmodels.lite.load_bundle`` reads them on a device without TensorFlow.
"""

import json
import shutil
import time
import zipfile
from pathlib import Path

from bigmodels import __version__
from bigmodels.lite.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, METADATA_FILE, sha256_of

BUNDLE_FOLDER = "bundle"
BUNDLE_ARCHIVE = "bundle.zip"
TEXT_FILES = ("vocabulary.txt", "tokenizer.json")


def _task(config: dict) -> str:
    from bigmodels.model_args import GENERATIVE_MODELS

    if config["model"] in GENERATIVE_MODELS:
        return "image_generation"
    return "text_classification" if "tokenizer" in config else "image_classification"


def _specs(task: str, config: dict, artifact: dict) -> tuple[dict, dict]:
    args = config["model_args"]
    if task == "image_generation":
        size = args["image_shape"]
        return (
            {"dtype": "float32", "shape": [None, args["latent_size"]], "value_range": "standard normal"},
            {
                "dtype": "uint8",
                "shape": [None, *size],
                "value_range": [0, 255],
                "meaning": "generated images",
            },
        )
    output = {"dtype": "float32", "shape": [None, args["num_classes"]], "meaning": "class probabilities"}
    if task == "text_classification":
        ids = {"dtype": "int32", "shape": [None, args["sequence_length"]]}
        return {**ids, "value_range": [0, args["vocabulary_size"] - 1], "padding_id": 0}, output
    quantization = artifact.get("input", {}).get("quantization", [0.0, 0])
    return (
        {
            "dtype": "uint8",
            "shape": [None, *args["input_shape"]],
            "value_range": [0, 255],
            "note": "raw pixels; the runtime quantizes them for an int8 file"
            if quantization[0]
            else "raw pixels; resizing and rescaling happen inside the model",
        },
        output,
    )


def _metrics(task: str, report: dict, artifact: dict, run_metrics: dict) -> dict:
    common = {
        "size_bytes": artifact["size_bytes"],
        "gzip_bytes": artifact["gzip_bytes"],
        "latency_ms_1_thread": artifact.get("latency_ms"),
    }
    if task == "image_generation":
        return {
            **common,
            "classifier_score": artifact["classifier_score"],
            "frechet_distance": artifact["frechet_distance"],
            "mean_abs_pixel_difference_from_keras": artifact["mean_abs_pixel_difference"],
            "score_classifier": run_metrics.get("score_classifier"),
        }
    return {
        **common,
        "test_accuracy": artifact["accuracy"],
        "keras_test_accuracy": report["keras_accuracy"],
        "agreement_with_keras": artifact["agreement"],
        "num_test_examples": report["num_test_examples"],
    }


INTENDED_USE = {
    "image_generation": (
        "Generates images like its training data, for augmentation, demos and tests. It reproduces "
        "that data's biases and cannot produce what it never saw. The scores come from a CNN trained "
        "on the same data, so they measure likeness to that data, not realism in general."
    ),
    "classification": (
        "Classifies inputs like its training data into the classes above, and only those: anything "
        "else still gets one of these labels, so check the score. The accuracy holds for data like "
        "the test split; other cameras, lighting, languages or writing styles can lower it. Measure "
        "on your own data before relying on it."
    ),
}


def _model_card(metadata: dict, run_metrics: dict, config: dict) -> str:
    task, metrics = metadata["task"], metadata["metrics"]
    facts = [
        f"Model file: `{metadata['model_file']}` ({metadata['quantization']}), "
        f"{metrics['size_bytes']:,} bytes ({metrics['gzip_bytes']:,} gzipped)",
        f"Latency: {metrics['latency_ms_1_thread']} ms per example, 1 thread, on the export machine",
        f"Data source: `{run_metrics.get('data_source')}`; examples per split: {run_metrics.get('counts')}",
    ]
    if task == "image_generation":
        scorer = run_metrics["score_classifier"]
        facts.append(
            f"Quality: classifier score {metrics['classifier_score']} (maximum "
            f"{run_metrics.get('max_classifier_score')}), Fréchet distance {metrics['frechet_distance']} "
            f"on the penultimate features of the scoring CNN (`{scorer['run']}`, test accuracy "
            f"{scorer['test_accuracy']})"
        )
    else:
        facts += [
            f"Test split: {run_metrics.get('test_split')}",
            f"Test accuracy: {metrics['test_accuracy']:.4f} on {metrics['num_test_examples']} examples "
            f"(Keras model {metrics['keras_test_accuracy']:.4f}, top-1 agreement "
            f"{metrics['agreement_with_keras']:.4f})",
            f"Classes: {', '.join(metadata['class_names'])}",
        ]
    if task == "text_classification":
        tokenizer = config["tokenizer"]
        facts.append(
            f"Tokenizer: WordPiece, {tokenizer['vocabulary_length']} tokens, {tokenizer['sequence_length']} "
            f"ids per text (longer texts are cut), lowercase={tokenizer['lowercase']}, "
            f"strip_accents={tokenizer['strip_accents']}"
        )
    use = INTENDED_USE["image_generation" if task == "image_generation" else "classification"]
    return "\n".join(
        [
            f"# Model card: {metadata['family']} ({task.replace('_', ' ')})",
            "",
            *(f"- {fact}" for fact in facts),
            "",
            "## Intended use and limits",
            "",
            use,
            "",
            f"Made by bigmodels {__version__}; metadata.json has the machine-readable details.",
            "",
        ]
    )


def write_bundle(export_dir: Path, run_dir: Path, config: dict, report: dict, *, artifact_file=None) -> dict:
    """Writes EXPORT_DIR/bundle/ and EXPORT_DIR/bundle.zip for the chosen (or named) artifact.

    Returns:
        {"folder", "archive", "artifact"} or {"folder": None, "reason"} when no file qualifies.
    """
    name = artifact_file or report["chosen"]["file"]
    if name is None:
        return {"folder": None, "reason": "no TFLite file passed the parity gate; nothing to ship"}
    artifact = next((a for a in report["artifacts"] if a["file"] == name), None)
    if artifact is None or artifact["format"] != "tflite":
        tflite = [a["file"] for a in report["artifacts"] if a["format"] == "tflite"]
        raise ValueError(f"no TFLite artifact named '{name}'; choose one of {', '.join(tflite)}")
    task = _task(config)
    run_metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    folder = export_dir / BUNDLE_FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copy2(export_dir / name, folder / name)
    input_spec, output_spec = _specs(task, config, artifact)
    metadata = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "task": task,
        "family": config["model"],
        "model_file": name,
        "quantization": artifact["quantization"],
        "input": input_spec,
        "output": output_spec,
        "class_names": run_metrics.get("class_names") or [],
        "preprocessing": run_metrics.get("preprocessing", {}),
        "metrics": _metrics(task, report, artifact, run_metrics),
        "model_args": config["model_args"],
        "bigmodels_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if task == "text_classification":
        for text_file in TEXT_FILES:
            shutil.copy2(export_dir / text_file, folder / text_file)
        metadata["tokenizer"] = {
            **config["tokenizer"],
            "vocabulary_file": TEXT_FILES[0],
            "settings_file": TEXT_FILES[1],
        }
    if task == "image_generation":
        metadata["latent_size"] = config["model_args"]["latent_size"]
        if config["model_args"].get("code_from_labels"):  # generate(label=...) can pick the class
            metadata["class_code"] = {
                "latent_entries": config["model_args"]["code_classes"],
                "rule": "the class drawn is the index of the largest of the first latent_entries values",
            }
    (folder / "MODEL_CARD.md").write_text(_model_card(metadata, run_metrics, config), encoding="utf-8")
    metadata["files"] = {
        path.name: {"sha256": sha256_of(path), "size_bytes": path.stat().st_size}
        for path in sorted(folder.iterdir())
    }
    (folder / METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    archive = export_dir / BUNDLE_ARCHIVE
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle_zip:
        for path in sorted(folder.iterdir()):
            bundle_zip.write(path, f"{BUNDLE_FOLDER}/{path.name}")
    return {"folder": BUNDLE_FOLDER, "archive": BUNDLE_ARCHIVE, "artifact": name}
