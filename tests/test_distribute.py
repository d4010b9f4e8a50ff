"""tf.distribute: MirroredStrategy over 2 logical CPUs for every family; two workers on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_reviews_csv

ROOT = Path(__file__).resolve().parents[1]


def app_command(*args):
    return [sys.executable, str(ROOT / "apps" / "train.py"), *map(str, args)]


def environment(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


FAMILIES = {
    # The plain tail's gate is a variable the input pipeline reads: created under the strategy too.
    "cnn": ["--data", "digits", "--augmentation", "crop_flip_cutout", "--plain-last-epochs", "1"],
    "text": ["--text-column", "title", "body", "--label-column", "sentiment", "--width", "16"],
    # Conditioned on the class: the labelled pipeline, and scores that compare generated images
    # with the classes asked for (Keras's predict_on_batch duplicated rows under this strategy).
    "dcgan": [
        "--model",
        "dcgan",
        "--data",
        "digits",
        "--latent-size",
        "16",
        "--base-filters",
        "8",
        "--code-from-labels",
    ],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_mirrored_strategy_on_two_logical_cpus_trains_each_family(tmp_path, family):
    arguments = list(FAMILIES[family])
    if family == "text":
        arguments += ["--data", write_reviews_csv(tmp_path / "reviews.csv", 120)]
    out = tmp_path / "run"
    command = app_command(
        *arguments, "--strategy", "mirrored", "--logical-cpus", "2", "--out", out, "--epochs", "2"
    )
    result = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=600)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["strategy"] == {"name": "mirrored", "replicas": 2}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2
    if family == "dcgan":
        assert 0.0 <= metrics["code_accuracy"] <= 1.0
    if family == "cnn":
        assert config["training"]["plain_last_epochs"] == 1


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def test_two_workers_train_together_and_only_the_chief_writes(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    out = tmp_path / "run"
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        command = app_command("--data", "digits", "--strategy", "multi_worker", "--out", out, "--epochs", "2")
        processes.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment(TF_CONFIG=tf_config),
                cwd=tmp_path,
            )
        )
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["strategy"] == {"name": "multi_worker", "replicas": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing else, no worker folder
    assert f"run folder: {out}" in outputs[0][0] and f"run folder: {out}" in outputs[1][0]


def test_multi_worker_without_tf_config_is_one_clear_error(tmp_path):
    env = environment()
    env.pop("TF_CONFIG", None)
    command = app_command("--strategy", "multi_worker", "--out", tmp_path / "run", "--epochs", "1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "TF_CONFIG" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
