"""Benchmark: SST-2 from scratch vs on a keras-hub text backbone (issue 19, part 4).

Usage:
    python benchmarks/transfer_sst2.py [--data ../shared/data/sst2] [--work /tmp/bm-transfer-sst2]
        [--epochs 2 --fine-tune-epochs 2] [--scratch train|reuse] [--from-runs]

Trains through the train app (apps/train.py) on phrases_train.tsv, selects on dev.tsv
(--validation-data) and tests on test.tsv (--test-data), then exports int8, dynamic-range
and int16x8 files (export_run: every file run on the test split with ai-edge-litert, 1 thread):
  - from scratch: the app's default text model (auto: the n-gram model or the Transformer,
    whichever validates better). ``--scratch reuse`` reads the Transformer's figures from
    benchmarks/results/text_sst2.json instead (measured before December 2026's changes);
  - --backbone a random-weight BertBackbone of bert_tiny_en_uncased's size (2 layers, hidden
    128, 2 heads, feed-forward 512), saved with save_to_preset: the control, since no pretrained
    preset can be downloaded here. Its WordPiece vocabulary is learned from the training texts by
    bigmodels' own learner (learn_vocabulary, the app's defaults), with BERT's special tokens.
bigmodels has no masked-token-pretrained text encoder of its own, so there is no third run.
--from-runs reuses runs WORK already holds, exported (their wall time is then not measured).
Writes benchmarks/results/transfer_sst2.json.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bigmodels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODES = ("int8", "dynamic", "int16x8")  # int16x8: what full-integer int8 costs an encoder, without the cost
BERT_TINY = {"num_layers": 2, "hidden_dim": 128, "num_heads": 2, "intermediate_dim": 512}
BERT_SPECIAL_TOKENS = ["[CLS]", "[SEP]", "[MASK]"]  # after our learner's [PAD] = 0 and [UNK] = 1
REAL_PRESET_COMMAND = (
    "python apps/train.py --data phrases_train.tsv --validation-data dev.tsv --test-data test.tsv "
    "--backbone bert_tiny_en_uncased --out runs/sst2_bert_tiny"
)
EXPECTED_REAL_PRESET = (
    "Not measured (no download here). Turc et al. 2019 (Well-Read Students Learn Better, the "
    "source of bert_tiny_en_uncased) report 83.2% on GLUE's SST-2 test (the same 1,821 sentences) for "
    "BERT-Tiny fine-tuned on these phrases: no more than the from-scratch default's 83.6%; its "
    "dynamic-range file would be about 4.5 MB (4.4M weights, 3.9M of them the 30,522-token embedding "
    "table), 9x the scratch model's, and its full-integer int8 file may lose points as the control's did. "
    "Larger presets (bert_small_en_uncased, 29M weights: 89.7% there) pay in size and latency."
)


def training_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [row["sentence"] for row in csv.DictReader(handle, delimiter="\t")]


def random_bert_tiny_preset(folder: Path, texts: list[str]) -> tuple[Path, int]:
    """A bert_tiny-sized BertBackbone with random weights and a vocabulary learned from ``texts``."""
    import keras
    import keras_hub

    learned = bigmodels.learn_vocabulary(texts, bigmodels.TokenizerSettings())
    vocabulary = learned[:2] + BERT_SPECIAL_TOKENS + learned[2:]
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), max_sequence_length=512, **BERT_TINY
    )
    backbone.save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(folder))
    return folder, len(vocabulary)


def app_run(name: str, data: Path, work: Path, flags: list[str], from_runs: bool = False) -> dict:
    """One train app run (its command and wall time), then an export of every file in MODES;
    ``from_runs``: reuses WORK/name when it already holds an exported run (no wall time then)."""
    command = [sys.executable, str(ROOT / "apps" / "train.py"), "--data", str(data / "phrases_train.tsv"),
               "--validation-data", str(data / "dev.tsv"), "--test-data", str(data / "test.tsv"),
               "--text-column", "sentence", "--label-column", "label", "--out", str(work / name),
               "--overwrite", *flags]  # fmt: skip
    shown = " ".join(["python", "apps/train.py", *command[2:]])
    exported = work / name / "export" / "report.json"
    wall = None
    if not (from_runs and exported.is_file()):
        started = time.perf_counter()
        log = work / f"{name}.log"  # the app's progress, to follow while it runs
        with open(log, "w") as output:
            result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT)
        wall = round(time.perf_counter() - started, 1)
        if result.returncode:
            error = (log.read_text().strip().splitlines() or ["(no message)"])[-1]
            return {"name": name, "command": shown, "refused": error, "train_wall_seconds": wall}
    run_dir, config = bigmodels.read_run(work / name)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if wall is None:
        report = json.loads(exported.read_text())
    else:
        report = bigmodels.export_run(run_dir, quantization=list(MODES))
    files = {a["quantization"]: a for a in report["artifacts"] if a["format"] == "tflite"}
    outcome = {
        "name": name,
        "command": shown,
        "keras_test_accuracy": metrics["test_accuracy"],
        **file_figures(files),
        "parameters": metrics["num_parameters"],
        "sequence_length": config["model_args"]["sequence_length"],
        "epochs_trained": metrics["epochs_trained"],
        "phases": [{k: p[k] for k in ("name", "epochs_trained", "best_epoch", "training_seconds")}
                   for p in metrics.get("phases", [])],
        "train_wall_seconds": wall,
    }  # fmt: skip
    print(json.dumps(outcome), flush=True)
    return outcome


def file_figures(files: dict) -> dict:
    """Test accuracy, size and 1-thread latency of each exported TFLite file."""
    fields = {"test_accuracy": "accuracy", "bytes": "size_bytes", "latency_ms": "latency_ms"}
    return {f"{mode}_{key}": files[mode][field] for mode in MODES for key, field in fields.items()}


def reused_scratch() -> dict:
    """The app's default text model on the same files, from benchmarks/results/text_sst2.json."""
    stored = json.loads((ROOT / "benchmarks" / "results" / "text_sst2.json").read_text())
    phrases = next(s for s in stored["settings"] if s["setting"] == "phrases")
    model = phrases["models"][0]
    files = {a["quantization"]: a for a in model["artifacts"] if a["format"] == "tflite"}
    return {
        "name": "from_scratch",
        "reused_from": "benchmarks/results/text_sst2.json (settings 'phrases', the app's default model)",
        "model": model["model"],
        "keras_test_accuracy": model["test_accuracy"],
        **file_figures(files),
        "parameters": model["num_parameters"],
        "sequence_length": model["model_args"]["sequence_length"],
        "epochs_trained": model["epochs_trained"],
        "train_wall_seconds": model["train_run_seconds"],
    }  # fmt: skip


def compare(control: dict, scratch: dict) -> dict | str:
    """The control's test accuracy less the scratch model's, in points, per artifact."""
    if "refused" in control:
        return f"the control was refused: {control['refused']}"
    keys = ("keras_test_accuracy", *(f"{mode}_test_accuracy" for mode in MODES))
    return {key: round(100 * (control[key] - scratch[key]), 2) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst2")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bm-transfer-sst2"))
    parser.add_argument("--epochs", type=int, default=2, help="phase 1 (frozen backbone) epochs")
    parser.add_argument("--fine-tune-epochs", type=int, default=2, help="phase 2 epochs")
    parser.add_argument("--scratch", choices=("train", "reuse"), default="train")
    parser.add_argument("--from-runs", action="store_true", help="reuse WORK's exported runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transfer_sst2.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    texts = training_texts(args.data / "phrases_train.tsv")
    preset, vocabulary_length = random_bert_tiny_preset(args.work / "random_bert_tiny_preset", texts)
    scratch = (
        reused_scratch()
        if args.scratch == "reuse"
        else app_run("from_scratch", args.data, args.work, [], args.from_runs)
    )
    epochs = ["--epochs", str(args.epochs), "--fine-tune-epochs", str(args.fine_tune_epochs)]
    control = app_run(
        "backbone_random_bert_tiny",
        args.data,
        args.work,
        ["--backbone", str(preset), *epochs],
        args.from_runs,
    )
    control["preset"] = {
        "class": "BertBackbone", **BERT_TINY, "weights": "random (seed 0)",
        "vocabulary_length": vocabulary_length,
        "vocabulary": "learned from phrases_train.tsv by bigmodels.learn_vocabulary (app defaults: 8,000 "
        "tokens at most, min frequency 2, lowercase), [CLS] [SEP] [MASK] added after [PAD] [UNK]; a real "
        "preset brings its own 30,522-token vocabulary",
        "epochs_capped": f"--epochs {args.epochs} --fine-tune-epochs {args.fine_tune_epochs}, to keep "
        "the run near 10 minutes on 2 CPU cores",
    }  # fmt: skip
    result = {
        "benchmark": "SST-2 (phrases_train.tsv 67,349 phrases; dev.tsv selects; test.tsv 1,821 sentences)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": [scratch, control],
        "control_minus_scratch_points": compare(control, scratch),
        "no_own_pretrained_text_encoder": "bigmodels has no masked-token-pretrained encoder of its own",
        "real_preset": {"command": REAL_PRESET_COMMAND, "expected": EXPECTED_REAL_PRESET},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
