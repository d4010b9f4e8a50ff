"""TensorFlow Lite Micro (issue 16, part 2): export writes micro/ (the int8 model as a C array, its op
resolver, micro.json with the flash and the measured arena), a model with an op TFLM lacks gets one
line and the export goes on, and apps/predict.py --runtime tflm runs a bundle on tflite-micro's
interpreter with the outputs of ai-edge-litert's builtin kernels."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bigmodels.convert.micro import resolver_method
from bigmodels.lite import TFLiteModel, load_bundle
from bigmodels.lite.micro import ARENA_STEP, describe_failure

ROOT = Path(__file__).resolve().parents[1]
BLOCK_TENSORFLOW = (
    "import sys\n"
    "for name in ('tensorflow', 'keras', 'keras_hub', 'tensorflow_text', 'tensorflow_datasets'):\n"
    "    sys.modules[name] = None  # any import of them now raises ImportError\n"
)
MICRO_MAIN = "import sys; from bigmodels.lite.micro import main; sys.exit(main())"


def exported_copy(run_dir: Path, folder: Path, **export_args) -> tuple[Path, dict]:
    """Exports a copy of a shared run (int8 by default), so other tests' runs stay as they are."""
    from bigmodels.workflows.export import export_run

    copy = shutil.copytree(run_dir, folder / run_dir.name)
    shutil.rmtree(copy / "export", ignore_errors=True)
    export_args.setdefault("quantization", ["int8"])
    return copy, export_run(copy, latency_repeats=5, **export_args)


def run_predict(*args) -> subprocess.CompletedProcess:
    """apps/predict.py as a device runs it: TensorFlow cannot be imported."""
    script = BLOCK_TENSORFLOW + f"exec(open({str(ROOT / 'apps' / 'predict.py')!r}).read())"
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=300
    )


def probe(model: Path, arena_bytes: int, inputs: Path) -> bool:
    """Whether tflite-micro runs ``model`` in ``arena_bytes`` (in processes of their own: a too
    small arena can crash TFLM)."""
    result = subprocess.run(
        [sys.executable, "-c", MICRO_MAIN, "probe", str(model), str(arena_bytes), "--inputs", str(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["runs"]


@pytest.fixture(scope="module")
def cnn_export(digits_run, tmp_path_factory):
    """The digits CNN exported float32 and int8, shipping the int8 file (micro/ comes from it)."""
    return exported_copy(
        digits_run,
        tmp_path_factory.mktemp("micro_cnn"),
        quantization=["float32", "int8"],
        bundle_artifact="model_int8.tflite",
    )


def test_the_cnn_export_writes_micro_files_and_reports_them(cnn_export):
    run_dir, report = cnn_export
    folder = run_dir / "export" / "micro"
    model = (run_dir / "export" / "model_int8.tflite").read_bytes()
    description = json.loads((folder / "micro.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in folder.iterdir()) == [
        "micro.json",
        "model_data.cc",
        "model_data.h",
        "op_resolver.h",
    ]
    assert description["flash_bytes"] == len(model) and description["model_file"] == "model_int8.tflite"
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(description["ops"])
    assert description["input"]["dtype"] == "int8" and description["output"]["dtype"] == "int8"
    micro = report["micro"]
    assert micro["folder"] == "micro" and micro["ops_supported"] and not micro["unsupported_ops"]
    assert (micro["flash_bytes"], micro["arena_bytes"], micro["ops"]) == (
        description["flash_bytes"],
        description["arena_bytes"],
        description["ops"],
    )
    assert micro["compared"] == report["num_test_examples"]
    # TFLM's int8 SOFTMAX may round one step apart from TFLite's builtin kernel on rare inputs.
    assert micro["equal_to_litert"] or micro["litert_difference"]["max_steps"] <= 1
    card = (run_dir / "export" / "bundle" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"{micro['flash_bytes']:,} bytes of flash" in card and f"{micro['arena_bytes']:,}-byte" in card
    assert not (run_dir / "export" / "bundle" / "micro.json").exists()  # beside the bundle, not in it


def test_the_arena_is_the_smallest_that_runs(cnn_export, tmp_path):
    run_dir, report = cnn_export
    arena = report["micro"]["arena_bytes"]
    description = json.loads((run_dir / "export" / "micro" / "micro.json").read_text(encoding="utf-8"))
    assert arena % ARENA_STEP == 0 and 1024 < arena < 64 * 1024
    assert description["arena_measurement"]["smaller_arena_fails"]
    assert "binary search" in description["arena_measurement"]["method"]
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, np.full((1, 8, 8, 1), 128, np.uint8))
    model = run_dir / "export" / "model_int8.tflite"
    assert probe(model, arena, inputs)
    assert not probe(model, arena - ARENA_STEP, inputs)


def test_the_c_array_is_the_tflite_file_and_the_resolver_adds_its_ops(cnn_export):
    run_dir, report = cnn_export
    folder = run_dir / "export" / "micro"
    source = (folder / "model_data.cc").read_text(encoding="utf-8")
    declaration = re.search(r"alignas\(16\) const unsigned char (\w+)\[\] = \{(.*?)\};", source, re.S)
    assert declaration and declaration.group(1) == "g_model_data"
    values = bytes(int(token, 16) for token in declaration.group(2).replace(",", " ").split())
    assert values == (run_dir / "export" / "model_int8.tflite").read_bytes()
    assert f"g_model_data_len = {len(values)};" in source
    header = (folder / "model_data.h").read_text(encoding="utf-8")
    assert "extern const unsigned char g_model_data[];" in header
    assert f"kTensorArenaBytes = {report['micro']['arena_bytes']};" in header
    resolver = (folder / "op_resolver.h").read_text(encoding="utf-8")
    ops = report["micro"]["ops"]
    assert f"tflite::MicroMutableOpResolver<{len(ops)}>" in resolver
    assert re.findall(r"resolver\.(Add\w+)\(\)", resolver) == [resolver_method(op) for op in ops]


def test_tflm_predictions_equal_litert_builtin_kernels_on_the_test_split(cnn_export, tmp_path):
    import bigmodels

    run_dir, report = cnn_export
    config = bigmodels.read_run(run_dir)[1]
    images = bigmodels.task_of(config["model"]).load_data(run_dir, config).arrays["test"][0]
    folder = tmp_path / "test_split"
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / f"{index:04d}.png")
    bundle_zip = run_dir / "export" / "bundle.zip"
    result = run_predict("--bundle", bundle_zip, "--runtime", "tflm", "--top-k", "10", folder)
    assert result.returncode == 0, result.stderr
    micro = [json.loads(line) for line in result.stdout.splitlines()]
    bundle = load_bundle(bundle_zip)
    bundle.model = TFLiteModel((run_dir / "export" / "model_int8.tflite").read_bytes(), xnnpack=False)
    paths = sorted(str(p) for p in folder.iterdir())
    rows = bundle.predict(paths, top_k=10)
    expected = [{"input": path, **row} for path, row in zip(paths, rows, strict=True)]
    assert len(micro) == len(images)
    # TFLM's int8 kernels are TFLite's builtin arithmetic; the export counts any example where they
    # part (its int8 SOFTMAX may round one step apart from TFLite's on rare inputs).
    differing = [row for row, want in zip(micro, expected, strict=True) if row != want]
    assert len(differing) == report["micro"].get("litert_difference", {}).get("examples", 0)
    assert report["micro"]["equal_to_litert"] == (not differing)


def test_tflm_refuses_a_float32_bundle_in_one_line(cnn_export, tmp_path):
    import bigmodels
    from bigmodels.convert.bundle import write_bundle

    run_dir, report = cnn_export
    export = shutil.copytree(run_dir / "export", tmp_path / "export")
    config = bigmodels.read_run(run_dir)[1]
    task = bigmodels.task_of(config["model"])
    write_bundle(export, run_dir, config, report, task, artifact_file="model_float32.tflite")
    result = run_predict("--bundle", export / "bundle", "--runtime", "tflm", tmp_path)
    errors = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert errors[0].startswith("error: ") and "export with --quantization int8" in errors[0]
    assert "float32" in errors[0]


def test_without_tflite_micro_the_check_says_how_to_install_it(cnn_export, tmp_path):
    run_dir, _ = cnn_export
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, np.zeros((1, 8, 8, 1), np.uint8))
    script = "import sys; sys.modules['tflite_micro'] = None\n" + MICRO_MAIN.replace("; ", "\n")
    model = run_dir / "export" / "model_int8.tflite"
    arguments = ["measure", model, "--inputs", inputs, "--outputs", tmp_path / "out.npy"]
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, arguments)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "pip install tflite-micro" in json.loads(result.stdout.strip().splitlines()[-1])["unavailable"]


def test_the_transformer_names_the_op_tflm_lacks_in_one_line_and_the_export_goes_on(text_run, tmp_path):
    run_dir, report = exported_copy(text_run, tmp_path)
    micro = report["micro"]
    export = run_dir / "export"
    assert (export / "report.json").is_file() and (export / "bundle.zip").is_file()
    assert json.loads((export / "report.json").read_text(encoding="utf-8"))["micro"] == micro
    if micro["folder"] is None:  # what TFLite Micro lacks is named, and nothing else is written
        assert not (export / "micro").exists()
        assert micro["ops_supported"] is False and micro["arena_bytes"] is None
        assert micro["unsupported_ops"] and set(micro["unsupported_ops"]) <= set(micro["ops"])
        assert "\n" not in micro["skipped"] and micro["skipped"].endswith("micro/ skipped")
        assert all(op in micro["skipped"] for op in micro["unsupported_ops"])
        result = run_predict("--bundle", export / "bundle.zip", "--runtime", "tflm", "a lovely film")
        errors = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(errors) == 1, result.stderr
        assert micro["unsupported_ops"][0] in errors[0]
    else:
        assert micro["equal_to_litert"] and (export / "micro" / "model_data.cc").is_file()


def test_the_generator_micro_figures_are_recorded(gan_run, tmp_path):
    run_dir, report = exported_copy(gan_run, tmp_path)
    micro = report["micro"]
    model = run_dir / "export" / "generator_int8.tflite"
    assert micro["file"] == model.name and micro["flash_bytes"] == model.stat().st_size
    assert {"TRANSPOSE_CONV", "FULLY_CONNECTED"} <= set(micro["ops"])
    if micro["folder"] is None:
        assert micro["unsupported_ops"] and micro["skipped"].endswith("micro/ skipped")
    else:
        assert micro["arena_bytes"] > 0 and micro["compared"] > 0


def test_resolver_methods_follow_tflm_names():
    assert resolver_method("CONV_2D") == "AddConv2D"
    assert resolver_method("MAX_POOL_2D") == "AddMaxPool2D"
    assert resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert resolver_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert resolver_method("SELECT_V2") == "AddSelectV2"
    assert resolver_method("SPACE_TO_BATCH_ND") == "AddSpaceToBatchNd"
    assert resolver_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert resolver_method("L2_NORMALIZATION") == "AddL2Normalization"


def test_tflm_failures_become_one_sentence_naming_the_op():
    missing = describe_failure(
        [
            "Didn't find op for builtin opcode 'REDUCE_PROD'",
            "Failed to get registration from op code REDUCE_PROD",
        ],
        "TFLM failed to allocate tensors",
    )
    assert str(missing) == "TFLite Micro has no kernel for REDUCE_PROD" and missing.ops == ["REDUCE_PROD"]
    refused = describe_failure(
        ["Output type UINT8 (3) not supported.", "Node CAST (number 25) failed to invoke with status 1"],
        "Interpreter invocation failed.",
    )
    assert refused.ops == ["CAST"] and "UINT8" in str(refused) and "\n" not in str(refused)


@pytest.mark.parametrize("script", ["latin", "chinese"])
def test_the_ngram_text_model_runs_on_tflm_from_a_bundle(tmp_path, script):
    """ngram_classifier uses only ops TFLite Micro has (int8 GATHERs of its hash bytes and table,
    integer ADD/SUB/compare, FULLY_CONNECTED sums), so a text bundle runs on a microcontroller:
    with bigrams, and with the trigrams Chinese text gets (a second hash table)."""
    from helpers import write_chinese_reviews_tsv, write_reviews_csv

    from bigmodels.workflows.train import train_run

    if script == "latin":
        data = write_reviews_csv(tmp_path / "reviews.csv", 120)
        options = {"text_columns": ["title", "body"], "label_column": "sentiment"}
    else:
        data = write_chinese_reviews_tsv(tmp_path / "reviews.tsv", 120)
        options = {"text_columns": [0], "label_column": 1, "header": False}
    run_dir, _ = train_run("ngram_classifier", str(data), tmp_path / "run", verbose=0, data_options=options)
    order = json.loads((run_dir / "config.json").read_text())["model_args"]["ngram_order"]
    assert order == (2 if script == "latin" else 3)
    copy, report = exported_copy(run_dir, tmp_path / "copy")
    micro = report["micro"]
    assert micro["folder"] == "micro" and micro["arena_bytes"] > 0 and micro["compared"] > 0
    assert {"GATHER", "FULLY_CONNECTED"} <= set(micro["ops"])
    # Within one output step of ai-edge-litert's builtin kernels (TFLM's int8 SOFTMAX may round one
    # step apart on rare inputs), on every test example.
    assert micro["equal_to_litert"] or micro["litert_difference"]["max_steps"] <= 1
    bundle_zip = copy / "export" / "bundle.zip"
    text = "a lovely film, wonderful" if script == "latin" else "故事很好看"
    result = run_predict("--bundle", bundle_zip, "--runtime", "tflm", text)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["label"] in ("negative", "positive", "好评", "差评")
