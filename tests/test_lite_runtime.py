"""bigmodels.lite works with TensorFlow and Keras unimportable, as on a device."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from bigmodels.lite import TFLiteModel, load_image

BLOCKED_RUN = """
import json, sys
import numpy as np
for name in ("tensorflow", "keras", "keras_hub", "tensorflow_text", "tensorflow_datasets"):
    sys.modules[name] = None  # any import of them now raises ImportError
from bigmodels.lite import TFLiteModel, WordPieceTokenizer, load_image
pixels = np.stack([load_image(path, size=(8, 8), channels=1) for path in sys.argv[2:]])
model = TFLiteModel(sys.argv[1])
tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "ok"], lowercase=True)
print(json.dumps({"probabilities": model.predict(pixels).tolist(), "ids": tokenizer(["OK ok x"]).tolist()}))
"""


def test_runtime_needs_no_tensorflow(digits_run, tmp_path):
    from bigmodels.workflows.export import export_run

    export_run(digits_run, quantization=["int8"], latency_repeats=5)
    model_path = digits_run / "export" / "model_int8.tflite"
    paths = []
    for index, value in enumerate((0, 120, 255)):
        path = tmp_path / f"{index}.png"
        Image.fromarray(np.full((16, 12), value, np.uint8)).save(path)
        paths.append(str(path))
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(model_path), *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    expected = TFLiteModel(model_path).predict(
        np.stack([load_image(p, size=(8, 8), channels=1) for p in paths])
    )
    np.testing.assert_allclose(np.asarray(output["probabilities"]), expected, atol=1e-6)
    assert output["ids"] == [[2, 2, 1]]


def test_load_image_crops_to_aspect_then_resizes(tmp_path):
    picture = np.zeros((40, 80, 3), np.uint8)
    picture[:, 20:60] = 255  # a white centre square in a wide black frame
    Image.fromarray(picture).save(tmp_path / "wide.png")
    pixels = load_image(tmp_path / "wide.png", size=(10, 10), channels=3)
    assert pixels.shape == (10, 10, 3) and pixels.dtype == np.uint8
    assert pixels.min() > 200  # the centre crop keeps only the square


def test_tied_scores_rank_by_class_index_as_argmax_picks():
    """An int8 output has 256 levels, so two classes can tie; the label must be np.argmax's
    (the self-test's and the evaluation's pick), whatever order the scores come in."""
    from bigmodels.lite import load_bundle

    bundle = load_bundle("cifar10_tiny")
    scores = np.array([[0.05, 0.1, 0.3, 0.3, 0.0, 0.05, 0.1, 0.0, 0.0, 0.1]], dtype=np.float32)
    bundle.model.predict = lambda inputs: np.repeat(scores, len(inputs), axis=0)
    results = bundle.predict(np.zeros((3, 32, 32, 3), np.uint8), top_k=3)
    assert [result["label"] for result in results] == ["bird"] * 3
    assert list(results[0]["scores"]) == ["bird", "cat", "automobile"]
