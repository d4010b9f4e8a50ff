"""Shared test helpers: small data the tests make, and checks every model family must pass."""

import contextlib
import gzip
import importlib.util
import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def mock_tfds(folder: Path, num_examples: int):
    """tfds.testing.mock_data, with the folder tfds makes for each dataset's metadata
    (``tempfile.mkdtemp("tfds")``, never removed) under ``folder`` instead of /tmp."""
    import tempfile
    from unittest import mock

    import tensorflow_datasets as tfds

    mocked = tfds.testing.mock_data(num_examples=num_examples)
    with mock.patch.object(tempfile, "tempdir", str(folder)), mocked:
        yield


def load_app(name: str):
    """apps/<name>.py as a module; its ``__main__`` block does not run."""
    spec = importlib.util.spec_from_file_location(f"app_{name}", ROOT / "apps" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_app_in_process(name: str, *arguments, tensorflow: bool = True) -> subprocess.CompletedProcess:
    """apps/<name>.py run in this process as its ``__main__`` block runs it (``run_app``, the one
    place that turns bad input into one stderr line and exit code 2); the result reads like
    ``subprocess.run``'s. For bad input refused before training: a fresh interpreter spends about
    5 s importing TensorFlow per call, this worker has it already. The tests that train or
    export, and test_unknown_flag_is_one_line, still start the real script."""
    from bigmodels.cli import run_app

    app = load_app(name)
    argv = [str(argument) for argument in arguments]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = run_app(app.main, app.parse_args, argv, tensorflow=tensorflow)
        except SystemExit as exit:  # argparse's own refusals (a bad flag value)
            code = exit.code
    return subprocess.CompletedProcess([name, *argv], code, stdout.getvalue(), stderr.getvalue())


def separable_images(count: int, *, size=(16, 16), channels=1, num_classes=2, seed=0):
    """uint8 images whose class is the position of a bright square: easy to learn, real pixels."""
    generator = np.random.default_rng(seed)
    height, width = size
    images = generator.integers(0, 60, size=(count, height, width, channels), dtype=np.uint8)
    labels = np.arange(count) % num_classes
    band = width // num_classes
    for index, label in enumerate(labels):
        images[index, height // 4 : 3 * height // 4, label * band : (label + 1) * band] = 230
    return images, labels.astype(np.int64)


def write_image_folder(
    root: Path,
    *,
    per_class=12,
    size=(20, 24),
    channels=3,
    classes=("ants", "bees"),
    extension=".png",
    seed=0,
    uneven=False,
) -> Path:
    """Writes root/<class>/<i><extension> images (optionally of uneven sizes)."""
    images, labels = separable_images(
        per_class * len(classes), size=size, channels=channels, num_classes=len(classes), seed=seed
    )
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image.squeeze(-1) if channels == 1 else image)
        if uneven:
            picture = picture.resize((size[1] + 3 * (index % 4), size[0] + 2 * (index % 3)))
        picture.save(folder / f"{index}{extension}")
    return root


def write_corrupt_files(folder: Path) -> list[Path]:
    """A truncated JPEG, an empty file and text named .jpg: the broken files real folders have."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good_for_truncation.jpg"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(good, quality=95)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    good.unlink()
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    text = folder / "notes.jpg"
    text.write_text("this is not an image\n")
    return [truncated, empty, text]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes an unsigned-byte IDX file (the MNIST format), gzip-compressed."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_idx_folder(root: Path, *, train=40, test=20, size=(12, 12)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = separable_images(count, size=size, num_classes=4, seed=seed)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images[..., 0])
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def small_features_model(channels: int = 3):
    """A tiny seeded feature extractor (float pixels 0-255 in, a feature map out), as a Python
    user would pass to ``backbone_classifier(backbone=...)``."""
    import keras

    pixels = keras.Input(shape=(16, 16, channels), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale")(pixels)
    x = keras.layers.Conv2D(8, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=0), name="conv")(x)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU(name="conv_relu")(x)
    return keras.Model(pixels, x, name="backbone")


def tiny_text_preset(vocabulary_size: int = 300) -> str:
    """A keras-hub BertBackbone of a few thousand random weights and its BertTokenizer (BERT's
    special tokens, then made-up words), saved as a local preset folder (removed at exit): what
    ``text_backbone_classifier(backbone=...)`` takes, with nothing to download."""
    import atexit
    import shutil
    import tempfile

    import keras_hub

    folder = Path(tempfile.mkdtemp(prefix="bigmodels-tiny-bert-"))
    atexit.register(shutil.rmtree, folder, True)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocabulary += [f"word{index}" for index in range(vocabulary_size - len(vocabulary))]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=32,
    )  # fmt: skip
    # Seeded weights of stddev 0.2: BERT's initial ones (0.02) leave the pooled output nearly
    # constant at this width, and the builder contract needs outputs that vary with the input.
    generator = np.random.default_rng(0)
    backbone.set_weights(
        [generator.normal(0, 0.2, w.shape) if w.ndim > 1 else w for w in backbone.get_weights()]
    )
    backbone.save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(folder))
    return str(folder)


# Small configurations of every registered builder; a builder missing here fails
# test_every_registered_model_has_a_small_config, so new families are tested by default.
SMALL_MODEL_CONFIGS = {
    "cnn_classifier": [
        {"input_shape": (16, 16, 1), "num_classes": 3, "variant": "compact"},
        {
            "input_shape": (32, 32, 3),
            "num_classes": 2,
            "variant": "mobile",
            "width_multiplier": 0.25,
            "resolution": 24,
        },
    ],
    "transformer_classifier": [
        {
            "vocabulary_size": 300,
            "sequence_length": 16,
            "num_classes": 3,
            "width": 16,
            "num_heads": 2,
            "feedforward_size": 32,
            "depth": 2,
        }
    ],
    "embedding_bag_classifier": [
        {"vocabulary_size": 300, "sequence_length": 16, "num_classes": 2, "width": 8}
    ],
    "ngram_classifier": [
        {"vocabulary_size": 300, "sequence_length": 16, "num_classes": 3, "ngram_buckets": 1000},
        {"vocabulary_size": 300, "sequence_length": 16, "num_classes": 2, "ngram_order": 1},
        {
            "vocabulary_size": 300,
            "sequence_length": 16,
            "num_classes": 2,
            "ngram_order": 3,
            "ngram_buckets": 700,
        },
    ],
    # Grayscale data on a colour backbone of another size: widened and resized inside the model.
    "backbone_classifier": [
        {"backbone": small_features_model(), "input_shape": (20, 20, 1), "num_classes": 3}
    ],
    # A keras-hub text preset: [CLS], [SEP] and the padding mask are built inside the model.
    "text_backbone_classifier": [
        {"backbone": tiny_text_preset(), "vocabulary_size": 300, "sequence_length": 16, "num_classes": 2}
    ],
    # The DCGAN family has its own contract (tests/test_dcgan.py): no classes, latent vectors in.
    "dcgan": [{"image_shape": (8, 8, 1), "latent_size": 8, "base_filters": 4}],
    "dcgan_generator": [{"image_shape": (28, 28, 1), "latent_size": 8, "base_filters": 4}],
    "dcgan_discriminator": [{"image_shape": (32, 32, 3), "base_filters": 4}],
}


def sample_inputs(model, count=8, seed=0):
    """Random inputs of the model's input dtype and shape: pixels, or token ids (1..255) of
    varied lengths followed by padding zeros."""
    generator = np.random.default_rng(seed)
    shape = (count, *model.input_shape[1:])
    if model.inputs[0].dtype == "uint8":
        return generator.integers(0, 256, size=shape).astype("uint8")
    ids = generator.integers(1, 256, size=shape).astype(model.inputs[0].dtype)
    for row, length in zip(ids, generator.integers(1, shape[1] + 1, size=count), strict=True):
        row[length:] = 0
    return ids


def check_config_round_trip(model):
    import keras

    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    inputs = sample_inputs(model)
    np.testing.assert_allclose(clone.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)


def check_save_load(model, path: Path):
    import keras

    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    inputs = sample_inputs(model)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)


def check_fit_one_step(model, num_classes):
    import keras

    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    inputs = sample_inputs(model, count=16)
    history = model.fit(inputs, np.arange(16) % num_classes, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
    assert any(changed), "one fit step changed no weight"


def check_tflite_matches_keras(model, mode="float32", atol=1e-4):
    from bigmodels.convert.tflite import convert_tflite
    from bigmodels.lite import TFLiteModel

    inputs = sample_inputs(model, count=16)
    for _ in range(30):  # fresh BatchNorm statistics make deep nets output a constant; warm them
        model(inputs, training=True)
    expected = model.predict(inputs, verbose=0)
    assert expected.std(axis=0).max() > 1e-3, "outputs do not depend on inputs: the check would be empty"
    runner = TFLiteModel(convert_tflite(model, mode, sample_inputs(model, count=16, seed=1)))
    np.testing.assert_allclose(runner.predict(inputs), expected, atol=atol)


# Short reviews in English, Chinese (no spaces) and Yorùbá (tone marks and underdots): the
# sentiment phrase decides the label, the filler words are shared by both classes.
SENTIMENT_PHRASES = {
    "positive": ["a wonderful, moving film", "这部电影非常精彩", "Fíìmù yìí dára púpọ̀"],
    "negative": ["a dull, tedious mess", "这部电影很无聊", "Fíìmù yìí burú jáì"],
}
FILLER = ["the", "story", "of", "ọmọ", "ilé", "今天", "我们", "actors", "àṣà", "ending"]


def review_rows(count: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(title, body, label) rows: multilingual, with commas, quotes and a newline inside fields."""
    generator = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        label = "positive" if index % 2 == 0 else "negative"
        phrase = SENTIMENT_PHRASES[label][index % 3]
        filler = " ".join(generator.choice(FILLER, size=int(generator.integers(1, 6))))
        title = f'Review {index}, "{filler}"'
        body = f"{filler}\n{phrase}" if index % 5 == 0 else f"{phrase} {filler}"
        rows.append((title, body, label))
    return rows


def write_reviews_csv(path: Path, count: int = 120, *, seed: int = 0, header: bool = True) -> Path:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(["title", "body", "sentiment"])
        writer.writerows(review_rows(count, seed))
    return path


def write_chinese_reviews_tsv(path: Path, count: int = 120) -> Path:
    """A headerless TSV (text, label) of Chinese reviews: no spaces, a token per character; the
    label follows the phrase (很好看/喜欢 or 不好看/失望) inside varied filler."""
    generator = np.random.default_rng(0)
    liked, disliked, filler = ("很好看", "喜欢"), ("不好看", "失望"), "这本书的内容和故事我们昨天都读了"
    rows = []
    for index in range(count):
        words = liked if index % 2 else disliked
        middle = "".join(generator.choice(list(filler), 6))
        rows.append(f"{middle}{words[index % 4 // 2]}{middle[::-1]}\t{'好评' if index % 2 else '差评'}\n")
    path.write_text("".join(rows), encoding="utf-8")
    return path


PREDICT_WITHOUT_TENSORFLOW = """
import json, sys
for name in ("tensorflow", "keras", "keras_hub", "tensorflow_text", "tensorflow_datasets"):
    sys.modules[name] = None  # any import of them now raises ImportError
from bigmodels.lite import load_bundle
bundle = load_bundle(sys.argv[1])
results = bundle.predict(sys.argv[2:])
print(json.dumps({"labels": [r["label"] for r in results], "selftest": bundle.selftest()}))
"""


def predict_without_tensorflow(bundle: Path, inputs: list) -> dict:
    """A bundle's labels for ``inputs`` (texts or image paths) and its self-test, in a process
    where TensorFlow, Keras and keras-hub cannot be imported (as on a device)."""
    result = subprocess.run(
        [sys.executable, "-c", PREDICT_WITHOUT_TENSORFLOW, str(bundle), *map(str, inputs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
