"""The TF-free tokenizer gives exactly keras-hub's ids (its in-graph TensorFlow path)."""

import ast
import random
from pathlib import Path

import numpy as np
import pytest

from bigmodels.lite.tokenizer import WordPieceTokenizer

WORDS = {
    "english": "the movie was surprisingly good , but the ending felt rushed ! I can't wait .".split(),
    "chinese": list("今天天气很好我们去公园散步吧这部电影非常精彩值得一看"),
    "yoruba": "Ìlera ní Yorùbá pè ní oògùn ọrọ̀ ẹ̀kọ́ ṣé àṣà ọmọ ilé ìwé".split(),
    "other": "café naïve Straße İstanbul ﬁnance ＡＢＣ１２３ مرحبا नमस्ते 안녕하세요 こんにちは".split(),
    "symbols": [
        "😀",
        "👍🏽",
        "👨‍👩‍👧",
        "❤️",
        "$5.99",
        "50%",
        "#tag",
        "@user",
        "...",
        "—",
        "«",
        "»",
        "1,000",
        "3.14",
    ],
}
SPACES = [" ", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2028", "\u200b", "\r\n", "\u00ad"]
SETTINGS = [
    {"lowercase": True, "strip_accents": True, "split_on_cjk": True},
    {"lowercase": False, "strip_accents": False, "split_on_cjk": True},
    {"lowercase": True, "strip_accents": False, "split_on_cjk": False},
]


def make_sentences(count: int, seed: int) -> list[str]:
    generator = random.Random(seed)
    pool = [word for words in WORDS.values() for word in words]
    sentences = ["", " ", "\t\n", "x" * 150, "supercalifragilistic" * 6 + " ok"]
    for _ in range(count - len(sentences)):
        words = [generator.choice(pool) for _ in range(generator.randint(1, 30))]
        words = [w.upper() if generator.random() < 0.1 else w for w in words]
        glue = [generator.choice(SPACES) if generator.random() < 0.9 else "" for _ in words]
        sentences.append("".join(w + g for w, g in zip(words, glue, strict=True)))
    return sentences


@pytest.fixture(scope="module")
def vocabulary_by_setting():
    import keras_hub
    import tensorflow as tf

    corpus = make_sentences(400, seed=1)
    vocabularies = {}
    for index, settings in enumerate(SETTINGS):
        data = tf.data.Dataset.from_tensor_slices(corpus).batch(64)
        vocabularies[index] = keras_hub.tokenizers.compute_word_piece_vocabulary(
            data, vocabulary_size=300, reserved_tokens=["[PAD]", "[UNK]"], **settings
        )
    return vocabularies


@pytest.mark.parametrize("index", range(len(SETTINGS)))
def test_ids_equal_keras_hub_graph_ids_on_thousands_of_sentences(vocabulary_by_setting, index):
    import keras_hub
    import tensorflow as tf

    settings, vocabulary = SETTINGS[index], vocabulary_by_setting[index]
    reference = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, sequence_length=48, **settings)
    graph_tokenize = tf.function(lambda texts: reference(texts))  # the path a SavedModel runs
    ours = WordPieceTokenizer(vocabulary, sequence_length=48, **settings)
    sentences = make_sentences(3000, seed=2 + index)
    expected = graph_tokenize(tf.constant(sentences)).numpy()
    actual = ours(sentences)
    mismatches = [sentences[i] for i in np.flatnonzero((expected != actual).any(axis=1))]
    assert not mismatches, f"{len(mismatches)} sentences differ, e.g. {mismatches[:3]!r}"
    assert (expected != 0).any(axis=1).sum() > 2900  # non-trivial: almost every row has tokens
    assert (expected == vocabulary.index("[UNK]")).any()  # over-long words did hit the unknown token


def test_yoruba_diacritics_and_chinese_are_handled():
    vocabulary = ["[PAD]", "[UNK]", "ilera", "ni", "yoruba", "今", "天", "!"]
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=True, strip_accents=True)
    assert tokenizer.tokenize("Ìlera ní Yorùbá!") == [2, 3, 4, 7]
    assert tokenizer.tokenize("今天!") == [5, 6, 7]
    assert tokenizer(["", "今天"]).tolist() == [[0, 0], [5, 6]]


def test_missing_oov_token_is_a_clear_error():
    with pytest.raises(ValueError, match="out-of-vocabulary token"):
        WordPieceTokenizer(["a", "b"])


def test_lite_tokenizer_imports_nothing_from_tensorflow_or_keras():
    source = Path(__file__).resolve().parents[1] / "bigmodels" / "lite" / "tokenizer.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"json", "unicodedata", "pathlib", "numpy"}, imported
