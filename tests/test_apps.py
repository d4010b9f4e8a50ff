"""The apps' contract: files written, one-line errors with exit code 2, nothing half-written."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_app_in_process, write_image_folder, write_reviews_csv

ROOT = Path(__file__).resolve().parents[1]


def run_app(name, *args, cwd=None, timeout=600):
    """apps/<name>.py in a fresh interpreter; ``timeout`` only guards against a hang."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(ROOT / "apps" / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_app_writes_a_run_and_evaluate_and_export_read_it(tmp_path):
    run_dir = tmp_path / "run"
    result = run_app(
        "train",
        "--model",
        "cnn_classifier",
        "--data",
        "digits",
        "--out",
        run_dir,
        "--epochs",
        "2",
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert f"run folder: {run_dir}" in result.stdout
    # Not a terminal: one line an epoch, no progress bar redrawn at every step.
    assert "━" not in result.stdout and "\r" not in result.stdout
    assert [line.startswith("Epoch 1/2") for line in result.stdout.splitlines()].count(True) == 1
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["seed"] == 3
    result = run_app("evaluate", "--run", run_dir)
    assert result.returncode == 0, result.stderr
    assert (run_dir / "evaluation.json").is_file() and (run_dir / "confusion_matrix.png").is_file()
    assert "precision" in result.stdout
    result = run_app(
        "export", "--run", run_dir, "--quantization", "float32,int8", "--max-accuracy-drop", "100"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((run_dir / "export" / "report.json").read_text())
    assert [a["file"] for a in report["artifacts"]] == [
        "saved_model",
        "model_float32.tflite",
        "model_int8.tflite",
    ]
    assert "model_int8.tflite" in result.stdout


def test_export_gate_failure_exits_non_zero_and_names_the_artifact(digits_run):
    result = run_app(
        "export", "--run", digits_run, "--quantization", "float32", "--max-accuracy-drop", "-100"
    )
    assert result.returncode == 1
    assert "model_float32.tflite" in result.stderr and "parity gate failed" in result.stderr


@pytest.mark.parametrize(
    "case",
    [
        "missing_path",
        "empty_class",
        "single_class",
        "unknown_model",
        "unknown_tfds",
        "zero_gan_width",
        "code_not_the_classes",
        "gan_optimizer",
        "gan_retrain",
        "test_fraction",
        "split_seed",
        "training_resolution_scale",
        "stacks_unmatched",
        "stacks_not_numbers",
        "stacks_on_mobile",
    ],
)
def test_train_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, case):
    data = tmp_path / "data"
    if case == "empty_class":
        write_image_folder(data, per_class=4)
        (data / "wasps").mkdir()
    elif case == "single_class":
        write_image_folder(data, per_class=4, classes=("ants",))
    arguments = {
        "missing_path": ["--data", tmp_path / "nowhere"],
        "empty_class": ["--data", data],
        "single_class": ["--data", data],
        "unknown_model": ["--model", "resnet9000"],
        "unknown_tfds": ["--data", "not_a_dataset_xyz"],
        "zero_gan_width": ["--model", "dcgan", "--discriminator-filters", "0"],
        "code_not_the_classes": ["--model", "dcgan", "--code-from-labels", "--code-classes", "3"],
        "gan_optimizer": ["--model", "dcgan", "--optimizer", "sgd", "--weight-decay", "0.01"],
        "gan_retrain": ["--model", "dcgan", "--retrain-on-all"],
        "test_fraction": ["--test-fraction", "1.5"],
        "split_seed": ["--split-seed", "-2"],
        "training_resolution_scale": ["--training-resolution-scale", "1.5"],
        "stacks_unmatched": ["--variant", "resnet", "--stack-filters", "12,32"],
        "stacks_not_numbers": ["--stack-filters", "12;32;64"],
        "stacks_on_mobile": ["--variant", "mobile", "--blocks-per-stack", "1,2,2"],
    }[case]
    out = tmp_path / "run"
    result = run_app_in_process("train", *arguments, "--out", out, "--epochs", "1")
    expected = {
        "missing_path": "does not exist",
        "empty_class": "wasps",
        "single_class": "at least two classes",
        "unknown_model": "unknown model 'resnet9000'",
        "unknown_tfds": "unknown dataset",
        "zero_gan_width": "discriminator_filters must be a positive number",
        "code_not_the_classes": "--code-classes equal to the data's 10 classes",
        "gan_optimizer": "--optimizer, --weight-decay: dcgan trains both networks with Adam",
        "gan_retrain": "--retrain-on-all: dcgan keeps its last epoch and has no validation split",
        "test_fraction": "--test-fraction must be a share between 0 and 1",
        "split_seed": "--split-seed must be a whole number, 0 or more",
        "training_resolution_scale": "training_resolution_scale must be in (0, 1], got 1.5",
        "stacks_unmatched": "need one number per stack, got (12, 32) and (1, 1, 1)",
        "stacks_not_numbers": "'12;32;64' is not comma-separated whole numbers",
        "stacks_on_mobile": "shape the resnet variant only, not 'mobile'",
    }[case]
    assert_one_line_error(result, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["data"] if data.exists() else [])


@pytest.mark.parametrize(
    "case, expected",
    [
        ("cnn_on_text", "takes images but the data is text"),
        ("wrong_column", "no column named 'review'"),
        ("no_usable_row", "no usable row"),
        ("columns_not_given", "--text-column"),
        ("attention_length_zero", "attention_length must be at least 1"),
    ],
)
def test_text_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, case, expected):
    data = write_reviews_csv(tmp_path / "reviews.csv", 20)
    if case == "no_usable_row":
        data.write_text("title,body,sentiment\nonly a title,,\n,,positive\n", encoding="utf-8")
    columns = ["--text-column", "title", "body", "--label-column", "sentiment"]
    arguments = {
        "cnn_on_text": ["--model", "cnn_classifier", *columns],
        "wrong_column": ["--text-column", "review", "--label-column", "sentiment"],
        "no_usable_row": columns,
        "columns_not_given": [],
        "attention_length_zero": ["--model", "transformer_classifier", *columns, "--attention-length", "0"],
    }[case]
    out = tmp_path / "run"
    result = run_app_in_process("train", "--data", data, *arguments, "--out", out, "--epochs", "1")
    assert_one_line_error(result, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv"]


def test_augmentation_on_text_is_refused_before_anything_trains(tmp_path, monkeypatch):
    # It was refused by the Transformer candidate of --model auto after the n-gram one had trained.
    import bigmodels.workflows.train

    for training in ("train_candidates", "_train_on_every_worker"):
        monkeypatch.setattr(bigmodels.workflows.train, training, lambda *a, **k: pytest.fail("trained"))
    data = write_reviews_csv(tmp_path / "reviews.csv", 20)
    columns = ["--text-column", "title", "body", "--label-column", "sentiment"]
    result = run_app_in_process(
        "train", "--data", data, *columns, "--augmentation", "shift", "--out", tmp_path / "a"
    )
    assert_one_line_error(result, "--augmentation shift shifts images; text takes --augmentation none")
    # No model named, and a model flag that keeps auto out: the text default model's settings.
    result = run_app_in_process(
        "train", "--data", data, *columns, "--depth", "1", "--augmentation", "shift", "--out", tmp_path / "c"
    )
    assert_one_line_error(result, "--augmentation shift shifts images; text takes --augmentation none")
    # A text model named: refused before the data is read (this path does not exist).
    missing = tmp_path / "missing.csv"
    model = ["--model", "transformer_classifier", "--augmentation", "crop_flip"]
    result = run_app_in_process("train", "--data", missing, *model, "--out", tmp_path / "b")
    assert_one_line_error(result, "--augmentation crop_flip shifts images; text takes --augmentation none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv"]


def test_text_apps_headerless_csv_by_index_train_evaluate_export(tmp_path):
    data = write_reviews_csv(tmp_path / "reviews.csv", 80, header=False)
    run_dir = tmp_path / "run"
    columns = ["--text-column", "0", "1", "--label-column", "2"]
    model = ["--model", "embedding_bag_classifier", "--width", "8"]
    result = run_app("train", "--data", data, *columns, *model, "--out", run_dir, "--epochs", "3")
    assert result.returncode == 0, result.stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["text_columns"] == [0, 1] and config["model_args"]["width"] == 8
    result = run_app("evaluate", "--run", run_dir)
    assert result.returncode == 0, result.stderr
    result = run_app("evaluate", "--run", run_dir, "--data", data, "--all")
    assert result.returncode == 0 and "on 80 examples" in result.stdout, result.stderr
    result = run_app(
        "export", "--run", run_dir, "--quantization", "float32,int16x8", "--max-accuracy-drop", "100"
    )
    assert result.returncode == 0, result.stderr
    assert "chosen: model_" in result.stdout
    report = json.loads((run_dir / "export" / "report.json").read_text())
    assert [a["file"] for a in report["artifacts"]][1:] == ["model_float32.tflite", "model_int16x8.tflite"]


@pytest.mark.parametrize("app", ["evaluate", "export"])
def test_run_that_is_not_a_run_folder(tmp_path, app):
    (tmp_path / "notes.txt").write_text("hello")
    result = run_app_in_process(app, "--run", tmp_path)
    assert_one_line_error(result, "is not a run folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_evaluate_all_without_data_is_one_line(digits_run):
    result = run_app_in_process("evaluate", "--run", digits_run, "--all")
    assert_one_line_error(result, "name the data")


def test_unknown_flag_is_one_line(tmp_path):
    result = run_app("train", "--out", tmp_path / "run", "--epochz", "3")
    assert_one_line_error(result, "--epochz")


def test_pipeline_chains_train_distill_prune_and_reports_every_artifact(tmp_path):
    out = tmp_path / "digits"
    chain = ["--distill", "width_multiplier=0.5", "--prune", "0.5", "--prune-epochs", "1"]
    gate = ["--quantization", "float32,int8", "--max-accuracy-drop", "100"]
    result = run_app("pipeline", "--data", "digits", "--out", out, "--epochs", "2", *chain, *gate)
    assert result.returncode == 0, result.stderr
    stages = ("trained ", "distilled ", "pruned ")
    table = [line.split()[:2] for line in result.stdout.splitlines() if line.startswith(stages)]
    rows = [stage for stage, artifact in table if artifact.endswith(".tflite") or artifact == "saved_model"]
    assert rows == ["trained"] * 3 + ["distilled"] * 3 + ["pruned"] * 3
    pruned = json.loads((tmp_path / "digits_student_pruned" / "metrics.json").read_text())
    assert pruned["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert (tmp_path / "digits_student" / "student_alone" / "model.keras").is_file()


def test_pipeline_prunes_clusters_and_trains_quantization_aware_into_one_int8_file(tmp_path):
    out = tmp_path / "digits"
    chain = ["--prune", "0.5", "--prune-epochs", "1", "--clusters", "8", "--cluster-epochs", "1", "--qat"]
    result = run_app("pipeline", "--data", "digits", "--out", out, "--epochs", "2", "--qat-epochs", "1",
                     *chain, "--quantization", "float32,int8", "--max-accuracy-drop", "100")  # fmt: skip
    assert result.returncode == 0, result.stderr
    qat_dir = tmp_path / "digits_pruned_clustered_qat"
    report = json.loads((qat_dir / "export" / "report.json").read_text())
    assert [a["file"] for a in report["artifacts"] if a["format"] == "tflite"] == ["model_int8.tflite"]
    clustered = json.loads((tmp_path / "digits_pruned_clustered" / "metrics.json").read_text())
    assert all(entry["distinct"] <= 8 for entry in clustered["distinct_values_per_weight"])
    qat_config = json.loads((qat_dir / "config.json").read_text())
    assert qat_config["clustering"]["clusters"] == 8
    assert qat_config["qat"]["kept"] == "the last epoch"  # its start, clustered again, is not PTQ's
    assert "qat " in result.stdout and "clustered " in result.stdout


@pytest.mark.parametrize(
    "app, arguments, expected",
    [
        ("prune", ["--schedule", "cubic"], "unknown schedule 'cubic'"),
        ("prune", ["--sparsity", "1.5"], "sparsity must be in [0, 1)"),
        ("prune", ["--layers", "lstm"], "unknown layer kind"),
        ("distill", ["--student-config", "width_multiplier"], "is not key=value"),
        ("distill", ["--student-config", "depth=2"], "no argument(s) depth"),
        ("distill", ["--student-config", " , "], "--student-config is empty"),
        ("cluster", ["--clusters", "1"], "--clusters must be at least 2"),
        ("cluster", ["--clusters", "100000"], "weights of the smallest clustered kernel"),
        ("qat", ["--quantization", "float16"], "use --quantization int8"),
    ],
)
def test_compression_apps_bad_input_is_one_line_exit_2(digits_run, tmp_path, app, arguments, expected):
    source = ["--teacher", digits_run] if app == "distill" else ["--run", digits_run]
    result = run_app_in_process(app, *source, "--out", tmp_path / "out", *arguments)
    assert_one_line_error(result, expected)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_qat_of_a_model_it_cannot_simulate_names_the_layer_and_writes_nothing(digits_run, tmp_path):
    import keras

    run = tmp_path / "recurrent"
    shutil.copytree(digits_run, run)
    pixels = keras.Input((8, 8, 1), dtype="uint8")
    rows = keras.layers.Reshape((8, 8))(keras.layers.Rescaling(1 / 255)(pixels))
    reader = keras.layers.LSTM(4, name="reader")(rows)
    keras.Model(pixels, keras.layers.Dense(10, activation="softmax")(reader)).save(run / "model.keras")
    result = run_app_in_process("qat", "--run", run, "--out", tmp_path / "out")
    assert_one_line_error(result, "cannot wrap layer 'reader' (LSTM)", "PTQ")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_qat_app_makes_text_and_generator_runs_quantization_aware(text_run, gan_run, tmp_path):
    for source, name in ((text_run, "text"), (gan_run, "gan")):
        result = run_app("qat", "--run", source, "--out", tmp_path / name, "--epochs", "1")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "quantization-aware Keras model: " in result.stdout
        report = json.loads((tmp_path / name / "export" / "report.json").read_text())
        assert [a["quantization"] for a in report["artifacts"] if a["format"] == "tflite"] == ["int8"]
        record = json.loads((tmp_path / name / "config.json").read_text())["qat"]
        assert record["quantized_weights"], record
        assert ("more than one standard error" in record["kept"]) is (name == "text"), record["kept"]


def test_pipeline_refuses_stages_the_model_cannot_take_before_training(tmp_path):
    result = run_app_in_process(
        "pipeline", "--data", "digits", "--out", tmp_path / "run", "--clusters", "100000", "--qat"
    )
    assert_one_line_error(result, "--clusters 100000", "more than the")
    assert "Epoch" not in result.stdout  # refused before the first epoch, not after training
    assert not any(tmp_path.iterdir())
