"""Benchmark: training settings for a few hundred photos on our own backbone (or from scratch), over seeds.

Usage:
    python benchmarks/transfer_levers.py [--data ../shared/data/hymenoptera] [--seeds 0 1 2 3 4] \
        [--setting NAME JSON ...] [--work /tmp/bm-levers] [--from-scratch] [--threads N]

Each setting is train_run's keyword arguments on top of the app's defaults with
``--backbone cifar10_tiny`` (the small-set schedule: 30 frozen + 40 fine-tuning epochs at 48
pixels), e.g. ``--setting smoothing '{"label_smoothing": 0.1}'``. Every setting is trained once
per seed on train/ (its validation split carved from it, as the app does) and scored by the Keras
model on val/ as the test split, plain and averaged with the horizontally flipped photos. One
run's test accuracy moves by several points with the seed (49 validation photos pick the epoch),
so the mean over seeds is what compares settings; the seeds' models averaged (an
ensemble) shows how much of that spread averaging removes. Without --setting: the defaults and the
settings measured in December 2026. Writes benchmarks/results/transfer_levers.json.

``--from-scratch``: no backbone, the app's from-scratch defaults for a few hundred photos (issue
18). ``--test-resolutions 112 128 144``: each run's trained weights are also scored with the model
rebuilt to infer at each of those sides (``--resolution``; training untouched), as FixRes tests a
model trained on random-resized crops (``--training-resolution-scale``). ``--threads N``:
TensorFlow's thread pools (two one-thread invocations side by side use 2 cores better than one
with batches of 16; the figures differ a little from a 2-thread run's).
"""

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import bigmodels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "defaults": {},
    "label_smoothing_0.1": {"label_smoothing": 0.1},
    "dropout_0.5": {"model_args": {"dropout": 0.5}},
    "batch_32": {"batch_size": 32},
    "validation_10pct": {"data_options": {"validation_fraction": 0.1}},
    "fine_tune_last_stage": {"fine_tune_from": "stack2_a_conv"},
}


def accuracy_on_test(run_dir: Path, data: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """The Keras model's accuracy on the test split, plain and averaged with flipped photos; its
    probabilities and the labels (for the seeds' average)."""
    model = bigmodels.load_model(run_dir)
    images, labels = bigmodels.load_dataset(data, image_size=model.input_shape[1:3]).arrays["test"]
    plain = model.predict(images, verbose=0)
    flipped = model.predict(images[:, :, ::-1], verbose=0)
    accuracy = {
        "test_accuracy": round(float(np.mean(plain.argmax(1) == labels)), 4),
        "flip_averaged_test_accuracy": round(float(np.mean((plain + flipped).argmax(1) == labels)), 4),
    }
    return accuracy, plain, labels


def accuracy_by_resolution(run_dir: Path, data: str, sides: list[int]) -> dict:
    """The run's trained weights in the model rebuilt to infer at each side: {side: accuracy}."""
    trained = bigmodels.load_model(run_dir)
    _, config = bigmodels.read_run(run_dir)
    model_args = {k: v for k, v in config["model_args"].items() if k != "variant_chosen_by"}
    images, labels = bigmodels.load_dataset(data, image_size=trained.input_shape[1:3]).arrays["test"]
    scores = {}
    for side in sides:
        model = bigmodels.get_model(config["model"], **{**model_args, "resolution": side})
        model.set_weights(trained.get_weights())
        scores[str(side)] = round(float(np.mean(model.predict(images, verbose=0).argmax(1) == labels)), 4)
    return scores


def seeds_averaged(probabilities: list, labels: np.ndarray) -> dict:
    """Accuracy of the seeds' models averaged (an ensemble): all of them, and the mean over every
    three of them. When that stays near the single runs' mean, the runs miss the same photos
    (bias, not seed variance), which more runs cannot fix."""

    def accuracy(members):
        return float(np.mean(np.mean(members, axis=0).argmax(1) == labels))

    threes = [accuracy(trio) for trio in itertools.combinations(probabilities, 3)]
    return {
        "all_seeds_averaged_test_accuracy": round(accuracy(probabilities), 4),
        **({"three_seeds_averaged_test_accuracy": round(float(np.mean(threes)), 4)} if threes else {}),
    }


def one_setting(
    name: str, options: dict, data: str, work: Path, seeds: list[int], backbone: str | None, sides=()
) -> dict:
    runs, probabilities = [], []
    for seed in seeds:
        started = time.perf_counter()
        run_dir, metrics = bigmodels.train_run(
            None, data, work / name / f"seed{seed}", backbone=backbone, seed=seed,
            overwrite=True, verbose=0, **options,
        )  # fmt: skip
        accuracy, plain, labels = accuracy_on_test(run_dir, data)
        probabilities.append(plain)
        run = {"seed": seed, **accuracy, "epochs_trained": metrics["epochs_trained"],
               "train_wall_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        if sides:
            run["test_accuracy_by_resolution"] = accuracy_by_resolution(run_dir, data, sides)
        print(json.dumps({"setting": name, **run}), flush=True)
        runs.append(run)
    mean = {key: round(float(np.mean([run[key] for run in runs])), 4)
            for key in ("test_accuracy", "flip_averaged_test_accuracy")}  # fmt: skip
    mean.update(seeds_averaged(probabilities, labels))
    if sides:
        by_side = [run["test_accuracy_by_resolution"] for run in runs]
        mean["test_accuracy_by_resolution"] = {
            str(side): round(float(np.mean([scores[str(side)] for scores in by_side])), 4) for side in sides
        }
    return {"name": name, "options": options, "mean": mean, "runs": runs}


def _options(parser, name: str, text: str) -> dict:
    """One --setting's JSON object of train_run keyword arguments, or one line and exit 2."""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        parser.error(f"--setting {name}: {text!r} is not JSON ({error}); give an object such as "
                     '\'{"label_smoothing": 0.1}\'')  # fmt: skip
    if not isinstance(options, dict):
        parser.error(f"--setting {name}: give a JSON object of train_run keyword arguments, not {text!r}")
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "hymenoptera"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bm-levers"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--setting", nargs=2, action="append", metavar=("NAME", "JSON"),
                        help="train_run keyword arguments as JSON (repeatable)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transfer_levers.json")
    parser.add_argument("--from-scratch", action="store_true", help="no backbone: the from-scratch defaults")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: all cores)")
    parser.add_argument("--test-resolutions", type=int, nargs="+", default=[], metavar="SIDE",
                        help="also score each run's weights inferring at these sides (FixRes)")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    chosen = {name: _options(parser, name, options) for name, options in args.setting or []} or SETTINGS
    backbone = None if args.from_scratch else "cifar10_tiny"
    results = [
        one_setting(name, options, args.data, args.work, args.seeds, backbone, args.test_resolutions)
        for name, options in chosen.items()
    ]
    summary = {
        "benchmark": f"ants/bees {'from scratch' if backbone is None else 'on --backbone ' + backbone}: "
        "settings over seeds (Keras, val/ as test)",
        "threads": args.threads or os.cpu_count(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "target": {"accuracy_from_scratch": 0.80}
        if backbone is None
        else {"accuracy_from_our_backbone": 0.75},
        "settings": results,
    }
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    for result in results:
        print(f"{result['name']:<24} mean test {result['mean']['test_accuracy']:.4f} "
              f"(flip-averaged {result['mean']['flip_averaged_test_accuracy']:.4f}, "
              f"seeds averaged {result['mean']['all_seeds_averaged_test_accuracy']:.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
