"""The public API: one name per verb, load_model, tasks for every registered model, and a plain
``keras.saving.load_model`` on a run after ``import bigmodels`` (issue 14)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import bigmodels


def test_every_registered_model_has_a_task_and_only_trainable_families_are_listed():
    from bigmodels.tasks import TASKS

    assert set(bigmodels.list_models()) == {
        "backbone_classifier",
        "cnn_classifier",
        "transformer_classifier",
        "embedding_bag_classifier",
        "ngram_classifier",
        "text_backbone_classifier",
        "dcgan",
    }
    for name in bigmodels.list_models():
        assert bigmodels.task_of(name) in TASKS.values()
    assert bigmodels.task_of("dcgan").name == "image_generation"
    assert bigmodels.task_of("embedding_bag_classifier").data_kind == "text"
    with pytest.raises(ValueError, match="unknown model 'dcgan_generator'"):
        bigmodels.task_of("dcgan_generator")


def test_every_public_name_resolves():
    for name in bigmodels.__all__:
        assert getattr(bigmodels, name) is not None, name


def test_load_model_loads_a_run_folder_or_its_file(digits_run):
    model = bigmodels.load_model(digits_run)
    again = bigmodels.load_model(digits_run / "model.keras")
    pixels = np.random.default_rng(0).integers(0, 256, (4, *model.input_shape[1:]), dtype=np.uint8)
    np.testing.assert_array_equal(model.predict(pixels, verbose=0), again.predict(pixels, verbose=0))
    with pytest.raises(FileNotFoundError, match="no model file"):
        bigmodels.load_model(digits_run / "missing")


@pytest.mark.parametrize("fixture", ["digits_run", "gan_run"])
def test_keras_load_model_works_after_a_plain_import_bigmodels(fixture, request):
    """The package's layers (FusedBatchNormalization, the DCGAN class) register themselves when
    Keras is imported, without ``import bigmodels.models``."""
    run_dir = request.getfixturevalue(fixture)
    code = (
        "import bigmodels\n"
        "import keras\n"
        f"model = keras.saving.load_model({str(run_dir / 'model.keras')!r})\n"
        "print(type(model).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] in ("Functional", "DCGAN")
