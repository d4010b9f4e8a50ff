"""The page's JavaScript tokenizer (bigmodels/web/tokenizer.js, run under node) gives exactly the
ids of the Python one (bigmodels.lite.tokenizer) on the tokenizer tests' multilingual sentences and
on fuzzed text: Chinese, Yorùbá with combining marks, emoji, NUL, lone surrogates, and characters
that the browser's Unicode knows but Python's does not."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lite_tokenizer import SETTINGS, make_sentences
from web_helpers import NodeTokenizer

from bigmodels.lite.tokenizer import WordPieceTokenizer
from bigmodels.web.unicode_tables import unicode_tables_js

# Characters where the two runtimes could part: case folding JavaScript lacks (ß, ẞ, ŉ, final
# sigma, İ, Cherokee), compatibility forms (ﬁ, Ａ, ①), default-ignorables, combining marks in an
# order NFD reorders, Hangul, and characters newer than Python 3.11's Unicode 14 that Chromium's
# ICU knows (a Cyrillic capital with a lowercase, combining marks, letters with decompositions).
TRICKY = list(
    "ßẞŉΣσςİıﬁＡ①ǅꭰᏸ\u00ad\u200b\u2060\ufeff\u034f\u0301\u0323\u0300\u0345a\u0323\u0301한국어"
    "\u1c89\u1c8a\ua7cb\ua7cc\U0001e08f\u0cf3\U00011f00\U000113c5\U000113c2\U000113b8\U0001e030"
    "\U0001f6dc\U0002ebf0\U00031350\u0378\U000e0001\U0001f44d\U0001f3fd"
) + [
    "\x00",
    "\ud800",
    "\udfff",
    "\U0001f468\u200d\U0001f469",
    "Ìlera",
    "ọ̀",
    "ẹ̀kọ́",
    "今天",
    "!",
    " ",
    "\t",
    "\u3000",
]
FUZZ_TEXT = st.lists(st.one_of(st.characters(codec="utf-8"), st.sampled_from(TRICKY)), max_size=80).map(
    "".join
)
SURROGATE_TEXT = st.text(alphabet=st.characters(categories=["Cs", "Lo", "Mn", "Po", "Zs"]), max_size=40)
FUZZ_SETTINGS = [
    {"lowercase": True, "strip_accents": True, "split_on_cjk": True},
    {"lowercase": True, "strip_accents": False, "split_on_cjk": True},
    {"lowercase": False, "strip_accents": True, "split_on_cjk": False},
    {"lowercase": True, "strip_accents": True, "split": False},
]


@pytest.fixture(scope="module")
def node_tokenizer(tmp_path_factory):
    tables = tmp_path_factory.mktemp("web") / "unicode_tables.js"
    tables.write_text(unicode_tables_js(), encoding="utf-8")
    tokenizer = NodeTokenizer(tables)
    yield tokenizer
    tokenizer.close()


def vocabulary_for(sentences: list[str], settings: dict, seed: int) -> list[str]:
    """Whole words, first pieces and suffix pieces of the corpus's words, so ids come from whole
    words, from several pieces and from the unknown token."""
    splitter = WordPieceTokenizer(["[UNK]"], **settings)
    words = sorted({word for sentence in sentences for word in splitter.words(sentence)})
    generator = random.Random(seed)
    tokens = set()
    for word in generator.sample(words, min(len(words), 400)):
        tokens.update([word] if generator.random() < 0.5 else [word[:2], "##" + word[2:4], "##" + word[4:]])
    return ["[PAD]", "[UNK]", *sorted(tokens - {"", "##"})]


def assert_same_ids(node_tokenizer, vocabulary, settings, texts, sequence_length=48):
    settings = {**settings, "sequence_length": sequence_length}
    assert node_tokenizer.setup(vocabulary, settings) == {"ok": True}
    expected = WordPieceTokenizer(vocabulary, **settings)(texts).tolist()
    actual = node_tokenizer.ids(texts)
    differing = [(texts[i], expected[i], actual[i]) for i in range(len(texts)) if expected[i] != actual[i]]
    assert not differing, f"{len(differing)} of {len(texts)} texts differ, e.g. {differing[:2]!r}"


@pytest.mark.parametrize("index", range(len(SETTINGS)))
def test_ids_equal_the_python_tokenizers_on_multilingual_sentences(node_tokenizer, index):
    sentences = make_sentences(1500, seed=2 + index)
    vocabulary = vocabulary_for(sentences, SETTINGS[index], seed=index)
    assert_same_ids(node_tokenizer, vocabulary, SETTINGS[index], sentences)
    long_texts = [" ".join(sentences[i : i + 40]) for i in range(0, 400, 40)]  # past the 512-character pieces
    assert_same_ids(node_tokenizer, vocabulary, SETTINGS[index], long_texts, sequence_length=4096)


def test_yoruba_chinese_and_case_folding_examples(node_tokenizer):
    vocabulary = [
        "[PAD]",
        "[UNK]",
        "ilera",
        "ni",
        "yoruba",
        "今",
        "天",
        "!",
        "ss",
        "strasse",
        "σ",
        "fi",
        "##nance",
    ]
    texts = ["Ìlera ní Yorùbá!", "今天!", "STRAẞE Straße ß", "ΣΣ σς", "ﬁnance", "", "\x00今"]
    assert_same_ids(node_tokenizer, vocabulary, {"lowercase": True, "strip_accents": True}, texts, 8)
    ids = node_tokenizer.ids(["Ìlera ní Yorùbá!"])
    assert ids == [[2, 3, 4, 7, 0, 0, 0, 0]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(FUZZ_TEXT, min_size=1, max_size=8), setting=st.sampled_from(FUZZ_SETTINGS))
def test_ids_equal_the_python_tokenizers_on_fuzzed_text(node_tokenizer, texts, setting):
    vocabulary = [
        "[PAD]",
        "[UNK]",
        "a",
        "##b",
        "ab",
        "the",
        "的",
        "ọ",
        "o",
        "!",
        "##s",
        "film",
        "ss",
        "i̇",
        "σ",
    ]
    vocabulary += [text[:3] for text in texts if text[:3]]
    assert_same_ids(node_tokenizer, vocabulary, setting, texts, sequence_length=24)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(SURROGATE_TEXT, min_size=1, max_size=4))
def test_lone_surrogates_give_the_same_ids(node_tokenizer, texts):
    vocabulary = ["[PAD]", "[UNK]", *{text[:2] for text in texts if text[:2]}]
    assert_same_ids(node_tokenizer, vocabulary, FUZZ_SETTINGS[0], texts, sequence_length=16)


def test_bad_settings_are_refused_like_python(node_tokenizer):
    answer = node_tokenizer.setup(["[PAD]", "[UNK]"], {"lowercase": "yes"})
    assert "'lowercase'" in answer["error"]
    assert "out-of-vocabulary" in node_tokenizer.setup(["a", "b"], {})["error"]
