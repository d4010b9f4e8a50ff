"""Mixed-precision (bfloat16) training: the twin computes in bfloat16, model.keras is float32,
"auto" follows the CPU, and what cannot train in bfloat16 is refused or trained in float32."""

import json

import keras
import numpy as np
import pytest
from helpers import run_app_in_process, write_image_folder
from test_apps import assert_one_line_error

from bigmodels import distill_run, prune_run, train_run
from bigmodels.compress.distillation import Distiller
from bigmodels.models.cnn import cnn_classifier
from bigmodels.run_folder import load_run_model
from bigmodels.training.precision import cpu_has_bfloat16, mixed_precision_twin, resolve_precision


def test_the_twin_computes_in_bfloat16_but_its_softmax_and_weights_stay_float32():
    model = cnn_classifier(input_shape=(32, 32, 3), num_classes=10, variant="resnet")
    twin = mixed_precision_twin(model)
    policies = {layer.name: layer.dtype_policy.name for layer in twin.layers[1:]}
    assert policies.pop("probabilities") == "float32"
    assert set(policies.values()) == {"mixed_bfloat16"}
    assert all(weight.dtype == "float32" for weight in twin.weights)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    float_out, twin_out = model.predict(images, verbose=0), twin.predict(images, verbose=0)
    assert twin_out.dtype == np.float32 and not np.array_equal(float_out, twin_out)  # bfloat16 inside
    np.testing.assert_allclose(twin_out, float_out, atol=0.02)


def test_a_bfloat16_run_trains_the_twin_and_saves_a_float32_model(tmp_path):
    run_dir, metrics = train_run(
        "cnn_classifier",
        "digits",
        tmp_path / "run",
        epochs=2,
        learning_rate=5e-3,
        precision="bfloat16",
        verbose=0,
    )
    assert json.loads((run_dir / "config.json").read_text())["training"]["precision"] == "bfloat16"
    saved = load_run_model(run_dir)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert metrics["test_accuracy"] > 0.5  # it learned (ten classes)
    pruned, _ = prune_run(run_dir, tmp_path / "pruned", sparsity=0.5, epochs=1, verbose=0)
    assert json.loads((pruned / "config.json").read_text())["training"]["precision"] == "float32"
    # A distiller trains bfloat16 twins of its student and teacher, and saves the float32 student.
    student, _ = distill_run(
        run_dir, tmp_path / "student", student_args={"width_multiplier": 0.5}, epochs=1, train_alone=False
    )
    training = json.loads((student / "config.json").read_text())["training"]
    assert training["precision"] == resolve_precision("auto")
    assert {layer.dtype_policy.name for layer in load_run_model(student).layers} == {"float32"}


def test_a_distillers_mixed_precision_twin_copies_both_networks_into_bfloat16():
    student = cnn_classifier(input_shape=(32, 32, 3), num_classes=10, variant="resnet")
    teacher = cnn_classifier(input_shape=(32, 32, 3), num_classes=10, variant="resnet", width_multiplier=2.0)
    distiller = Distiller(student, teacher, alpha=0.3, temperature=2.0)
    twin, student_twin = distiller.in_mixed_precision()
    assert twin.student is student_twin and (twin.alpha, twin.temperature) == (0.3, 2.0)
    for network, original in ((twin.student, student), (twin.teacher, teacher)):
        policies = {layer.dtype_policy.name for layer in network.layers}
        assert network is not original and "mixed_bfloat16" in policies
        for a, b in zip(network.get_weights(), original.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert not twin.teacher.trainable


def test_auto_is_bfloat16_only_where_the_cpu_has_it(tmp_path):
    with_bf16, without = tmp_path / "zen4", tmp_path / "old"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_has_bfloat16(with_bf16) and not cpu_has_bfloat16(without)
    assert not cpu_has_bfloat16(tmp_path / "missing")
    assert resolve_precision("auto") in ("float32", "bfloat16")
    assert resolve_precision("float32") == "float32"


def test_auto_precision_records_the_precision_it_ran(tmp_path):
    data = write_image_folder(tmp_path / "photos", per_class=8, size=(32, 32), classes=("a", "b"))
    # the cifar10_tiny recipe asks for precision "auto" itself
    run_dir, _ = train_run(None, str(data), tmp_path / "run", recipe="cifar10_tiny", epochs=1, verbose=0)
    training = json.loads((run_dir / "config.json").read_text())["training"]
    assert training["precision"] == ("bfloat16" if cpu_has_bfloat16() else "float32")


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--precision", "float8"], "unknown precision 'float8'"),
        (["--model", "dcgan", "--precision", "bfloat16"], "--precision: dcgan trains"),
    ],
)
def test_bad_precision_is_one_line_before_anything_is_written(tmp_path, flags, fragment):
    result = run_app_in_process("train", *flags, "--out", tmp_path / "run")
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


def test_bfloat16_with_a_backbone_is_refused(digits_run, tmp_path):
    with pytest.raises(ValueError, match="--precision bfloat16 trains from scratch"):
        train_run(None, "digits", tmp_path / "run", backbone=str(digits_run), precision="bfloat16")
    assert not (tmp_path / "run").exists()
    assert keras.config.dtype_policy().name == "float32"  # nothing changed the process's policy
