"""The text family end to end: vocabulary in three scripts, runs, export in five modes, tfds text."""

import csv
import json

import numpy as np
import pytest
from helpers import mock_tfds, review_rows
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bigmodels import get_model
from bigmodels.data.vocabulary import (
    TokenizerSettings,
    learn_vocabulary,
    load_tokenizer,
    save_tokenizer,
    tokenize,
)
from bigmodels.lite.tokenizer import WordPieceTokenizer
from bigmodels.models.text import TRANSFORMER_BUDGET, WIDE_HEAD_BUDGET

CORPUS = [f"{title} {body}" for title, body, _ in review_rows(300)]


@pytest.mark.parametrize("strip_accents", [False, True])
def test_vocabulary_learned_from_english_chinese_and_yoruba(tmp_path, strip_accents):
    settings = TokenizerSettings(vocabulary_size=400, sequence_length=32, strip_accents=strip_accents)
    vocabulary = learn_vocabulary(CORPUS, settings)
    assert vocabulary[:2] == ["[PAD]", "[UNK]"]
    unknown = vocabulary.index("[UNK]")
    sentences = ["这部电影非常精彩", "Fíìmù yìí dára púpọ̀", "A WONDERFUL film"]
    ids = tokenize(sentences, vocabulary, settings)
    chinese = ids[0][ids[0] != 0]
    assert len(chinese) == 8 and unknown not in chinese  # one piece per ideograph, no spaces needed
    assert unknown not in ids[1] and unknown not in ids[2]
    assert "wonderful" in vocabulary  # lowercased
    if strip_accents:
        assert "pupo" in vocabulary and "púpọ̀" not in vocabulary
    else:  # the tone marks and underdots that tell Yorùbá words apart survive
        assert "púpọ̀" in vocabulary and "pupo" not in vocabulary
    save_tokenizer(tmp_path, vocabulary, settings)
    lite = WordPieceTokenizer.from_files(tmp_path / "vocabulary.txt", tmp_path / "tokenizer.json")
    np.testing.assert_array_equal(lite(CORPUS), tokenize(CORPUS, vocabulary, settings))
    assert load_tokenizer(tmp_path) == (vocabulary, settings)


def test_transformer_attention_and_pooling_ignore_padding():
    import keras

    model = get_model(
        "transformer_classifier",
        vocabulary_size=50,
        sequence_length=12,
        num_classes=2,
        width=16,
        ngram_order=0,
    )
    ids = np.array([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0], [9, 8, 7, 6, 5, 4, 3, 2, 0, 0, 0, 0]], np.int32)
    mask = ids != 0
    embedded = keras.Model(model.inputs, model.get_layer("embedding").output)(ids)
    encoded = model.get_layer("encoder_0")(embedded, padding_mask=mask)
    pooled = np.array(
        [encoded[i].numpy()[mask[i]].mean(axis=0) for i in range(2)]
    )  # mean over real tokens only
    expected = keras.ops.softmax(model.get_layer("classifier")(pooled)).numpy()
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected, atol=1e-5)
    unmasked = model.get_layer("encoder_0")(embedded)
    assert np.abs(unmasked.numpy() - encoded.numpy()).max() > 1e-3  # the check above is not empty
    # What a padded position holds (its position vector) changes nothing.
    positions = model.get_layer("position_embedding")
    table = positions.get_weights()[0]
    positions.set_weights([np.concatenate([table[:8], table[8:] + 5.0])])
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected, atol=1e-5)


def test_transformer_encoder_reads_the_first_attention_length_ids_and_the_ngram_head_all(tmp_path):
    from bigmodels.convert.tflite import convert_tflite
    from bigmodels.lite import TFLiteModel

    model = get_model(
        "transformer_classifier", vocabulary_size=60, sequence_length=20, num_classes=3, attention_length=8
    )
    assert model.get_layer("position_embedding").get_weights()[0].shape[0] == 8
    wide = model.get_layer("ngram_head")
    wide.table.assign(np.random.default_rng(0).normal(size=wide.table.shape).astype("float32"))
    ids = np.random.default_rng(1).integers(1, 60, (64, 20)).astype(np.int32)
    later = ids.copy()
    later[:, 15] = (later[:, 15] % 59) + 1  # a token past the encoder's 8
    deep = keras_submodel(model, "classifier")
    np.testing.assert_allclose(deep(later), deep(ids), atol=1e-6)
    assert np.abs(model.predict(later, verbose=0) - model.predict(ids, verbose=0)).max() > 1e-3
    for mode in ("dynamic", "int8"):
        path = tmp_path / f"{mode}.tflite"
        path.write_bytes(convert_tflite(model, mode, ids))
        agreement = np.mean(
            TFLiteModel(path).predict(ids).argmax(1) == model.predict(ids, verbose=0).argmax(1)
        )
        assert agreement >= 0.9, (mode, agreement)
    with pytest.raises(ValueError, match="attention_length must be at least 1"):
        get_model("transformer_classifier", vocabulary_size=60, sequence_length=20, attention_length=0)


def keras_submodel(model, layer_name: str):
    import keras

    return keras.Model(model.inputs, model.get_layer(layer_name).output)


def _offsets(bag, table="offset_bytes"):
    """One of the bag's hash tables, from its three stored bytes per token."""
    digits = getattr(bag, table).numpy().astype(np.int64) + 128
    return digits[:, 0] + digits[:, 1] * 256 + digits[:, 2] * 65536


def _reference_features(ids, offsets, vocabulary_size, buckets, second_offsets=None):
    """The n-gram bag's features in plain numpy: tokens, then (offsets[a] + b) mod buckets, then
    (with ``second_offsets``) ((offsets[a] + b) mod buckets + second_offsets[b] + c) mod buckets."""
    pair_codes = (offsets[ids[:, :-1]] + ids[:, 1:]) % buckets
    real_pairs = (ids[:, :-1] > 0) & (ids[:, 1:] > 0)
    parts = [ids, np.where(real_pairs, pair_codes + vocabulary_size, 0)]
    if second_offsets is not None:
        codes = (pair_codes[:, :-1] + second_offsets[ids[:, 1:-1]] + ids[:, 2:]) % buckets
        parts.append(np.where(real_pairs[:, :-1] & (ids[:, 2:] > 0), codes + vocabulary_size, 0))
    return np.concatenate(parts, axis=1)


@settings(max_examples=40, deadline=None)
@given(
    ids=arrays(np.int32, st.tuples(st.integers(1, 4), st.integers(2, 20)), elements=st.integers(0, 96)),
    buckets=st.integers(97, 5000),
    order=st.sampled_from([2, 3]),
)
def test_ngram_features_are_the_hashed_ngrams_of_real_tokens(ids, buckets, order):
    from bigmodels.models.text import HashedNgramBag

    bag = HashedNgramBag(97, buckets, order, 3)
    bag.build(ids.shape)
    features, valid = (t.numpy() for t in bag.feature_ids(ids))
    second = _offsets(bag, "second_offset_bytes") if order == 3 else None
    np.testing.assert_array_equal(features, _reference_features(ids, _offsets(bag), 97, buckets, second))
    assert features.min() >= 0 and features.max() < 97 + buckets
    np.testing.assert_array_equal(valid, (features > 0).astype(np.int32))


def test_ngram_bag_ignores_padding_and_counts_bigrams():
    model = get_model("ngram_classifier", vocabulary_size=40, sequence_length=10, num_classes=3)
    bag = model.get_layer("ngram_bag")
    bag.table.assign(np.random.default_rng(0).normal(size=bag.table.shape).astype("float32"))
    short = np.array([[4, 5, 6, 0, 0, 0, 0, 0, 0, 0]], np.int32)
    features = _reference_features(short, _offsets(bag), 40, bag.buckets)[0]
    real = features[features > 0]
    expected = bag.table.numpy()[real].sum(axis=0) / np.sqrt(len(real)) * bag.gain
    np.testing.assert_allclose(bag(short).numpy()[0], expected, rtol=1e-5)
    assert len(real) == 5  # three tokens and two bigrams


def test_a_two_class_bag_stores_one_column_and_gets_twice_the_buckets():
    model = get_model("ngram_classifier", vocabulary_size=1000, sequence_length=10, num_classes=2)
    bag = model.get_layer("ngram_bag")
    assert bag.table.shape == (1000 + bag.buckets, 1) and bag.buckets == 400_000 - 1000
    ids = np.array([[4, 5, 6, 0, 0, 0, 0, 0, 0, 0]], np.int32)
    bag.table.assign(np.random.default_rng(0).normal(size=bag.table.shape).astype("float32"))
    assert bag(ids).numpy()[0, 0] == 0.0 and bag(ids).numpy()[0, 1] != 0.0  # the reference's logit is 0
    four = get_model("ngram_classifier", vocabulary_size=1000, sequence_length=10, num_classes=4)
    assert four.get_layer("ngram_bag").table.shape[1] == 4  # more classes keep a column each


def test_the_transformers_head_takes_the_weights_the_deep_part_leaves():
    def model(vocabulary, classes, **arguments):
        return get_model(
            "transformer_classifier", vocabulary_size=vocabulary, sequence_length=16, num_classes=classes,
            **arguments,
        )  # fmt: skip

    characters, trigrams = model(2650, 2), model(2650, 2, ngram_order=3)
    for whole in (characters, trigrams):  # the budget holds the int8 hash tables too
        assert TRANSFORMER_BUDGET <= whole.count_params() <= TRANSFORMER_BUDGET + 1
    words = model(7725, 2).get_layer("ngram_head")  # the rest leaves less than the floor: the floor
    assert (words.order, words.buckets) == (2, WIDE_HEAD_BUDGET - 7725)
    assert characters.get_layer("ngram_head").buckets > 2 * words.buckets
    topics = model(7725, 14).get_layer("ngram_head")  # 14 columns: bigrams do not fit, tokens only
    assert (topics.order, topics.buckets) == (1, 0) and topics.table.shape == (7725, 14)
    given = model(7725, 14, ngram_buckets=9000).get_layer("ngram_head")
    assert (given.order, given.buckets) == (2, 9000)  # a given size is kept


@pytest.mark.parametrize(
    "arguments, message",
    [({"ngram_order": 4}, "ngram_order must be 1"), ({"ngram_buckets": 10}, "at least as many hash buckets")],
)
def test_ngram_arguments_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        get_model("ngram_classifier", vocabulary_size=40, sequence_length=10, num_classes=2, **arguments)


def test_text_run_folder(text_run):
    config = json.loads((text_run / "config.json").read_text())
    metrics = json.loads((text_run / "metrics.json").read_text())
    assert config["model"] == "transformer_classifier" and config["model_chosen_by"] == "auto (text data)"
    assert config["data"]["text_columns"] == ["title", "body"]
    vocabulary = (text_run / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert config["model_args"]["vocabulary_size"] == len(vocabulary)
    assert config["model_args"]["sequence_length"] == config["tokenizer"]["sequence_length"]
    # The sentiment phrase decides the label (chance 0.5). 32 test texts, 3 points each; since
    # small sets hold out up to 20% for validation (about 50 examples), 12 epochs on the 128 left
    # reach 0.84 (0.9+ with 144).
    assert metrics["test_accuracy"] >= 0.8, metrics
    assert metrics["class_names"] == ["negative", "positive"]
    assert config["training"]["weight_averaging"] == 1.0  # the text task's default


def test_text_export_has_every_mode_and_a_raw_string_saved_model(text_run, text_export):
    report = text_export
    files = [a["file"] for a in report["artifacts"]]
    assert files == ["saved_model"] + [
        f"model_{m}.tflite" for m in ("float32", "dynamic", "float16", "int8", "int16x8")
    ]
    for artifact in report["artifacts"]:
        assert artifact["agreement"] >= 0.95, artifact
        assert {"accuracy", "size_bytes", "gzip_bytes", "latency_ms"} <= set(artifact)
    assert report["chosen"]["file"] in files and "smallest" in report["chosen"]["reason"]
    export = text_run / "export"
    assert (export / "vocabulary.txt").is_file() and (export / "tokenizer.json").is_file()

    import tensorflow as tf

    from bigmodels.run_folder import load_run_model

    texts = [f"{title} {body}" for title, body, _ in review_rows(20, seed=7)]
    serve = tf.saved_model.load(str(export / "saved_model")).signatures["serving_default"]
    from_strings = next(iter(serve(tf.constant(texts)).values())).numpy()
    vocabulary, settings = load_tokenizer(text_run)
    keras_probabilities = load_run_model(text_run).predict(tokenize(texts, vocabulary, settings), verbose=0)
    np.testing.assert_allclose(from_strings, keras_probabilities, atol=1e-5)


def test_tflite_with_the_tf_free_tokenizer_matches_keras(text_run, text_export):
    from bigmodels.lite import TFLiteModel
    from bigmodels.run_folder import load_run_model

    export = text_run / "export"
    tokenizer = WordPieceTokenizer.from_files(export / "vocabulary.txt", export / "tokenizer.json")
    texts = [f"{title} {body}" for title, body, _ in review_rows(20, seed=8)]
    ids = tokenizer(texts)
    expected = load_run_model(text_run).predict(ids, verbose=0)
    np.testing.assert_allclose(TFLiteModel(export / "model_float32.tflite").predict(ids), expected, atol=1e-4)
    int16 = TFLiteModel(export / "model_int16x8.tflite")
    assert int16.input_dtype == np.int32
    np.testing.assert_allclose(int16.predict(ids), expected, atol=0.05)


def test_evaluate_run_on_text(text_run):
    from bigmodels.workflows.evaluate import evaluate_run

    report = evaluate_run(text_run)
    assert set(report["per_class"]) == {"negative", "positive"}


def test_evaluate_all_scores_every_row_of_a_new_file(text_run, tmp_path):
    from helpers import write_reviews_csv

    from bigmodels.workflows.evaluate import evaluate_run

    new = write_reviews_csv(tmp_path / "new.csv", 30, seed=5)
    assert evaluate_run(text_run, str(new), all_examples=True)["num_examples"] == 30
    assert evaluate_run(text_run, str(new))["num_examples"] < 30


def test_evaluate_run_reads_other_columns_when_told(text_run, tmp_path):
    """The app's --text-column/--label-column/--no-header for --run: the same reviews, headerless
    with the label first, score as the run's own layout does."""
    from helpers import run_app_in_process, write_reviews_csv

    from bigmodels.workflows.evaluate import evaluate_run

    same_layout = write_reviews_csv(tmp_path / "same.csv", 30, seed=5)
    expected = evaluate_run(text_run, str(same_layout), all_examples=True)
    other = tmp_path / "other.csv"
    with open(other, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows((label, title, body) for title, body, label in review_rows(30, 5))
    flags = ["--text-column", "1", "2", "--label-column", "0", "--no-header", "--all"]
    result = run_app_in_process("evaluate", "--run", text_run, "--data", other, *flags)
    assert result.returncode == 0, result.stderr
    report = json.loads((text_run / "evaluation_other_data.json").read_text(encoding="utf-8"))
    assert (report["num_examples"], report["accuracy"]) == (30, expected["accuracy"])


@pytest.mark.parametrize(
    "run, arguments, expected",
    [
        ("text_run", ["--text-column", "1"], "--text-column: they say how --data is read"),
        ("digits_run", ["--data", "{data}", "--no-header"], "--header: only for text runs"),
    ],
)
def test_evaluate_run_text_flags_that_cannot_apply_are_one_line(run, arguments, expected, request, tmp_path):
    from helpers import run_app_in_process
    from test_apps import assert_one_line_error

    run_dir = request.getfixturevalue(run)
    arguments = [str(a).replace("{data}", str(tmp_path)) for a in arguments]
    before = sorted(p.name for p in run_dir.iterdir())
    assert_one_line_error(run_app_in_process("evaluate", "--run", run_dir, *arguments), expected)
    assert sorted(p.name for p in run_dir.iterdir()) == before


@pytest.mark.parametrize(
    "name, classes, columns",
    [("ag_news_subset", 4, None), ("imdb_reviews", 2, None), ("ag_news_subset", 4, ["title"])],
)
def test_tfds_text_sets_through_mock_data(name, classes, columns, tmp_path):
    from bigmodels.data import load_dataset

    with mock_tfds(tmp_path, num_examples=30):
        data = load_dataset(name, text_columns=columns)
    assert data.info.kind == "text" and data.info.num_classes == classes
    assert data.info.test_split == "the tfds 'test' split"
    texts = data.arrays["train"][0]
    assert all(isinstance(text, str) and text for text in texts)


def test_tfds_unknown_text_feature_is_a_clear_error(tmp_path):
    from bigmodels.data import load_dataset

    with mock_tfds(tmp_path, num_examples=10), pytest.raises(ValueError, match="has no text feature body"):
        load_dataset("imdb_reviews", text_columns=["body"])


def test_min_frequency_decides_which_rare_words_are_learned():
    texts = ["zebra crossing"] * 3 + [f"common words here {i % 7}" for i in range(200)]
    rare_kept = learn_vocabulary(texts, TokenizerSettings(vocabulary_size=500, min_frequency=2))
    rare_dropped = learn_vocabulary(texts, TokenizerSettings(vocabulary_size=500, min_frequency=10))
    assert "zebra" in rare_kept and "zebra" not in rare_dropped
    with pytest.raises(ValueError, match="--min-frequency"):
        learn_vocabulary(texts, TokenizerSettings(min_frequency=0))
