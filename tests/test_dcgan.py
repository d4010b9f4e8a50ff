"""The DCGAN family: builders, train_step, save/load/resume, quality scores, run folder, export."""

import json

import keras
import numpy as np
import pytest
from helpers import SMALL_MODEL_CONFIGS, separable_images

from bigmodels import get_model
from bigmodels.models.dcgan import dcgan_discriminator, dcgan_generator
from bigmodels.quality.generation import GeneratedImageScorer, classifier_score, frechet_distance


@pytest.mark.parametrize(
    "shape, start", [((28, 28, 1), 7), ((32, 32, 3), 4), ((64, 64, 3), 4), ((8, 8, 1), 4)]
)
def test_networks_are_sized_from_the_image_shape(shape, start):
    gan = get_model("dcgan", image_shape=shape, latent_size=16, base_filters=4)
    assert gan.generator.output_shape == (None, *shape)
    assert gan.generator.get_layer("to_grid").output.shape[1:3] == (start, start)
    assert gan.discriminator.output_shape == (None, 1)


@pytest.mark.parametrize("shape", [(28, 30, 1), (28, 28, 2), (5, 5, 1)])
def test_unusable_image_shapes_are_refused(shape):
    with pytest.raises(ValueError):
        get_model("dcgan", image_shape=shape)


def test_generator_and_discriminator_builders_round_trip_their_config():
    for name, builder in (("dcgan_generator", dcgan_generator), ("dcgan_discriminator", dcgan_discriminator)):
        model = builder(**SMALL_MODEL_CONFIGS[name][0])
        clone = keras.Model.from_config(model.get_config())
        assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]


def tiny_gan(learning_rate=None, **overrides):
    config = {**SMALL_MODEL_CONFIGS["dcgan"][0], **overrides}
    gan = get_model("dcgan", **config)
    if learning_rate is None:
        gan.compile()
    else:  # the code tests learn within a few dozen steps
        gan.compile(keras.optimizers.Adam(learning_rate), keras.optimizers.Adam(learning_rate))
    return gan


def tiny_images(count=64):
    images, _ = separable_images(count, size=(8, 8))
    return images


def test_train_step_updates_both_networks_with_finite_losses():
    gan = tiny_gan(label_smoothing=0.1)
    generator_before = [w.copy() for w in gan.generator.get_weights()]
    discriminator_before = [w.copy() for w in gan.discriminator.get_weights()]
    history = gan.fit(tiny_images(), batch_size=16, epochs=2, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    for before, network in ((generator_before, gan.generator), (discriminator_before, gan.discriminator)):
        assert any(not np.array_equal(a, b) for a, b in zip(before, network.get_weights(), strict=True))
    assert int(gan.d_optimizer.iterations.numpy()) == int(gan.g_optimizer.iterations.numpy()) == 8


def test_code_embedding_looks_up_the_category_read_from_the_latent_vector():
    from bigmodels.models.layers import CodeEmbedding

    latents = np.random.default_rng(0).standard_normal((20000, 6)).astype("float32")
    layer = CodeEmbedding(4, 3)
    vectors = np.asarray(layer(latents))
    categories = latents[:, :4].argmax(axis=1)
    np.testing.assert_array_equal(np.asarray(CodeEmbedding.category(latents, 4)), categories)
    np.testing.assert_allclose(vectors, layer.embeddings.numpy()[categories])
    shares = np.bincount(categories, minlength=4) / len(categories)
    assert np.all(np.abs(shares - 0.25) < 0.02), shares  # Gaussian latents: uniform categories


def test_code_head_learns_the_code_and_both_networks_train():
    gan = tiny_gan(code_classes=3, learning_rate=5e-3)
    assert gan.discriminator.output_shape == [(None, 1), (None, 3)]
    assert gan.generator.get_layer("code_embedding").classes == 3
    generator_before = [w.copy() for w in gan.generator.get_weights()]
    history = gan.fit(tiny_images(), batch_size=16, epochs=15, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss", "code_loss"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert any(
        not np.array_equal(a, b) for a, b in zip(generator_before, gan.generator.get_weights(), strict=True)
    )
    # Both networks lower the code's cross-entropy: from ln 3 (chance) towards 0.
    assert history.history["code_loss"][0] > 0.8 and history.history["code_loss"][-1] < 0.5


def test_code_classes_are_validated_and_saved(tmp_path):
    for bad in (1, 9, -2):  # latent_size is 8
        with pytest.raises(ValueError, match="code_classes must be 0"):
            get_model("dcgan", image_shape=(8, 8, 1), latent_size=8, code_classes=bad)
    gan = tiny_gan(code_classes=4, code_weight=0.5)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras", safe_mode=True)
    assert (loaded.code_classes, loaded.code_weight) == (4, 0.5)
    latents = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    np.testing.assert_allclose(loaded.generator(latents), gan.generator(latents), atol=1e-6)


def test_code_from_labels_teaches_the_code_head_the_real_classes():
    images, labels = separable_images(64, size=(8, 8))  # two classes, told apart by a bright band
    gan = tiny_gan(code_classes=2, code_from_labels=True, learning_rate=5e-3)
    history = gan.fit(images, labels, batch_size=16, epochs=15, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss", "code_loss"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    real = images.astype("float32") / 127.5 - 1.0
    _, code_logits = gan.discriminator(real, training=False)
    assert (np.asarray(code_logits).argmax(axis=1) == labels).mean() >= 0.9
    with pytest.raises(ValueError, match="train on \\(images, labels\\) batches"):
        tiny_gan(code_classes=2, code_from_labels=True).fit(images, batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="code_from_labels needs code_classes"):
        get_model("dcgan", image_shape=(8, 8, 1), code_from_labels=True)


def test_discriminator_width_defaults_to_the_generator_width_and_is_validated():
    def first_conv_filters(gan):
        return gan.discriminator.get_layer("down_0").filters

    assert first_conv_filters(get_model("dcgan", base_filters=8)) == 8
    assert first_conv_filters(get_model("dcgan", base_filters=8, discriminator_filters=16)) == 16
    with pytest.raises(ValueError, match="discriminator_filters must be a positive"):
        get_model("dcgan", base_filters=8, discriminator_filters=0)


def test_latent_sampling_is_seeded():
    a, b, c = tiny_gan(seed=3), tiny_gan(seed=3), tiny_gan(seed=4)
    np.testing.assert_array_equal(a.sample_latent(5).numpy(), b.sample_latent(5).numpy())
    assert not np.array_equal(a.sample_latent(5).numpy(), c.sample_latent(5).numpy())


def test_label_smoothing_is_validated():
    with pytest.raises(ValueError, match="label_smoothing"):
        get_model("dcgan", image_shape=(8, 8, 1), label_smoothing=0.7)


def test_save_and_load_keep_both_networks_and_both_optimizers(tmp_path):
    gan = tiny_gan()
    gan.fit(tiny_images(), batch_size=16, epochs=1, verbose=0)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras", safe_mode=True)
    latents = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    np.testing.assert_allclose(loaded.generator(latents), gan.generator(latents), atol=1e-6)
    for name in ("d_optimizer", "g_optimizer"):
        saved, restored = getattr(gan, name), getattr(loaded, name)
        assert int(restored.iterations.numpy()) == int(saved.iterations.numpy()) == 4
        for a, b in zip(saved.variables, restored.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    loaded.fit(tiny_images(), batch_size=16, epochs=1, verbose=0)  # training goes on after loading
    assert int(loaded.g_optimizer.iterations.numpy()) == 8


def test_a_stopped_fit_resumes_from_its_backup(tmp_path):
    from bigmodels.data.dataset import Dataset, DatasetInfo
    from bigmodels.training.gan import fit_gan

    images = tiny_images()
    info = DatasetInfo("tiny", "image", ["a", "b"], (8, 8, 1), {"train": 64}, "none", "none")
    dataset = Dataset(arrays={"train": (images, np.zeros(64))}, info=info, batch_size=16)

    class StopAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated crash")

    arguments = {"epochs": 4, "learning_rate": 2e-4, "seed": 0, "verbose": 0}
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_gan(tiny_gan(), dataset, tmp_path, callbacks=[StopAfterSecondEpoch()], **arguments)
    resumed = tiny_gan()
    summary = fit_gan(resumed, dataset, tmp_path, **arguments)
    assert summary["epochs_trained"] == 2  # epochs 3 and 4 only
    assert int(resumed.d_optimizer.iterations.numpy()) == 16  # 4 epochs x 4 steps in total
    epochs = [line.split(",")[0] for line in (tmp_path / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2", "3"]
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == [
        f"epoch_00{i}.png" for i in range(1, 5)
    ]


def test_classifier_score_and_frechet_distance_by_hand():
    assert classifier_score(np.eye(4)) == pytest.approx(4.0)  # confident and balanced: the maximum
    assert classifier_score(np.tile([1.0, 0, 0, 0], (4, 1))) == pytest.approx(1.0)  # one class only
    mean, covariance = np.zeros(3), np.eye(3)
    assert frechet_distance(mean, covariance, mean, covariance) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mean, covariance, mean + 2.0, covariance) == pytest.approx(12.0)
    assert frechet_distance(mean, covariance, mean, 4 * covariance) == pytest.approx(3.0)  # 3 x (1 + 4 - 4)


def test_score_parts_say_whether_modes_are_missing_or_samples_ambiguous():
    from bigmodels.quality.generation import score_parts

    # Two classes, balanced, each sample 50/50: the marginal is full, every prediction unsure.
    unsure = score_parts(np.full((4, 2), 0.5))
    assert unsure["class_entropy"] == pytest.approx(np.log(2))
    assert unsure["prediction_entropy"] == pytest.approx(np.log(2))
    assert unsure["confident_share"] == 0.0
    # Confident but one class only: no prediction entropy, no class entropy.
    collapsed = score_parts(np.tile([0.95, 0.05], (4, 1)))
    assert collapsed["class_entropy"] == pytest.approx(collapsed["prediction_entropy"])
    assert collapsed["confident_share"] == 1.0
    probabilities = np.random.default_rng(0).dirichlet(np.ones(5), size=50)
    parts = score_parts(probabilities)
    assert classifier_score(probabilities) == pytest.approx(
        np.exp(parts["class_entropy"] - parts["prediction_entropy"])
    )


def test_score_ranks_real_images_above_noise(digits_run):
    from bigmodels.data import load_dataset
    from bigmodels.run_folder import load_run_model

    data = load_dataset("digits")
    test_images = data.arrays["test"][0]
    scorer = GeneratedImageScorer(load_run_model(digits_run), test_images)
    real = scorer.score(data.arrays["train"][0][:300])
    noise = scorer.score(np.random.default_rng(0).integers(0, 256, size=(300, 8, 8, 1)).astype(np.uint8))
    assert real["classifier_score"] > 2 * noise["classifier_score"]
    assert real["frechet_distance"] < noise["frechet_distance"] / 3
    assert real["confident_share"] > noise["confident_share"]
    assert "code_accuracy" not in real  # only for images drawn for a class
    labels = data.arrays["train"][1][:300]
    asked_right = scorer.score(data.arrays["train"][0][:300], labels)["code_accuracy"]
    asked_wrong = scorer.score(data.arrays["train"][0][:300], (labels + 1) % 10)["code_accuracy"]
    assert asked_right > 0.8 and asked_wrong < 0.2
    with pytest.raises(ValueError, match="uint8 images of shape"):
        scorer.score(np.zeros((4, 28, 28, 1), np.uint8))


def test_gan_run_folder(gan_run):
    metrics = json.loads((gan_run / "metrics.json").read_text())
    config = json.loads((gan_run / "config.json").read_text())
    assert [entry["epoch"] for entry in metrics["score_per_epoch"]] == [1, 2]
    assert metrics["classifier_score"] == metrics["score_per_epoch"][-1]["classifier_score"]
    assert metrics["code_accuracy"] == metrics["score_per_epoch"][-1]["code_accuracy"]  # code from labels
    assert metrics["score_classifier"]["run"] == "score_classifier"
    assert (gan_run / "score_classifier" / "model.keras").is_file()
    assert config["score_classifier"]["test_accuracy"] > 0.8
    assert (gan_run / "samples" / "epoch_002.png").is_file() and (
        gan_run / "samples" / "progression.gif"
    ).is_file()
    assert any((gan_run / "logs" / "samples").iterdir())  # sample grids in TensorBoard
    assert not (gan_run / "backup").exists()


def test_evaluate_recomputes_the_final_score(gan_run):
    from bigmodels.workflows.evaluate import evaluate_run

    metrics = json.loads((gan_run / "metrics.json").read_text())
    report = evaluate_run(gan_run)
    assert report["classifier_score"] == pytest.approx(metrics["classifier_score"], abs=1e-3)
    assert report["frechet_distance"] == pytest.approx(metrics["frechet_distance"], rel=1e-3)
    assert report["code_accuracy"] == pytest.approx(metrics["code_accuracy"], abs=1e-3)
    for other_data in ({"data_source": "digits"}, {"all_examples": True}):
        with pytest.raises(ValueError, match="leave out --data and --all"):
            evaluate_run(gan_run, **other_data)


def test_generator_export_agrees_with_keras(gan_run):
    from bigmodels.workflows.export import export_run

    report = export_run(gan_run, latency_repeats=10)
    artifacts = {a["file"]: a for a in report["artifacts"]}
    assert list(artifacts) == ["saved_model"] + [
        f"generator_{m}.tflite" for m in ("float32", "dynamic", "float16", "int8")
    ]
    assert artifacts["saved_model"]["mean_abs_pixel_difference"] == 0.0
    assert artifacts["generator_float32.tflite"]["mean_abs_pixel_difference"] < 0.5
    # The int8 file too: (x + 1) * 127.5 once made this narrow-range generator one grey level (18.9).
    assert artifacts["generator_int8.tflite"]["mean_abs_pixel_difference"] < 2.0
    for artifact in artifacts.values():
        assert {"classifier_score", "frechet_distance", "size_bytes", "gzip_bytes"} <= set(artifact)
    from bigmodels.lite import TFLiteModel

    generator = TFLiteModel(gan_run / "export" / "generator_float32.tflite")
    assert generator.output_detail["dtype"] == np.uint8
    images = generator.predict(np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32))
    assert images.shape == (3, 8, 8, 1) and images.min() >= 0 and images.max() <= 255


def test_ema_generator_averages_and_survives_save_load(tmp_path):
    gan = tiny_gan(ema_momentum=0.9)
    assert gan.sampling_generator is gan.ema_generator
    gan.fit(tiny_images(), batch_size=16, epochs=2, verbose=0)
    current, average = gan.generator.get_weights(), gan.ema_generator.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(current, average, strict=True))  # it lags behind
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras", safe_mode=True)
    for a, b in zip(loaded.ema_generator.get_weights(), average, strict=True):
        np.testing.assert_array_equal(a, b)
    assert tiny_gan().sampling_generator is not None and tiny_gan().ema_generator is None
