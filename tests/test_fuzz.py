"""Property-based fuzzing: arbitrary bytes and shapes give a result or a ValueError, nothing else.

Each example runs under a deadline, so a hang fails the test too. The deadlines are hang
detectors, not timings: they are set far above an example's time on 2 cores shared by two test
workers (a tokenizer example took 3-7 s when the cores were also training a model).
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigmodels.data.text import read_table
from bigmodels.lite.tokenizer import WordPieceTokenizer

FUZZ = settings(max_examples=60, deadline=20_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
COLUMN = st.one_of(st.integers(min_value=-2, max_value=5), st.sampled_from(["text", "label", "x", "0", ""]))


@FUZZ
@given(
    content=st.one_of(st.binary(max_size=600), TEXT.map(lambda t: t.encode("utf-8"))),
    suffix=st.sampled_from([".csv", ".tsv", ".txt", ".dat"]),
    text_columns=st.lists(COLUMN, min_size=1, max_size=3),
    label_column=COLUMN,
    header=st.sampled_from([None, True, False]),
)
def test_csv_reader_returns_rows_or_a_value_error(content, suffix, text_columns, label_column, header):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        try:
            texts, labels, problems = read_table(
                path, text_columns=text_columns, label_column=label_column, header=header
            )
        except ValueError as error:
            assert str(error)
            return
    assert len(texts) == len(labels) > 0
    assert all(isinstance(t, str) and t for t in texts) and all(isinstance(p, dict) for p in problems)


@FUZZ
@given(
    files=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from([".jpg", ".png", ".gif", ".bmp", ".txt"]),
            st.one_of(st.binary(max_size=300), st.sampled_from(["png", "gif"])),
        ),
        max_size=8,
    ),
    size=st.one_of(st.none(), st.tuples(st.integers(1, 12), st.integers(1, 12))),
)
def test_image_folder_loader_returns_arrays_or_a_value_error(files, size):
    from PIL import Image

    from bigmodels.data.images import load_image_folder

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for index, (class_name, suffix, content) in enumerate(files):
            (root / class_name).mkdir(exist_ok=True)
            path = root / class_name / f"{index}{suffix}"
            if content in ("png", "gif"):  # a real image of a random size among the junk
                pixels = np.random.default_rng(index).integers(0, 255, (3 + index, 5, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(path.with_suffix(f".{content}"))
            else:
                path.write_bytes(content)
        try:
            images, labels, class_names, skipped, _ = load_image_folder(root, size=size)
        except ValueError as error:
            assert str(error)
            return
    assert images.dtype == np.uint8 and len(images) == len(labels) > 0
    assert len(class_names) >= 1 and all("reason" in entry for entry in skipped)


@pytest.fixture(scope="module")
def vocabulary():
    return ["[PAD]", "[UNK]", "a", "##b", "ab", "the", "的", "ọ", "!", "##s", "film"]


@FUZZ
@given(texts=st.lists(TEXT, max_size=5), lowercase=st.booleans(), strip_accents=st.booleans())
def test_lite_tokenizer_never_fails_on_any_text(vocabulary, texts, lowercase, strip_accents):
    tokenizer = WordPieceTokenizer(
        vocabulary, lowercase=lowercase, strip_accents=strip_accents, sequence_length=16
    )
    ids = tokenizer(texts)
    assert ids.shape == (len(texts), 16) and ids.dtype == np.int32
    assert ids.min(initial=0) >= 0 and ids.max(initial=0) < len(vocabulary)


@pytest.fixture(scope="module")
def keras_hub_warmed_up():
    """Imports keras-hub and traces its tokenizer once, outside the per-example deadline: the
    first call takes 10-15 s on a loaded 2-core machine, which is set-up, not a hang."""
    from bigmodels.data.vocabulary import TokenizerSettings, tokenize

    tokenize(
        np.asarray(["warm up"], dtype=object), ["[PAD]", "[UNK]", "a"], TokenizerSettings(sequence_length=4)
    )


@settings(max_examples=25, deadline=60_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=1, max_size=5))
def test_keras_hub_tokenizer_agrees_with_the_lite_one_on_any_text(keras_hub_warmed_up, vocabulary, texts):
    from bigmodels.data.vocabulary import TokenizerSettings, tokenize

    settings_ = TokenizerSettings(sequence_length=16)
    expected = tokenize(np.asarray(texts, dtype=object), vocabulary, settings_)
    lite = WordPieceTokenizer(vocabulary, lowercase=True, sequence_length=16)
    np.testing.assert_array_equal(lite(texts), expected)


@FUZZ
@given(content=st.binary(max_size=400))
def test_vocabulary_and_settings_files_load_or_give_a_value_error(content):
    with tempfile.TemporaryDirectory() as folder:
        vocabulary, settings_file = Path(folder) / "vocabulary.txt", Path(folder) / "tokenizer.json"
        vocabulary.write_bytes(content)
        settings_file.write_bytes(content[:80])
        try:
            tokenizer = WordPieceTokenizer.from_files(vocabulary, settings_file)
        except ValueError as error:
            assert str(error)
            return
    assert tokenizer(["a b"]).dtype == np.int32


def test_settings_that_are_not_an_object_are_a_value_error(tmp_path):
    (tmp_path / "vocabulary.txt").write_text("[PAD]\n[UNK]\n")
    (tmp_path / "tokenizer.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        WordPieceTokenizer.from_files(tmp_path / "vocabulary.txt", tmp_path / "tokenizer.json")


def test_a_nul_character_ends_the_text_for_both_tokenizers():
    """Found by the fuzz test above: tensorflow-text stops reading a string at a NUL."""
    from bigmodels.data.vocabulary import TokenizerSettings, tokenize

    vocabulary = ["[PAD]", "[UNK]", "the", "film"]
    texts = ["the\x00 film the", "\x000", "film\x00"]
    expected = tokenize(np.asarray(texts, dtype=object), vocabulary, TokenizerSettings(sequence_length=4))
    assert expected.tolist() == [[2, 0, 0, 0], [0, 0, 0, 0], [3, 0, 0, 0]]
    np.testing.assert_array_equal(
        WordPieceTokenizer(vocabulary, lowercase=True, sequence_length=4)(texts), expected
    )
