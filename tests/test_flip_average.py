"""--flip-average: at inference a photo and its mirror image are classified as one batch and their
probabilities averaged; training sees one view; every runtime (TFLite Micro included) agrees."""

import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest

IMAGE = (12, 16, 3)


def pixels(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *IMAGE)).astype(np.uint8)


@pytest.fixture(scope="module")
def pair():
    """A classifier that averages mirrored views, and the same weights without the averaging."""
    from bigmodels.models.cnn import cnn_classifier

    options = {"input_shape": IMAGE, "num_classes": 3, "variant": "resnet", "width_multiplier": 0.5}
    keras.utils.set_random_seed(0)
    averaged = cnn_classifier(**options, flip_average=True)
    plain = cnn_classifier(**options)
    plain.set_weights(averaged.get_weights())
    return averaged, plain


def test_predictions_are_the_mean_of_the_image_and_its_mirror_image_and_training_sees_one(pair):
    averaged, plain = pair
    x = pixels(5)
    expected = (plain.predict(x, verbose=0) + plain.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(averaged.predict(x, verbose=0), expected, atol=1e-6)
    assert keras.models.clone_model(averaged)(x, training=True).shape == (5, 3)  # one view while training
    path = Path(tempfile.mkdtemp()) / "model.keras"
    averaged.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)


def test_the_int8_file_averages_the_views_in_litert_and_tflite_micro_alike(pair, tmp_path):
    from bigmodels.convert.micro import compare_with_litert, run_on_micro
    from bigmodels.convert.tflite import convert_tflite
    from bigmodels.lite.runtime import TFLiteModel

    averaged, plain = pair
    x = pixels(6, seed=1)
    content = convert_tflite(averaged, "int8", pixels(20, seed=2))
    litert = TFLiteModel(content, xnnpack=False)
    batched = litert.predict(x)
    one_by_one = np.concatenate([litert.predict(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(batched, one_by_one)  # a batch of N pairs as N single images
    keras_probabilities = averaged.predict(x, verbose=0)
    assert np.abs(batched - keras_probabilities).max() < 0.05
    (tmp_path / "m.tflite").write_bytes(content)
    measured, micro_outputs = run_on_micro(tmp_path / "m.tflite", x)
    assert micro_outputs is not None, measured
    # A dynamic batch would be written as 1 in the file, and Micro left the mirrored half
    # uncomputed (outputs 120-250 steps off). Rounding alone may differ by a few steps.
    comparison = compare_with_litert(content, x, micro_outputs)
    assert comparison.get("litert_difference", {"max_steps": 0})["max_steps"] <= 16, comparison
