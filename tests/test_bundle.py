"""Bundles: the TF-free runtime reproduces the export report for every family; tampering is refused."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigmodels.lite import latents_for_class, load_bundle

ROOT = Path(__file__).resolve().parents[1]
BLOCK_TENSORFLOW = (
    "import sys\n"
    "for name in ('tensorflow', 'keras', 'keras_hub', 'tensorflow_text', 'tensorflow_datasets'):\n"
    "    sys.modules[name] = None  # any import of them now raises ImportError\n"
)
# Runs on the bundle with TensorFlow unimportable; prints what the test compares with the report.
DEVICE_SCRIPT = (
    BLOCK_TENSORFLOW
    + """
import json, numpy as np
from bigmodels.lite import load_bundle
bundle = load_bundle(sys.argv[1])
if bundle.task == "image_generation":
    drawn = {}
    if "class_code" in bundle.metadata:  # a generator conditioned on the class
        drawn["threes"] = bundle.generate(4, seed=3, label="3").tolist()
    print(json.dumps({"images": bundle.generate(5, seed=3).tolist(), **drawn}))
else:
    inputs = json.loads(open(sys.argv[2], encoding="utf-8").read())
    if bundle.task == "image_classification":
        inputs = np.asarray(inputs, dtype=np.uint8)
    print(json.dumps({"labels": [r["label"] for r in bundle.predict(inputs)]}))
"""
)


def exported_copy(run_dir: Path, tmp_path: Path, **export_args) -> tuple[Path, dict]:
    """Exports a copy of a shared run, so this test's export cannot disturb another's."""
    from bigmodels.workflows.export import export_run

    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    shutil.rmtree(copy / "export", ignore_errors=True)
    return copy, export_run(copy, latency_repeats=5, **export_args)


def run_on_device(bundle: Path, inputs_file: Path | None = None) -> dict:
    arguments = [sys.executable, "-c", DEVICE_SCRIPT, str(bundle)] + (
        [str(inputs_file)] if inputs_file else []
    )
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def artifact_in(report: dict, name: str) -> dict:
    return next(a for a in report["artifacts"] if a["file"] == name)


def load_run_data(run_dir):
    from bigmodels import read_run, task_of

    run_dir, config = read_run(run_dir)
    return task_of(config["model"]).load_data(run_dir, config)


def test_image_bundle_reproduces_the_report_without_tensorflow(digits_run, tmp_path):
    run_dir, report = exported_copy(digits_run, tmp_path, quantization=["float32", "int8"])
    bundle = run_dir / "export" / "bundle.zip"
    metadata = load_bundle(bundle).metadata
    assert metadata["model_file"] == report["bundle"]["artifact"] == report["chosen"]["file"]
    assert metadata["task"] == "image_classification" and metadata["class_names"] == [
        str(d) for d in range(10)
    ]
    assert metadata["input"]["dtype"] == "uint8" and metadata["input"]["shape"] == [None, 8, 8, 1]
    assert set(metadata["files"]) == {"MODEL_CARD.md", "selftest.json", metadata["model_file"]}
    images, labels = load_run_data(run_dir).arrays["test"]
    (tmp_path / "inputs.json").write_text(json.dumps(images.tolist()))
    predicted = run_on_device(bundle, tmp_path / "inputs.json")["labels"]
    accuracy = np.mean(np.asarray(predicted, dtype=int) == labels)
    assert accuracy == pytest.approx(artifact_in(report, metadata["model_file"])["accuracy"], abs=1e-6)


def test_text_bundle_reproduces_the_report_from_raw_strings(text_run, tmp_path):
    run_dir, report = exported_copy(text_run, tmp_path, quantization=["float32", "int8"])
    bundle = run_dir / "export" / "bundle"
    metadata = load_bundle(bundle).metadata
    assert metadata["task"] == "text_classification"
    assert {"vocabulary.txt", "tokenizer.json"} <= set(metadata["files"])
    dataset = load_run_data(run_dir)
    texts, labels = list(dataset.texts["test"]), dataset.arrays["test"][1]
    (tmp_path / "inputs.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    predicted = run_on_device(bundle, tmp_path / "inputs.json")["labels"]
    accuracy = np.mean([metadata["class_names"].index(label) for label in predicted] == labels)
    assert accuracy == pytest.approx(artifact_in(report, metadata["model_file"])["accuracy"], abs=1e-6)


def test_generator_bundle_matches_its_tflite_file(gan_run, tmp_path):
    from bigmodels.lite import TFLiteModel

    run_dir, report = exported_copy(gan_run, tmp_path, quantization=["float32"], max_pixel_difference=1.0)
    bundle = run_dir / "export" / "bundle.zip"
    images = np.asarray(run_on_device(bundle)["images"], dtype=np.uint8)
    latents = np.random.default_rng(3).standard_normal((5, 16)).astype(np.float32)
    expected = TFLiteModel(run_dir / "export" / "generator_float32.tflite").predict(latents)
    np.testing.assert_array_equal(images, np.clip(np.round(expected), 0, 255).astype(np.uint8))
    assert load_bundle(bundle).metadata["latent_size"] == 16
    assert "classifier score" in (run_dir / "export" / "bundle" / "MODEL_CARD.md").read_text()
    # The run's generator was conditioned on the digit: label="3" draws latents whose code says 3.
    threes = np.asarray(run_on_device(bundle)["threes"], dtype=np.uint8)
    latents = latents_for_class(np.random.default_rng(3).standard_normal((4, 16)), 3, 10)
    expected = TFLiteModel(run_dir / "export" / "generator_float32.tflite").predict(latents)
    np.testing.assert_array_equal(threes, np.clip(np.round(expected), 0, 255).astype(np.uint8))
    loaded = load_bundle(bundle)
    with pytest.raises(ValueError, match="unknown label 'ten'"):
        loaded.generate(2, label="ten")
    loaded.metadata.pop("class_code")
    with pytest.raises(ValueError, match="not conditioned on the class"):
        loaded.generate(2, label="3")


def test_latents_for_a_class_keep_each_vector_values_and_set_its_code():
    latents = np.random.default_rng(0).standard_normal((1000, 12))
    drawn = latents_for_class(latents, 7, 10)
    assert (drawn[:, :10].argmax(axis=1) == 7).all()
    np.testing.assert_allclose(np.sort(drawn, axis=1), np.sort(latents, axis=1).astype(np.float32))
    np.testing.assert_array_equal(drawn[:, 10:], latents[:, 10:].astype(np.float32))  # noise untouched


@pytest.fixture(scope="module")
def digits_bundle(digits_run, tmp_path_factory):
    run_dir, _ = exported_copy(digits_run, tmp_path_factory.mktemp("bundle"), quantization=["float32"])
    return run_dir / "export" / "bundle"


def test_a_changed_file_is_refused(digits_bundle, tmp_path):
    bundle = shutil.copytree(digits_bundle, tmp_path / "bundle")
    model = bundle / "model_float32.tflite"
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0xFF
    model.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="model_float32.tflite does not match its sha256"):
        load_bundle(bundle)


@pytest.mark.parametrize("version", [0, 2, None])
def test_an_older_or_unknown_format_version_is_refused(digits_bundle, tmp_path, version):
    bundle = shutil.copytree(digits_bundle, tmp_path / "bundle")
    metadata = json.loads((bundle / "metadata.json").read_text())
    metadata["format_version"] = version
    (bundle / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="is not supported"):
        load_bundle(bundle)


def test_missing_bundle_and_non_bundle_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nowhere.zip")
    (tmp_path / "notes.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a bundle archive"):
        load_bundle(tmp_path / "notes.zip")


def run_app(name, *args, stdin=None):
    return subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_TENSORFLOW + f"sys.argv[1:1] = []\nexec(open({str(ROOT / 'apps' / name)!r}).read())",
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_predict_app_reports_a_corrupt_image_and_goes_on(digits_bundle, tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(good)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    result = run_app("predict.py", "--bundle", digits_bundle, tmp_path)
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["input"]).name for line in lines] == ["broken.png", "good.png"]
    assert "not a readable image" in lines[0]["error"] and lines[1]["label"] in [str(d) for d in range(10)]
    assert result.stderr.strip().splitlines() == [
        "error: 1 of 2 input(s) could not be read; see their JSON lines"
    ]


def test_predict_app_reads_texts_from_stdin(text_run, tmp_path):
    run_dir, _ = exported_copy(text_run, tmp_path, quantization=["float32"])
    result = run_app(
        "predict.py",
        "--bundle",
        run_dir / "export" / "bundle.zip",
        "-",
        stdin="这部电影非常精彩\na dull, tedious mess\n",
    )
    assert result.returncode == 0, result.stderr
    labels = [json.loads(line)["label"] for line in result.stdout.splitlines()]
    assert labels == ["positive", "negative"]


def test_predict_app_draws_a_chosen_class_from_a_conditioned_generator(gan_run, tmp_path):
    run_dir, _ = exported_copy(gan_run, tmp_path, quantization=["float32"], max_pixel_difference=1.0)
    bundle = run_dir / "export" / "bundle.zip"
    result = run_app(
        "predict.py", "--bundle", bundle, "--count", "3", "--label", "7", "--out", tmp_path / "s"
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["file"]).name for r in records] == [f"sample_7_0_00{i}.png" for i in range(3)]
    assert all(r["label"] == "7" for r in records) and all(Path(r["file"]).is_file() for r in records)
    result = run_app("predict.py", "--bundle", bundle, "--label", "eleven", "--out", tmp_path / "t")
    assert (
        result.returncode == 2
        and result.stderr.count("\n") == 1
        and "unknown label 'eleven'" in result.stderr
    )
    assert not (tmp_path / "t").exists()  # nothing written for a refused request
    # A second draw adds to the folder predict made; a folder of the user's is never written into.
    result = run_app("predict.py", "--bundle", bundle, "--count", "2", "--out", tmp_path / "s")
    assert result.returncode == 0 and len(list((tmp_path / "s").glob("*.png"))) == 5
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "sample_0_000.png").write_bytes(b"my own picture")
    result = run_app("predict.py", "--bundle", bundle, "--count", "2", "--out", tmp_path / "mine")
    assert result.returncode == 2 and "--overwrite" not in result.stderr and "already exists" in result.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["sample_0_000.png"]
    assert (tmp_path / "mine" / "sample_0_000.png").read_bytes() == b"my own picture"


def test_predict_app_refuses_a_tampered_bundle_in_one_line(digits_bundle, tmp_path):
    bundle = shutil.copytree(digits_bundle, tmp_path / "bundle")
    (bundle / "MODEL_CARD.md").write_text("edited")
    result = run_app("predict.py", "--bundle", bundle, tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "sha256" in result.stderr


def test_benchmark_app_writes_its_json(digits_bundle, tmp_path):
    result = run_app(
        "benchmark.py",
        "--bundle",
        digits_bundle,
        "--threads",
        "1",
        "2",
        "--repeats",
        "5",
        "--out",
        tmp_path / "b.json",
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "b.json").read_text())
    assert set(figures["latency_per_example"]) == {"1", "2"}
    assert figures["peak_rss_mb"] > 0 and figures["model_file_bytes"] > 0 and figures["load_seconds"] > 0


def test_predict_app_refuses_zero_threads_in_one_line(tmp_path):
    """Not "export the bundle again": the runtime's own complaint named the bundle, not the flag."""
    result = run_app("predict.py", "--bundle", "cifar10_tiny", "--threads", "0", "--selftest")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--threads must be at least 1, got 0" in result.stderr
