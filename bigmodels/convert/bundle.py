"""Writing deployment bundles: the chosen TFLite file, metadata.json, MODEL_CARD.md, selftest.json
(the shipped file's expected outputs on stored examples), and a .zip.

``bigmodels.lite.load_bundle`` reads them on a device without TensorFlow.
"""

import json
import shutil
import time
import zipfile
from pathlib import Path

from bigmodels import __version__
from bigmodels.lite.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, METADATA_FILE, sha256_of
from bigmodels.lite.selftest import SELFTEST_FILE

BUNDLE_FOLDER = "bundle"
BUNDLE_ARCHIVE = "bundle.zip"


def micro_facts(micro: dict | None) -> list[str]:
    """The model card's line on microcontrollers, from the export report's "micro" entry."""
    if not micro:
        return []
    if micro.get("folder"):
        return [
            f"Microcontrollers (TensorFlow Lite Micro): `{micro['file']}` takes {micro['flash_bytes']:,} "
            f"bytes of flash and a {micro['arena_bytes']:,}-byte tensor arena (measured with tflite-micro's "
            f"interpreter); `export/{micro['folder']}/` has the C array and its op resolver"
        ]
    return [f"Microcontrollers (TensorFlow Lite Micro): not available: {micro['skipped']}"]


def _model_card(metadata: dict, run_metrics: dict, parts, micro: dict | None = None) -> str:
    metrics = metadata["metrics"]
    facts = [
        f"Model file: `{metadata['model_file']}` ({metadata['quantization']}), "
        f"{metrics['size_bytes']:,} bytes ({metrics['gzip_bytes']:,} gzipped)",
        f"Latency: {metrics['latency_ms_1_thread']} ms per example, 1 thread, on the export machine",
        *micro_facts(micro),
        f"Data source: `{run_metrics.get('data_source')}`; examples per split: {run_metrics.get('counts')}",
        *parts.card_facts,
    ]
    if "selftest" in metadata:
        facts.append(
            f"Self-test: `{metadata['selftest']['file']}` holds {metadata['selftest']['examples']} "
            "examples and this file's outputs for them; check a device with "
            "`python apps/predict.py --bundle BUNDLE --selftest` or `load_bundle(BUNDLE).selftest()`"
        )
    return "\n".join(
        [
            f"# Model card: {metadata['family']} ({metadata['task'].replace('_', ' ')})",
            "",
            *(f"- {fact}" for fact in facts),
            "",
            "## Intended use and limits",
            "",
            parts.intended_use,
            "",
            f"Made by bigmodels {__version__}; metadata.json has the machine-readable details.",
            "",
        ]
    )


def shipped_artifact(report: dict, artifact_file: str | None = None) -> dict | None:
    """The report entry of the TFLite file a bundle ships: ``artifact_file``, or the chosen one;
    None when no file passed the parity gate.

    Raises:
        ValueError: ``artifact_file`` names no TFLite artifact of the report.
    """
    name = artifact_file or report["chosen"]["file"]
    if name is None:
        return None
    artifact = next((a for a in report["artifacts"] if a["file"] == name), None)
    if artifact is None or artifact["format"] != "tflite":
        tflite = [a["file"] for a in report["artifacts"] if a["format"] == "tflite"]
        raise ValueError(f"no TFLite artifact named '{name}'; choose one of {', '.join(tflite)}")
    return artifact


def write_bundle(
    export_dir: Path, run_dir: Path, config: dict, report: dict, task, *, artifact_file=None, selftest=None
) -> dict:
    """Writes EXPORT_DIR/bundle/ and EXPORT_DIR/bundle.zip for the chosen (or named) artifact.

    ``task`` (the run's, from ``bigmodels.tasks``) supplies what differs by kind of model: the
    input and output spec, the quality metrics, the model card's facts and extra files.
    ``selftest`` is selftest.json's content (``bigmodels.lite.selftest``): stored examples and
    the shipped file's outputs for them; metadata.json names it under "selftest".

    Returns:
        {"folder", "archive", "artifact", "selftest"} or {"folder": None, "reason"} when no file
        qualifies.
    """
    artifact = shipped_artifact(report, artifact_file)
    if artifact is None:
        return {"folder": None, "reason": "no TFLite file passed the parity gate; nothing to ship"}
    name = artifact["file"]
    run_metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    parts = task.bundle_parts(config, report, artifact, run_metrics)
    folder = export_dir / BUNDLE_FOLDER
    shutil.rmtree(folder, ignore_errors=True)  # inside the export's own staging folder
    folder.mkdir()
    for file_name in (name, *parts.files):
        shutil.copy2(export_dir / file_name, folder / file_name)
    metadata = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "task": task.name,
        "family": config["model"],
        "model_file": name,
        "quantization": artifact["quantization"],
        "input": parts.input_spec,
        "output": parts.output_spec,
        "class_names": run_metrics.get("class_names") or [],
        "preprocessing": run_metrics.get("preprocessing", {}),
        "metrics": {
            "size_bytes": artifact["size_bytes"],
            "gzip_bytes": artifact["gzip_bytes"],
            "latency_ms_1_thread": artifact.get("latency_ms"),
            **parts.metrics,
        },
        "model_args": config["model_args"],
        "bigmodels_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **parts.metadata,
    }
    if selftest is not None:
        (folder / SELFTEST_FILE).write_text(json.dumps(selftest, ensure_ascii=False) + "\n", encoding="utf-8")
        metadata["selftest"] = {"file": SELFTEST_FILE, "examples": selftest["examples"]}
    card = _model_card(metadata, run_metrics, parts, report.get("micro"))
    (folder / "MODEL_CARD.md").write_text(card, encoding="utf-8")
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
    written = {"folder": BUNDLE_FOLDER, "archive": BUNDLE_ARCHIVE, "artifact": name}
    return {**written, "selftest": SELFTEST_FILE} if selftest is not None else written
