"""Every registered builder passes the shared checks; the CNN's own choices are tested too."""

import keras
import numpy as np
import pytest
from helpers import (
    SMALL_MODEL_CONFIGS,
    check_config_round_trip,
    check_fit_one_step,
    check_save_load,
    check_tflite_matches_keras,
)

from bigmodels import get_model, list_models, register_model
from bigmodels.models import choose_cnn_variant

CASES = [
    (name, config)
    for name in list_models()
    for config in SMALL_MODEL_CONFIGS.get(name, [])
    if "num_classes" in config  # classifiers; the DCGAN family is checked in test_dcgan.py
]
IDS = [f"{name}-{config.get('variant', index)}" for index, (name, config) in enumerate(CASES)]


def test_every_registered_model_has_a_small_config():
    assert set(list_models()) <= set(SMALL_MODEL_CONFIGS)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn_classifier", task="image_classification")(lambda: None)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*cnn_classifier"):
        get_model("resnet9000")


@pytest.mark.parametrize("name, config", CASES, ids=IDS)
def test_builder_contract(name, config, tmp_path):
    # Seeded: an unlucky random mobile CNN once gave outputs that did not vary with the input
    # (the check below needs them to), failing one CI run.
    keras.utils.set_random_seed(0)
    model = get_model(name, **config)
    takes_text = "vocabulary_size" in config
    # Images go in as raw uint8 pixels, text as int32 token ids (string ops are not TFLite builtins).
    assert model.inputs[0].dtype == ("int32" if takes_text else "uint8")
    assert model.output_shape == (None, config["num_classes"])
    assert all(layer.name for layer in model.layers)
    check_config_round_trip(model)
    check_save_load(model, tmp_path / "model.keras")
    check_fit_one_step(model, config["num_classes"])
    check_tflite_matches_keras(model)


def test_compact_variant_stays_under_35k_parameters_on_mnist():
    model = get_model("cnn_classifier", input_shape=(28, 28, 1), num_classes=10, variant="compact")
    assert model.count_params() <= 35_000


def test_width_multiplier_scales_the_mobile_variant():
    small = get_model(
        "cnn_classifier",
        input_shape=(64, 64, 3),
        num_classes=2,
        variant="mobile",
        width_multiplier=0.25,
    )
    large = get_model(
        "cnn_classifier",
        input_shape=(64, 64, 3),
        num_classes=2,
        variant="mobile",
        width_multiplier=1.0,
    )
    assert large.count_params() > 4 * small.count_params()
    assert any(layer.__class__.__name__ == "DepthwiseConv2D" for layer in small.layers)


def test_resize_happens_inside_the_model():
    model = get_model(
        "cnn_classifier", input_shape=(40, 30, 3), num_classes=2, variant="mobile", resolution=32
    )
    assert model.get_layer("resize").output.shape[1:3] == (32, 32)


@pytest.mark.parametrize(
    "shape, variant",
    [
        ((28, 28, 1), "compact"),
        ((8, 8, 1), "compact"),
        ((160, 160, 3), "mobile"),
        ((32, 32, 3), "mobile"),
        ((224, 224, 1), "mobile"),
    ],
)
def test_variant_is_chosen_from_the_data(shape, variant):
    assert choose_cnn_variant(shape) == variant


@pytest.mark.parametrize(
    "bad",
    [
        {"variant": "huge"},
        {"num_classes": 1},
        {"input_shape": (28, 28, 2)},
        {"width_multiplier": 0},
    ],
)
def test_bad_builder_arguments_raise_value_error(bad):
    with pytest.raises(ValueError):
        get_model("cnn_classifier", **bad)


def test_fused_batch_normalization_matches_keras_batch_normalization():
    """Same outputs, same moving statistics and same weights as keras.layers.BatchNormalization,
    in training and in inference, so swapping it in changes speed only."""
    from bigmodels.models.layers import FusedBatchNormalization

    images = np.random.default_rng(0).normal(2.0, 3.0, (16, 5, 5, 4)).astype("float32")
    reference = keras.layers.BatchNormalization(momentum=0.9)
    fused = FusedBatchNormalization(momentum=0.9)
    for layer in (reference, fused):
        layer.build(images.shape)
    fused.set_weights([weight + 0.1 * index for index, weight in enumerate(reference.get_weights())])
    reference.set_weights(fused.get_weights())
    for _ in range(3):
        np.testing.assert_allclose(fused(images, training=True), reference(images, training=True), atol=1e-5)
    for fused_weight, reference_weight in zip(fused.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(fused_weight, reference_weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused(images), reference(images), atol=1e-5)
    # Frozen, it normalizes with the moving statistics, as Keras's layer does.
    fused.trainable = reference.trainable = False
    np.testing.assert_allclose(fused(images, training=True), reference(images, training=True), atol=1e-5)
