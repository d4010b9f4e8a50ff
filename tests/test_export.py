"""Export: every TFLite mode runs on ai-edge-litert and agrees with Keras; the gate bites."""

import json

import numpy as np
import pytest

from bigmodels.convert.artifacts import choose_artifact
from bigmodels.convert.tflite import parse_quantization
from bigmodels.lite import TFLiteModel
from bigmodels.tasks import task_of
from bigmodels.workflows.export import export_run

ARTIFACT_KEYS = (
    "file",
    "format",
    "quantization",
    "size_bytes",
    "gzip_bytes",
    "accuracy",
    "agreement",
    "latency_ms",
)


@pytest.fixture(scope="module")
def digits_export(digits_run):
    return export_run(digits_run, quantization=["float32", "dynamic", "float16", "int8"], latency_repeats=20)


def test_report_lists_every_artifact_with_the_contract_keys(digits_run, digits_export):
    report = json.loads((digits_run / "export" / "report.json").read_text())
    assert report == json.loads(json.dumps(digits_export))
    assert [a["quantization"] for a in report["artifacts"]] == [
        "none",
        "float32",
        "dynamic",
        "float16",
        "int8",
    ]
    for artifact in report["artifacts"]:
        assert all(key in artifact for key in ARTIFACT_KEYS), artifact
        assert (digits_run / "export" / artifact["file"]).exists()
        assert artifact["gzip_bytes"] > 0 and artifact["latency_ms"] > 0
    assert 0 < report["keras_accuracy"] <= 1
    assert not (digits_run / "export.partial").exists()


def test_float_artifacts_agree_with_keras_and_int8_stays_close(digits_export):
    by_mode = {a["quantization"]: a for a in digits_export["artifacts"]}
    for mode in ("none", "float32", "float16"):
        assert by_mode[mode]["agreement"] >= 0.995, mode
    assert by_mode["int8"]["agreement"] >= 0.9
    assert by_mode["int8"]["size_bytes"] < by_mode["float32"]["size_bytes"] / 2.5


def test_int8_file_is_full_integer_with_int8_input_and_output(digits_run, digits_export):
    model = TFLiteModel(digits_run / "export" / "model_int8.tflite")
    assert model.input_dtype == np.int8
    assert np.dtype(model.output_detail["dtype"]) == np.int8
    scale, zero_point = model.input_detail["quantization"]
    assert scale == pytest.approx(1.0, rel=0.05) and zero_point == -128  # int8 = pixel - 128
    float_model = TFLiteModel(digits_run / "export" / "model_float32.tflite")
    assert float_model.input_dtype == np.uint8  # the others take camera pixels as they are


def test_saved_model_serves_raw_uint8_images(digits_run, digits_export):
    import tensorflow as tf

    serve = tf.saved_model.load(str(digits_run / "export" / "saved_model")).signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape[1:] == (8, 8, 1)


def test_parity_gate_names_the_failing_artifact(digits_run):
    report = export_run(digits_run, quantization=["int8"], max_accuracy_drop=-100.0, latency_repeats=5)
    failures = report["parity_gate"]["failures"]
    assert not report["parity_gate"]["passed"]
    assert "model_int8.tflite" in [f["file"] for f in failures]


def test_unknown_quantization_mode_is_refused():
    with pytest.raises(ValueError, match="unknown quantization mode.*int4"):
        parse_quantization("float32,int4")


def test_tensor_names_are_shortened_and_their_bytes_leave_the_file(digits_run):
    """The converter's long tensor names are only debugging text: shortened, the file loses their
    bytes, every buffer stays aligned to 16 bytes (TFLite Micro reads weights in place), and both
    runtimes give the same outputs as from the long-named file."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python import schema_py_generated as schema

    from bigmodels.convert.tflite import convert_tflite
    from bigmodels.lite.micro import MicroModel
    from bigmodels.run_folder import load_run_model

    tensor_names = lambda flatbuffer: [  # noqa: E731
        detail["name"] for detail in Interpreter(model_content=flatbuffer).get_tensor_details()
    ]

    model = load_run_model(digits_run)
    images = np.random.default_rng(0).integers(0, 256, (8, *model.input_shape[1:]), dtype=np.uint8)
    long = convert_tflite(model, "int8", images, keep_tensor_names=True)
    short = convert_tflite(model, "int8", images)
    names, long_names = tensor_names(short), tensor_names(long)
    assert names[0] == long_names[0] and names[-1] == long_names[-1]  # the input and the output
    assert names[1:-1] == [f"t{i}" for i in range(1, len(names) - 1)] and "/" in long_names[1]
    dropped = sum(map(len, long_names)) - sum(map(len, names))
    assert dropped > 1000 and len(long) - len(short) > 0.9 * dropped

    root = schema.Model.GetRootAs(short, 0)
    weights = [root.Buffers(i) for i in range(root.BuffersLength()) if root.Buffers(i).DataLength()]
    assert weights and all(buffer._tab.Vector(4) % 16 == 0 for buffer in weights)
    assert root.SignatureDefsLength() == 1 and root.MetadataLength() >= 1
    np.testing.assert_array_equal(TFLiteModel(short).predict(images), TFLiteModel(long).predict(images))
    np.testing.assert_array_equal(MicroModel(short).predict(images), MicroModel(long).predict(images))


def test_chosen_file_is_the_smallest_unless_one_barely_bigger_is_much_faster():
    def file(name, kb, ms):
        return {"file": name, "size_bytes": kb * 1024, "latency_ms": ms}

    int8, dynamic, float16 = file("int8", 462, 0.21), file("dynamic", 470, 0.13), file("float16", 900, 0.05)
    chosen = choose_artifact([int8, dynamic, float16], "within the gate")
    assert chosen["file"] == "dynamic"  # 2% bigger, 1.6x faster; float16 is twice the size
    assert chosen["reason"].startswith(
        "1.6x faster than the smallest of the 3 TFLite file(s) within the gate"
    )
    slower = file("dynamic", 470, 0.15)  # 1.4x faster only: not worth it
    assert choose_artifact([int8, slower, float16], "within the gate")["file"] == "int8"
    bigger = file("dynamic", 520, 0.05)  # 13% bigger
    chosen = choose_artifact([int8, bigger], "within the gate")
    assert chosen == {
        "file": "int8",
        "reason": "smallest of the 2 TFLite file(s) within the gate: 462.0 KB, 0.210 ms per example",
    }
    assert choose_artifact([], "within the gate")["file"] is None


def test_a_latency_budget_prefers_a_barely_bigger_file_that_keeps_to_it():
    def file(name, kb, ms):
        return {"file": name, "size_bytes": kb * 1024, "latency_ms": ms}

    int8, dynamic, float16 = file("int8", 302, 0.26), file("dynamic", 317, 0.19), file("float16", 542, 0.16)
    assert choose_artifact([int8, dynamic, float16], "within the gate")["file"] == "int8"  # 1.4x only
    chosen = choose_artifact([int8, dynamic, float16], "within the gate", latency_budget_ms=0.2)
    assert chosen == {
        "file": "dynamic",
        "reason": "smallest within 0.2 ms per example of the 3 TFLite file(s) within the gate, at most "
        "10% bigger than the smallest (int8): 317.0 KB, 0.190 ms per example",
    }
    # Only a file far bigger keeps to it: the size wins; a choice within the budget stays.
    assert choose_artifact([int8, float16], "within the gate", latency_budget_ms=0.2)["file"] == "int8"
    quick = file("int8", 302, 0.1)
    assert choose_artifact([quick, dynamic], "within the gate", latency_budget_ms=0.2)["file"] == "int8"


def test_text_exports_keep_to_the_text_latency_budget():
    assert task_of("transformer_classifier").latency_budget_ms == 0.2
    assert task_of("cnn_classifier").latency_budget_ms is None  # images: no budget named
