"""Pruning and distillation: exact sparsity, zeros that stay zero, 2:4, strip, export, the loss formula."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import separable_images

from bigmodels import get_model
from bigmodels.compress import (
    ConstantSparsity,
    MagnitudePruner,
    PolynomialDecay,
    prunable_weights,
    sparsity_report,
    strip_pruning,
)
from bigmodels.compress.distillation import distillation_loss
from bigmodels.compress.pruning import two_four_mask

ROOT = Path(__file__).resolve().parents[1]


def small_cnn():
    model = get_model("cnn_classifier", input_shape=(16, 16, 1), num_classes=2, variant="compact")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


def test_polynomial_schedule_follows_tfmot_formula():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=10, end_step=110, power=3, frequency=10)
    assert schedule(5) == (False, pytest.approx(0.0))
    assert schedule(10) == (True, pytest.approx(0.0))
    assert schedule(60)[1] == pytest.approx(0.8 - 0.8 * 0.5**3)
    assert schedule(65)[0] is False and schedule(110) == (True, pytest.approx(0.8))
    assert schedule(200) == (False, pytest.approx(0.8))
    assert ConstantSparsity(0.5, begin_step=0, frequency=7)(14) == (True, 0.5)
    with pytest.raises(ValueError):
        PolynomialDecay(0.0, 1.2, 0, 10)


def test_sparsity_is_exact_per_layer_and_zeros_stay_zero_through_training():
    model = small_cnn()
    images, labels = separable_images(64, size=(16, 16))
    pruner = MagnitudePruner(model, PolynomialDecay(0.0, 0.75, begin_step=0, end_step=8, frequency=2))
    model.fit(images, labels, batch_size=16, epochs=3, verbose=0, callbacks=[pruner])  # 12 steps
    report = sparsity_report(model)
    assert len(report) == len(prunable_weights(model)) >= 4
    for entry in report:  # exactly round(0.75 * size) zeros in every kernel
        assert entry["zeros"] == round(0.75 * entry["total"]), entry
    zero_positions = [np.asarray(v.numpy()) == 0 for _, v, _, _ in prunable_weights(model)]
    model.fit(images, labels, batch_size=16, epochs=2, verbose=0, callbacks=[pruner])  # more updates
    for was_zero, (_, variable, _, _) in zip(zero_positions, prunable_weights(model), strict=True):
        assert np.all(np.asarray(variable.numpy())[was_zero] == 0)
    biases = [w for layer in model.layers for w in layer.weights if w.path.endswith("bias")]
    assert biases and all(
        np.count_nonzero(b.numpy()) == b.numpy().size for b in biases if "probabilities" in b.path
    )


def test_layer_kinds_are_selectable_and_biases_and_norms_never_pruned():
    model = get_model("transformer_classifier", vocabulary_size=64, sequence_length=8, num_classes=2, width=8)
    kinds = {kind for _, _, kind, _ in prunable_weights(model)}
    assert kinds == {"embedding", "transformer", "dense"}
    only_embedding = prunable_weights(model, kinds=["embedding"])
    assert [path for path, _, _, _ in only_embedding] == ["token_embedding/embeddings"]
    paths = [path for path, _, _, _ in prunable_weights(model)]
    assert not any(path.endswith(("bias", "gamma", "beta")) for path in paths)
    with pytest.raises(ValueError, match="unknown layer kind"):
        prunable_weights(model, kinds=["lstm"])


def test_two_four_pattern_holds_in_every_group_of_four():
    model = small_cnn()
    images, labels = separable_images(32, size=(16, 16))
    pruner = MagnitudePruner(model, ConstantSparsity(0.5, frequency=1), structure="2:4")
    model.fit(images, labels, batch_size=16, epochs=2, verbose=0, callbacks=[pruner])
    checked = 0
    for _, variable, _, axis in prunable_weights(model):
        values = np.moveaxis(np.asarray(variable.numpy()), axis, -1)
        whole = values.shape[-1] // 4 * 4
        groups = values[..., :whole].reshape(-1, 4)
        checked += len(groups)
        assert np.all(np.count_nonzero(groups, axis=-1) <= 2)
    assert checked > 100
    mask = two_four_mask(np.array([[4.0, -1.0, 3.0, 0.5, 9.0, 8.0, -7.0, 1.0]]), axis=-1)
    assert mask.tolist() == [[1, 0, 1, 0, 1, 1, 0, 0]]


def test_strip_leaves_a_plain_model_that_saves_and_exports(tmp_path):
    from bigmodels.convert.tflite import convert_tflite
    from bigmodels.lite import TFLiteModel

    keras.utils.set_random_seed(0)  # the int8 agreement below must not hang on earlier tests' draws
    model = small_cnn()
    images, labels = separable_images(32, size=(16, 16))
    pruner = MagnitudePruner(model, ConstantSparsity(0.6, frequency=1))
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0, callbacks=[pruner])
    stripped = strip_pruning(model)
    assert type(stripped) is type(model)
    assert [v.path for v in stripped.weights] == [v.path for v in model.weights]  # no extra variable
    assert {type(layer) for layer in stripped.layers} == {type(layer) for layer in model.layers}
    stripped.save(tmp_path / "pruned.keras")
    loaded = keras.models.load_model(tmp_path / "pruned.keras", safe_mode=True)
    assert all(entry["sparsity"] > 0.59 for entry in sparsity_report(loaded))
    runner = TFLiteModel(convert_tflite(loaded, "int8", images[:16]))
    expected = loaded.predict(images, verbose=0).argmax(-1)
    assert np.mean(runner.predict(images).argmax(-1) == expected) >= 0.9


def test_student_config_reads_key_values_json_and_an_empty_object():
    from bigmodels.cli.training import parse_model_arguments

    assert parse_model_arguments("width=32, dropout=0.1,name=x") == {"width": 32, "dropout": 0.1, "name": "x"}
    assert parse_model_arguments('{"width_multiplier": 0.5}') == {"width_multiplier": 0.5}
    assert parse_model_arguments("{}") == {}  # the teacher's own architecture: born-again distillation


def test_distillation_loss_equals_the_formula_by_hand():
    labels = np.array([0, 1])
    student = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]], dtype=np.float32)
    teacher = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]], dtype=np.float32)
    alpha, temperature = 0.3, 2.0

    def soften(p):
        logits = np.log(p) / temperature
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    hard = -np.log(student[[0, 1], labels])
    kl = np.sum(soften(teacher) * (np.log(soften(teacher)) - np.log(soften(student))), axis=1)
    expected = np.mean(alpha * hard + (1 - alpha) * temperature**2 * kl)
    actual = distillation_loss(labels, student, teacher, alpha=alpha, temperature=temperature)
    assert float(actual) == pytest.approx(float(expected), rel=1e-5)
    assert float(distillation_loss(labels, teacher, teacher, alpha=0.0, temperature=3.0)) == pytest.approx(
        0, abs=1e-5
    )


def test_prune_run_of_each_family_exports_with_the_zeros(digits_run, text_run, tmp_path):
    from bigmodels.workflows.export import export_run
    from bigmodels.workflows.prune import prune_run

    for run, modes in ((digits_run, ["float32", "int8"]), (text_run, ["float32", "int16x8"])):
        pruned, metrics = prune_run(run, tmp_path / f"{run.name}_pruned", sparsity=0.7, epochs=1, verbose=0)
        config = json.loads((pruned / "config.json").read_text())
        spare_below, kernel_sparsity = config["pruning"]["min_weights"], config["pruning"]["kernel_sparsity"]
        for entry in metrics["sparsity_per_weight"]:  # small kernels spared, the others make up for them
            expected = round(kernel_sparsity * entry["total"]) if entry["total"] >= spare_below else 0
            assert entry["zeros"] == expected, entry
        assert metrics["sparsity"] == pytest.approx(0.7, abs=0.002)
        assert config["pruning"]["schedule"]["class"] == "polynomial" and config["pruned_from"]
        report = export_run(pruned, quantization=modes, latency_repeats=5, max_accuracy_drop=100)
        # A copy: exporting the shared run in place would replace the export other tests read.
        copy = shutil.copytree(run, tmp_path / f"{run.name}_copy", ignore=shutil.ignore_patterns("export*"))
        original = export_run(copy, quantization=modes[:1], latency_repeats=5, max_accuracy_drop=100)
        pruned_float = next(a for a in report["artifacts"] if a["file"] == "model_float32.tflite")
        original_float = next(a for a in original["artifacts"] if a["file"] == "model_float32.tflite")
        assert pruned_float["gzip_bytes"] < 0.7 * original_float["gzip_bytes"]  # zeros compress
        assert pruned_float["agreement"] >= 0.95


def test_a_pruned_classifier_is_taught_by_its_unpruned_source_unless_told_not_to(digits_run, tmp_path):
    from bigmodels.run_folder import load_run_model
    from bigmodels.workflows.prune import prune_run

    weights = {}
    for distill in (True, False):
        pruned, _ = prune_run(
            digits_run, tmp_path / f"pruned_{distill}", sparsity=0.5, epochs=1, distill=distill, verbose=0
        )
        assert json.loads((pruned / "config.json").read_text())["pruning"]["distilled_from_source"] is distill
        model = load_run_model(pruned)  # the plain student, not the distiller that trained it
        assert type(model).__name__ != "Distiller"
        assert model.count_params() == load_run_model(digits_run).count_params()
        weights[distill] = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(weights[True], weights[False], strict=True))


@pytest.mark.parametrize(
    "last_training, validations, taught",
    [(0.999, (0.70, 0.787, 0.779), True), (0.995, (0.990, 0.993), False)],
)
def test_a_source_that_overfits_its_labels_teaches_its_pruned_copy(
    tmp_path, last_training, validations, taught
):
    from bigmodels.workflows.prune import source_overfits

    rows = [f"{index},0.9,0.1,{value},0.2" for index, value in enumerate(validations)]
    rows[-1] = f"{len(rows) - 1},{last_training},0.1,{validations[-1]},0.2"
    (tmp_path / "history.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n" + "\n".join(rows) + "\n"
    )
    overfits, reason = source_overfits(tmp_path)
    assert overfits is taught
    assert f"{max(validations):.4f}" in reason and f"{last_training:.4f}" in reason


def test_a_source_without_its_history_is_taught_as_before(tmp_path):
    from bigmodels.workflows.prune import source_overfits

    assert source_overfits(tmp_path) == (
        True,
        "no training and validation accuracy in history.csv: taught by the source",
    )
    (tmp_path / "history.csv").write_text("epoch,accuracy,val_accuracy\n0,0.9,NA\n")
    assert source_overfits(tmp_path)[0] is True


def test_a_default_prune_records_why_it_was_or_was_not_taught(digits_run, tmp_path):
    from bigmodels.workflows.prune import prune_run, source_overfits

    pruned, _ = prune_run(digits_run, tmp_path / "pruned", sparsity=0.5, epochs=1, verbose=0)
    record = json.loads((pruned / "config.json").read_text())["pruning"]
    overfits, reason = source_overfits(digits_run)
    assert record["distilled_from_source"] is overfits
    assert record["distillation_chosen_by"] == reason


@pytest.mark.parametrize("flags, distill", [([], None), (["--distill"], True), (["--no-distill"], False)])
def test_the_prune_app_distills_when_asked_or_derived(monkeypatch, flags, distill):
    import importlib.util

    import bigmodels

    spec = importlib.util.spec_from_file_location("prune_app", ROOT / "apps" / "prune.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    asked = {}

    def record(run, out, **settings):
        asked.update(settings)
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(bigmodels, "prune_run", record)
    with pytest.raises(KeyboardInterrupt):
        app.main(app.parse_args(["--run", "some_run", *flags]))
    assert asked["distill"] is distill


def test_a_pruned_dcgan_generator_still_trains_and_exports(gan_run, tmp_path):
    from bigmodels.workflows.export import export_run
    from bigmodels.workflows.prune import prune_run

    pruned, metrics = prune_run(gan_run, tmp_path / "gan_pruned", sparsity=0.5, epochs=2, verbose=0)
    assert metrics["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert json.loads((pruned / "config.json").read_text())["pruning"]["distilled_from_source"] is False
    assert len(metrics["score_per_epoch"]) == 2 and np.isfinite(metrics["classifier_score"])
    history = (pruned / "history.csv").read_text().splitlines()
    assert len(history) == 3 and "nan" not in history[-1].lower()
    report = export_run(pruned, quantization=["float32"], latency_repeats=5)
    assert report["artifacts"][1]["mean_abs_pixel_difference"] < 0.5


def test_distill_run_compares_teacher_student_alone_and_distilled(text_run, tmp_path):
    from bigmodels.workflows.distill import distill_run

    student_dir, metrics = distill_run(
        text_run,
        tmp_path / "student",
        student_args={"width": 8, "feedforward_size": 16, "embedding_size": 8, "ngram_order": 0},
        epochs=8,
        verbose=0,
    )
    comparison = metrics["distillation"]
    assert set(comparison) == {"teacher", "student_alone", "distilled_student"}
    assert comparison["distilled_student"]["num_parameters"] < comparison["teacher"]["num_parameters"] / 2
    assert comparison["student_alone"]["num_parameters"] == comparison["distilled_student"]["num_parameters"]
    assert (student_dir / "student_alone" / "model.keras").is_file() and (
        student_dir / "vocabulary.txt"
    ).is_file()
    assert comparison["distilled_student"]["test_accuracy"] >= 0.7  # chance is 0.5
    training = json.loads((student_dir / "config.json").read_text())["training"]
    assert training["weight_averaging"] == 0.0 and training["epochs"] == 8  # the teacher averaged
    with pytest.raises(ValueError, match="no argument"):
        distill_run(text_run, tmp_path / "bad", student_args={"wdth": 8})


def test_small_kernels_can_stay_dense():
    model = small_cnn()
    images, labels = separable_images(32, size=(16, 16))
    pruner = MagnitudePruner(model, ConstantSparsity(0.8, frequency=1), min_weights=1000)
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0, callbacks=[pruner])
    for entry in sparsity_report(model):
        expected = round(0.8 * entry["total"]) if entry["total"] >= 1000 else 0
        assert entry["zeros"] == expected, entry


def test_spared_small_kernels_are_made_up_for_by_the_others():
    from bigmodels.compress.pruning import spared_plan

    sizes = [144, 4608, 9216, 13824, 480]  # the MNIST CNN's kernels
    min_weights, kernel_sparsity = spared_plan(sizes, 0.8, None)
    assert min_weights == 1000
    assert kernel_sparsity * (sum(sizes) - 144 - 480) == pytest.approx(0.8 * sum(sizes))
    assert spared_plan(sizes, 0.8, 0) == (0, 0.8)
    assert spared_plan([500, 1200], 0.8, None) == (0, 0.8)  # 1200 weights cannot hold them all
    with pytest.raises(ValueError, match="lower --min-weights or --sparsity"):
        spared_plan([500, 1200], 0.8, 1000)
