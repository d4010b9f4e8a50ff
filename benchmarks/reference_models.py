"""Makes the shipped reference bundles in saved_models/<name>/ with the apps, and says how.

Usage:
    python benchmarks/reference_models.py cifar10_tiny [mnist_cnn mnist_cgan sst2_text] \
        [--data ../shared/data] [--work /tmp/bigmodels-reference] [--from-runs]

For each name: runs the app commands listed in REFERENCES (train, then export) into
WORK/<name>, then copies the run's export/bundle/ and bundle.zip into saved_models/<name>/, with
run/ (model.keras without optimizer state, config.json, metrics.json: what --backbone reuses) for
the image classifiers, and writes saved_models/<name>/README.md (what it is, its figures, the
exact commands, one command to try it). --from-runs skips training and export when WORK/<name>
already holds an exported run (the figures then come from that run). Only the shipped TFLite
file goes into the bundle.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
QUALITY_KEYS = ("accuracy", "classifier_score", "frechet_distance", "code_accuracy")
# Each reference: the data it names (under --data), the commands that made it ({data}, {work}
# filled in), what the card says it is for, and how to try it.
REFERENCES = {
    "cifar10_tiny": {
        "title": "CIFAR-10 classifier for microcontrollers (MLPerf Tiny's image-classification bar)",
        "data": "cifar10 (the 50,000-image training split as JPEG class folders; 10% held out as test, "
        "5% of the rest for validation)",
        "commands": [
            "apps/train.py --recipe cifar10_tiny --data {data}/cifar10 --test-fraction 0.1 "
            "--validation-fraction 0.05 --out {work}/cifar10_tiny",
            "apps/export.py --run {work}/cifar10_tiny --quantization int8",
        ],
        "try": "python apps/predict.py --bundle saved_models/cifar10_tiny photo.jpg",
        "keep_run": True,
    },
    "mnist_cnn": {
        "title": "MNIST digit classifier (compact CNN, int8, runs on TensorFlow Lite Micro)",
        "data": "mnist (IDX files: 60,000 training digits, MNIST's own 10,000-digit test split)",
        "commands": [
            "apps/train.py --recipe mnist_cnn --data {data}/mnist --out {work}/mnist_cnn",
            "apps/export.py --run {work}/mnist_cnn --quantization int8",
        ],
        "try": "python apps/predict.py --bundle saved_models/mnist_cnn digit.png",
        "keep_run": True,
    },
    "mnist_cgan": {
        "title": "MNIST digit generator conditioned on the class (DCGAN, AC-GAN-style code)",
        "data": "mnist (IDX files; scored by the mnist_cnn reference run's classifier)",
        "commands": [
            "apps/train.py --model dcgan --code-from-labels --epochs 10 --data {data}/mnist "
            "--score-classifier {work}/mnist_cnn --out {work}/mnist_cgan",
            "apps/export.py --run {work}/mnist_cgan",
        ],
        "try": "python apps/predict.py --bundle saved_models/mnist_cgan --count 16 --label 7 --out sevens/",
        "keep_run": False,
    },
    "sst2_text": {
        "title": "English sentiment classifier (SST-2, the train app's default text model)",
        "data": "sst2 (phrases_train.tsv: 67,349 phrase-level labels; dev.tsv selects; test.tsv tests)",
        "commands": [
            "apps/train.py --data {data}/sst2/phrases_train.tsv --text-column sentence --label-column label "
            "--validation-data {data}/sst2/dev.tsv --test-data {data}/sst2/test.tsv --out {work}/sst2_text",
            "apps/export.py --run {work}/sst2_text --quantization dynamic",
        ],
        "try": 'echo "a gorgeous, witty film" | python apps/predict.py --bundle saved_models/sst2_text -',
        "keep_run": False,
    },
}


def formatted_commands(name: str, data: Path, work: Path) -> list[str]:
    """The reference's app commands with the data and work folders filled in (shell-quoted)."""
    folders = {"data": shlex.quote(str(data)), "work": shlex.quote(str(work))}
    return [command.format(**folders) for command in REFERENCES[name]["commands"]]


def run_commands(name: str, data: Path, work: Path) -> tuple[list[str], list[float]]:
    """Runs the reference's app commands from the project root; returns them and the wall
    seconds each took."""
    commands, seconds = formatted_commands(name, data, work), []
    for command in commands:
        print(f"$ python {command}", flush=True)
        started = time.perf_counter()
        subprocess.run([PYTHON, *shlex.split(command)], cwd=ROOT, check=True)
        seconds.append(round(time.perf_counter() - started, 1))
    return commands, seconds


def rebuilt_model(run_dir: Path):
    """The run's weights in a model built by today's builder (uncompiled: no optimizer state),
    checked to compute the same outputs; layers match by name."""
    import bigmodels

    trained = bigmodels.load_model(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    model_args = {k: v for k, v in config["model_args"].items() if k != "variant_chosen_by"}
    model = bigmodels.get_model(config["model"], **model_args)
    by_name = {layer.name: layer for layer in trained.layers}
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())
    inputs = np.random.default_rng(0).integers(0, 256, (8, *model.input_shape[1:]), dtype=np.uint8)
    difference = np.abs(model.predict(inputs, verbose=0) - trained.predict(inputs, verbose=0)).max()
    if difference > 1e-5:
        raise RuntimeError(f"the rebuilt model differs from the run's by {difference}")
    return model


def copy_reference(name: str, run_dir: Path, target: Path) -> None:
    """The run's bundle (folder and zip) and, for image classifiers, its model without the
    optimizer state, into ``target`` (replaced when it is a reference folder already)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copytree(run_dir / "export" / "bundle", target / "bundle")
    shutil.copy2(run_dir / "export" / "bundle.zip", target / "bundle.zip")
    if REFERENCES[name]["keep_run"]:
        (target / "run").mkdir()
        rebuilt_model(run_dir).save(target / "run" / "model.keras")
        for file in ("config.json", "metrics.json"):
            shutil.copy2(run_dir / file, target / "run" / file)


def figures(run_dir: Path) -> dict:
    """The card's figures: the run's metrics and the shipped file's row of the export report."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((run_dir / "export" / "report.json").read_text())
    chosen = report["chosen"]["file"]
    row = next(a for a in report["artifacts"] if a["file"] == chosen)
    return {"metrics": metrics, "shipped": row, "micro": report.get("micro"), "report": report}


def extra_figures(name: str, target: Path, run_dir: Path) -> dict:
    """Figures a card promises beyond the export report, measured on the shipped files."""
    from bigmodels.lite import load_bundle

    if name == "mnist_cgan":  # the digits drawn per class, read by the shipped classifier
        generator, classifier = load_bundle(target / "bundle"), load_bundle("mnist_cnn")
        recognised = [
            np.mean([p["label"] == d for p in classifier.predict(generator.generate(50, seed=0, label=d))])
            for d in generator.class_names
        ]
        return {"recognised_by_mnist_cnn": float(np.mean(recognised)), "recognised_per_class": recognised}
    if REFERENCES[name]["keep_run"]:
        import bigmodels

        return {
            "multiply_accumulates_per_image": bigmodels.multiply_accumulates(bigmodels.load_model(run_dir))
        }
    return {}


def write_reference_json(name: str, target: Path, commands: list[str], found: dict, extra: dict) -> None:
    """reference.json: the card's figures, for readers and for the tests that reproduce them."""
    row, metrics = found["shipped"], found["metrics"]
    figures = {
        "file": row["file"],
        "size_bytes": row["size_bytes"],
        "gzip_bytes": row["gzip_bytes"],
        "latency_ms_1_thread": row.get("latency_ms"),
        **{
            k: row[k]
            for k in ("accuracy", "classifier_score", "frechet_distance", "code_accuracy")
            if k in row
        },
        "test_accuracy": row.get("accuracy"),
        "num_parameters": metrics.get("num_parameters"),
        "training_seconds": metrics.get("training_seconds"),
        "test_split": metrics.get("test_split"),
        **({"micro": found["micro"]} if isinstance((found["micro"] or {}).get("arena_bytes"), int) else {}),
        **extra,
    }
    document = {"name": name, "title": REFERENCES[name]["title"], "data": REFERENCES[name]["data"],
                "commands": [f"python {c}" for c in commands], "figures": figures}  # fmt: skip
    (target / "reference.json").write_text(json.dumps(document, indent=1) + "\n")


def write_readme(name: str, target: Path, commands: list[str], found: dict) -> None:
    spec, row, metrics = REFERENCES[name], found["shipped"], found["metrics"]
    quality = {k: v for k, v in row.items() if k in QUALITY_KEYS + ("agreement", "mean_abs_pixel_difference")}
    lines = [
        f"# {name}: {spec['title']}",
        "",
        f"Data: {spec['data']}.",
        f"Shipped file: `bundle/{row['file']}` ({row['quantization']}), {row['size_bytes']:,} bytes "
        f"({row['gzip_bytes']:,} gzip), {row.get('latency_ms', 'n/a')} ms per example at 1 thread "
        "(ai-edge-litert, the machine that made it: 2 CPU cores).",
        f"Quality of the shipped file on the test split: `{json.dumps(quality)}`.",
        f"Keras model: {metrics.get('num_parameters', 'n/a')} weights; training "
        f"{metrics.get('training_seconds', 'n/a')} s on 2 CPU cores; "
        f"test split: {metrics.get('test_split')}.",
    ]
    micro = found["micro"] or {}
    if isinstance(micro.get("arena_bytes"), int):
        flash, arena = micro["flash_bytes"], micro["arena_bytes"]
        lines.append(f"TensorFlow Lite Micro: flash {flash:,} bytes, arena {arena:,} bytes.")
    lines += [
        "",
        "Try it:",
        "",
        "```bash",
        spec["try"],
        f"python apps/predict.py --bundle saved_models/{name} --selftest",
        "```",
        "",
        "Made with (from the project root; `benchmarks/reference_models.py` runs the same):",
        "",
        "```bash",
        *[f"python {c}" for c in commands],
        "```",
        "",
        "`bundle/MODEL_CARD.md` is the model card written at export (intended use, limits, metrics);",
        "`reference.json` holds these figures (tests/test_reference_bundles.py reproduces them).",
    ]
    (target / "README.md").write_text("\n".join(lines) + "\n")


def make_reference(name: str, data: Path, work: Path, from_runs: bool) -> dict:
    run_dir = work / name
    if from_runs and (run_dir / "export" / "report.json").is_file():
        commands = formatted_commands(name, data, work)
    else:
        commands, _ = run_commands(name, data, work)
    target = ROOT / "saved_models" / name
    copy_reference(name, run_dir, target)
    found = figures(run_dir)
    extra = extra_figures(name, target, run_dir)
    write_reference_json(name, target, commands, found, extra)
    write_readme(name, target, commands, found)
    print(f"{name}: saved_models/{name}/ ({found['shipped']['file']}, {found['shipped']['size_bytes']:,} B)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=sorted(REFERENCES))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bigmodels-reference"))
    parser.add_argument("--from-runs", action="store_true", help="reuse exported runs in --work")
    args = parser.parse_args()
    for name in args.names:
        make_reference(name, args.data, args.work, args.from_runs)


if __name__ == "__main__":
    main()
