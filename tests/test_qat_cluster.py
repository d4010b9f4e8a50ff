"""QAT and clustering: Keras QAT equals the int8 file, learned ranges become its scales, clustered
kernels keep at most K values (zeros stay zero) through QAT and into the int8 file."""

import keras
import numpy as np
import pytest
from helpers import separable_images

from bigmodels import check_compression_chain, get_model, task_of
from bigmodels.compress.clustering import (
    cluster_kernels,
    distinct_values,
    strip_clustering,
)
from bigmodels.compress.pruning import ConstantSparsity, MagnitudePruner
from bigmodels.compress.quantization import (
    ActivationQuantizer,
    calibrate_ranges,
    describe_quantization,
    folded_layers,
    quantize_model,
    quantized_layers,
    refresh_kernel_ranges,
)
from bigmodels.convert.tflite import convert_tflite, parse_qat_quantization
from bigmodels.lite import TFLiteModel


def trained_cnn(epochs=2):
    keras.utils.set_random_seed(0)
    model = get_model("cnn_classifier", input_shape=(16, 16, 1), num_classes=2, variant="compact")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    images, labels = separable_images(64, size=(16, 16))
    model.fit(images, labels, batch_size=16, epochs=epochs, verbose=0)
    return model, images, labels


def fine_tune(model, images, labels, callbacks=(), learning_rate=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0, callbacks=list(callbacks))
    return model


def tflite_kernels(flatbuffer) -> list[np.ndarray]:
    """The int8 weight tensors of CONV_2D and FULLY_CONNECTED ops, as stored (output channel first)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    kernels = []
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            kernels.append(interpreter.get_tensor(int(op["inputs"][1])))
    tensors = {d["name"]: d for d in interpreter.get_tensor_details()}
    return kernels, tensors


def test_qat_model_equals_its_int8_file_within_one_step_and_the_scales_are_the_learned_ranges():
    model, images, labels = trained_cnn()
    qat = fine_tune(quantize_model(model), images, labels)
    refresh_kernel_ranges(qat)
    assert folded_layers(qat) and not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in qat.layers
    )
    flatbuffer = convert_tflite(qat, "int8", images[:8])
    runner = TFLiteModel(flatbuffer)
    step = runner.output_detail["quantization"][0]
    difference = np.abs(runner.predict(images) - qat.predict(images, verbose=0))
    assert step == pytest.approx(1 / 256) and difference.max() <= step + 1e-6
    assert runner.input_detail["quantization"] == (1.0, -128)  # uint8 pixels: the fixed [0, 255]
    _, tensors = tflite_kernels(flatbuffer)
    learned = [
        layer for layer in qat.layers if isinstance(layer, ActivationQuantizer) and layer.fixed_range is None
    ]
    scales = [float(d["quantization"][0]) for d in tensors.values() if d["dtype"] == np.int8]
    for layer in learned:  # each learned range is some activation tensor's scale in the file
        width = float(layer.range_max.numpy() - layer.range_min.numpy())
        assert any(abs(scale - width / 255) <= 1e-6 * width for scale in scales), layer.name


def test_the_calibrated_start_has_the_activation_ranges_ptq_gives_the_float_model():
    model, images, _ = trained_cnn()
    qat = quantize_model(model)
    calibrate_ranges(qat, images[:8])
    _, tensors = tflite_kernels(convert_tflite(model, "int8", images[:8]))
    ptq = [float(d["quantization"][0]) for d in tensors.values() if d["dtype"] == np.int8]
    # Each layer's output range is the one PTQ's calibration of the float model picks (through
    # int8-rounded kernels they came out 0.2-0.4% off); PTQ folds the rescaling into the first
    # convolution, so its output has no tensor of its own there.
    calibrated = [
        layer for layer in qat.layers
        if isinstance(layer, ActivationQuantizer) and layer.fixed_range is None
        and layer.name != "rescale_quant"
    ]  # fmt: skip
    assert len(calibrated) == 6
    for layer in calibrated:
        scale = float(layer.range_max.numpy() - layer.range_min.numpy()) / 255
        assert np.isclose(scale, ptq, rtol=1e-6).any(), layer.name


def test_clustering_keeps_at_most_k_values_zeros_included_through_qat_and_into_the_int8_file():
    model, images, labels = trained_cnn(epochs=1)
    fine_tune(model, images, labels, [MagnitudePruner(model, ConstantSparsity(0.5, frequency=1))])
    keeper, plan = cluster_kernels(model, 6, method="kmeans++")
    zeros = [np.asarray(layer.kernel.numpy()) == 0 for layer in model.layers if hasattr(layer, "kernel")]
    fine_tune(model, images, labels, [keeper])
    clustered = strip_clustering(model)
    assert all(entry["distinct"] <= 6 for entry in distinct_values(clustered)) and len(plan) == 5
    kernels = [np.asarray(layer.kernel.numpy()) for layer in clustered.layers if hasattr(layer, "kernel")]
    assert all(np.all(k[z] == 0) and np.sum(z) > 0 for k, z in zip(kernels, zeros, strict=True))
    assert_at_most_k_int8_values(convert_tflite(clustered, "int8", images[:8]), 6, per="channel")
    # Cluster-preserving QAT (as qat_run does it): batch norm folded in scales each output channel
    # apart, so the kernels are clustered again with the same K and take one range per kernel.
    qat = quantize_model(clustered, shared_ranges=True)
    keeper, _ = cluster_kernels(qat, 6)
    keeper.after_batch = lambda: refresh_kernel_ranges(qat)
    fine_tune(qat, images, labels, [keeper])
    assert all(len(np.unique(layer.kernel.numpy())) <= 6 for layer in quantized_layers(qat))
    assert_at_most_k_int8_values(convert_tflite(qat, "int8", images[:8]), 6, per="kernel")


def assert_at_most_k_int8_values(flatbuffer, clusters, per):
    stored, _ = tflite_kernels(flatbuffer)
    assert len(stored) == 5
    for kernel in stored:  # per output channel (per-channel int8) or per kernel; zero among the K
        groups = kernel.reshape(kernel.shape[0], -1) if per == "channel" else kernel.reshape(1, -1)
        for values in groups:
            assert len(np.unique(values)) <= clusters and np.any(values == 0)


@pytest.mark.parametrize("method", ["linear", "density"])
def test_other_centroid_initializations_cluster_too(method):
    model, images, labels = trained_cnn(epochs=1)
    keeper, plan = cluster_kernels(model, 4, method=method, preserve_sparsity=False)
    fine_tune(model, images, labels, [keeper])
    assert all(entry["distinct"] <= 4 for entry in distinct_values(model))
    assert all(entry["clusters"] == 4 and not entry["zero_centroid"] for entry in plan)


def test_bad_cluster_counts_layers_and_modes_are_refused_with_what_to_do():
    model, _, _ = trained_cnn(epochs=1)
    with pytest.raises(ValueError, match="at least 2"):
        cluster_kernels(model, 1)
    with pytest.raises(ValueError, match="more than the 96 weights of the smallest"):
        cluster_kernels(model, 97)
    ids = keras.Input((8,), dtype="int32")
    vectors = keras.layers.Embedding(64, 8)(ids)
    recurrent = keras.Model(ids, keras.layers.Dense(2)(keras.layers.LSTM(4, name="reader")(vectors)))
    with pytest.raises(ValueError, match="cannot wrap layer 'reader' \\(LSTM\\).*PTQ"):
        quantize_model(recurrent)
    with pytest.raises(ValueError, match="cannot wrap layer 'reader'"):  # the pipeline's check
        check_compression_chain(task_of("transformer_classifier"), recurrent, qat=True)
    check_compression_chain(task_of("cnn_classifier"), model, clusters=96, qat=True)
    with pytest.raises(ValueError, match="full-int8.*use --quantization int8"):
        parse_qat_quantization("float16")
    assert parse_qat_quantization(None) == ["int8"]


def token_data(count=256, vocabulary=60, length=12, seed=0):
    """Ids whose label is whether most of the first 8 tokens are from the lower half."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocabulary, (count, length)).astype("int32")
    ids[:, 8:] = 0
    return ids, ((ids[:, :8] < vocabulary // 2).sum(axis=1) > 4).astype("int32")


def trained_then_quantized(name, data, labels, epochs=4, **arguments):
    keras.utils.set_random_seed(0)
    model = get_model(name, **arguments)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(data, labels, batch_size=32, epochs=epochs, verbose=0)
    qat = fine_tune(quantize_model(model), data, labels, learning_rate=3e-4)
    refresh_kernel_ranges(qat)
    return model, qat


def test_text_models_are_quantization_aware_and_the_embedding_bag_equals_its_int8_file():
    ids, labels = token_data()
    _, qat = trained_then_quantized(
        "embedding_bag_classifier", ids, labels, vocabulary_size=60, sequence_length=12
    )
    assert {layer.name for layer in quantized_layers(qat)} == {"embedding", "classifier"}
    runner = TFLiteModel(convert_tflite(qat, "int8", ids[:32]))
    step = runner.output_detail["quantization"][0]
    assert np.abs(runner.predict(ids) - qat.predict(ids, verbose=0)).max() <= step + 1e-6
    # The Transformer: kernels and tables simulated, the encoder block calibrated inside.
    _, qat = trained_then_quantized(
        "transformer_classifier", ids, labels, epochs=3, vocabulary_size=60, sequence_length=12,
        width=16, feedforward_size=32,
    )  # fmt: skip
    described = describe_quantization(qat)
    assert {"token_embedding", "embedding_projection", "classifier", "ngram_head"} <= set(
        described["quantized_weights"]
    )
    assert "encoder_0" in described["calibrated_weights"]
    runner = TFLiteModel(convert_tflite(qat, "int8", ids[:32]))
    keras_outputs, file_outputs = qat.predict(ids, verbose=0), runner.predict(ids)
    assert runner.output_detail["dtype"] == np.int8
    assert (keras_outputs.argmax(1) == file_outputs.argmax(1)).mean() >= 0.97
    assert np.abs(keras_outputs - file_outputs).mean() <= 2 * runner.output_detail["quantization"][0]


def test_the_generator_is_quantization_aware_and_its_int8_file_follows_it():
    from bigmodels.models.dcgan import dcgan_generator

    keras.utils.set_random_seed(0)
    generator = dcgan_generator(image_shape=(16, 16, 1), latent_size=8, base_filters=8, code_classes=4)
    qat = quantize_model(generator)
    kinds = {type(layer).__name__ for layer in quantized_layers(qat)}
    assert kinds == {"QuantizedDense", "QuantizedCodeEmbedding", "QuantizedConv2DTranspose"}
    latents = np.random.default_rng(1).normal(size=(128, 8)).astype("float32")
    targets = generator.predict(latents, verbose=0)
    qat.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
    qat.fit(latents, targets, batch_size=32, epochs=2, verbose=0)  # learns the activation ranges
    refresh_kernel_ranges(qat)
    runner = TFLiteModel(convert_tflite(qat, "int8", latents[:32]))
    step = runner.output_detail["quantization"][0]  # tanh's fixed int8 scale: 1/128
    difference = np.abs(runner.predict(latents) - qat.predict(latents, verbose=0))
    assert step == pytest.approx(1 / 128) and difference.mean() <= step


def test_qat_of_a_dcgan_calibrates_the_generator_it_samples_from_and_its_average():
    keras.utils.set_random_seed(0)
    gan = get_model("dcgan", image_shape=(8, 8, 1), latent_size=8, base_filters=4, ema_momentum=0.9)
    task = task_of("dcgan")
    trained, qat = task.with_quantization_aware(gan, quantize_model)
    assert trained.generator is qat and trained.discriminator is gan.discriminator
    task.calibrate_quantized(trained, qat, None)

    def ranges(network):
        return [
            (float(layer.range_min.numpy()), float(layer.range_max.numpy()))
            for layer in network.layers
            if isinstance(layer, ActivationQuantizer)
        ]

    assert ranges(trained.sampling_generator) == ranges(qat)  # the exported average starts calibrated
    assert all(high > low for low, high in ranges(qat))
