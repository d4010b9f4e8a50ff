"""--training-resolution-scale: a CNN that trains at a lower resolution than it infers at (FixRes);
inference, the saved model and the int8 file all work at the full resolution."""

import keras
import numpy as np
import pytest

from bigmodels.models.cnn import cnn_classifier

OPTIONS = {"input_shape": (40, 40, 3), "num_classes": 3, "variant": "mobile", "width_multiplier": 0.25}
OPTIONS["dropout"] = 0.0  # training-mode outputs are then deterministic, so they can be compared


def pixels(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 40, 40, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def models():
    """The FixRes model (inference at 32, training at 24), and plain models at 32 and 24 with its weights."""
    keras.utils.set_random_seed(0)
    fixres = cnn_classifier(**OPTIONS, resolution=32, training_resolution_scale=0.75)
    plain = {side: cnn_classifier(**OPTIONS, resolution=side) for side in (32, 24)}
    for model in plain.values():
        model.set_weights(fixres.get_weights())
    return fixres, plain


def test_it_infers_at_the_resolution_and_trains_at_its_share(models):
    fixres, plain = models
    x = pixels(6)
    assert fixres.get_layer("resize").output.shape[1:3] == (32, 32)
    np.testing.assert_allclose(fixres.predict(x, verbose=0), plain[32].predict(x, verbose=0), atol=1e-6)
    # In training mode (BatchNorm on the batch's statistics) it is the model at 24 pixels.
    np.testing.assert_allclose(fixres(x, training=True), plain[24](x, training=True), atol=1e-5)
    assert not np.allclose(fixres(x, training=True), plain[32](x, training=True), atol=1e-3)


def test_it_fits_saves_and_loads(models, tmp_path):
    fixres, _ = models
    model = keras.models.clone_model(fixres)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(pixels(8, seed=1), np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    x = pixels(3, seed=2)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert reloaded.get_layer("resize").get_config()["training_size"] == [24, 24]


def test_the_int8_file_resizes_to_the_inference_resolution(models):
    from ai_edge_litert.interpreter import Interpreter

    from bigmodels.convert.tflite import convert_tflite
    from bigmodels.lite.runtime import TFLiteModel

    fixres, _ = models
    content = convert_tflite(fixres, "int8", pixels(20, seed=3))
    interpreter = Interpreter(model_content=content)
    resize = [op for op in interpreter._get_ops_details() if op["op_name"] == "RESIZE_BILINEAR"]
    assert len(resize) == 1
    shapes = {d["index"]: d["shape"] for d in interpreter.get_tensor_details()}
    assert list(shapes[resize[0]["outputs"][0]][1:3]) == [32, 32]
    x = pixels(5, seed=4)
    assert np.abs(TFLiteModel(content).predict(x) - fixres.predict(x, verbose=0)).max() < 0.1


@pytest.mark.parametrize("scale", [0, -0.5, 1.5])
def test_a_scale_outside_zero_to_one_is_refused(scale):
    with pytest.raises(ValueError, match="training_resolution_scale"):
        cnn_classifier(**OPTIONS, resolution=32, training_resolution_scale=scale)
