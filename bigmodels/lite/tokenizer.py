"""A WordPiece tokenizer in the Python standard library and numpy, for devices without TensorFlow.

It reproduces the ids of ``keras_hub.tokenizers.WordPieceTokenizer`` as that layer runs inside a
TensorFlow graph (tensorflow-text's regex split, ICU NFKC_Casefold and FastWordpiece), step by
step and in the same order (a NUL character ends the text, as it does for tensorflow-text):

1. CJK ideographs get a space on each side (``split_on_cjk``);
2. accents are stripped: NFD, then every combining mark (category Mn) removed;
3. the text is split on whitespace, control and format characters (dropped) and on punctuation
   and CJK ideographs (kept as words of their own);
4. each word is case-folded with NFKC_Casefold (``lowercase``);
5. each word is cut greedily into the longest vocabulary pieces, later pieces carrying the
   suffix indicator; a word that cannot be cut, or longer than 100 UTF-8 bytes, is one
   out-of-vocabulary token.
"""

import json
import unicodedata
from pathlib import Path

import numpy as np

MAX_BYTES_PER_WORD = 100  # tensorflow-text's FastWordpiece maps longer words to the unknown token
# RE2's \s, which tensorflow-text uses, is ASCII whitespace only; other spaces are split on
# only when Unicode classes them as control (Cc) or format (Cf) characters.
ASCII_WHITESPACE = frozenset(" \t\n\r\f")
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# Code points that NFKC_Casefold deletes (Unicode's Default_Ignorable_Code_Point).
DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def _in_ranges(character: str, ranges) -> bool:
    code = ord(character)
    return any(low <= code <= high for low, high in ranges)


def is_cjk(character: str) -> bool:
    return _in_ranges(character, CJK_RANGES)


def is_punctuation(character: str) -> bool:
    """ASCII non-alphanumerics (as BERT treats them) and Unicode punctuation (P*)."""
    code = ord(character)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(character).startswith("P")


def is_separator(character: str) -> bool:
    return character in ASCII_WHITESPACE or unicodedata.category(character) in ("Cc", "Cf")


def nfkc_casefold(text: str) -> str:
    """Unicode NFKC_Casefold, as ICU (and so tensorflow-text's case_fold_utf8) computes it."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in text if not _in_ranges(c, DEFAULT_IGNORABLE_RANGES))


class WordPieceTokenizer:
    """TF-free WordPiece tokenizer whose ids equal keras-hub's.

    Args:
        vocabulary: tokens, index = id (the vocabulary file of a run, one token per line).
        lowercase: case-fold words (NFKC_Casefold).
        strip_accents: remove combining marks after NFD normalization.
        split: split on whitespace and punctuation (False: the text is one word).
        split_on_cjk: make every CJK ideograph a word of its own.
        suffix_indicator: prefix of pieces that continue a word.
        oov_token: token for words the vocabulary cannot cover.
        sequence_length: pad with 0 / truncate to this many ids in ``__call__``.

    Example:
        tokenizer = WordPieceTokenizer.from_files("bundle/vocabulary.txt", "bundle/tokenizer.json")
        ids = tokenizer(["Ìlera ní Yorùbá", "今天天气很好"])  # int32 (2, sequence_length)
    """

    def __init__(
        self,
        vocabulary: list[str],
        *,
        lowercase: bool = False,
        strip_accents: bool = False,
        split: bool = True,
        split_on_cjk: bool = True,
        suffix_indicator: str = "##",
        oov_token: str = "[UNK]",
        sequence_length: int | None = None,
    ):
        self.vocabulary = list(vocabulary)
        self.token_to_id = {token: index for index, token in enumerate(self.vocabulary)}
        if oov_token not in self.token_to_id:
            raise ValueError(f"the vocabulary has no out-of-vocabulary token '{oov_token}'; add it")
        self.lowercase, self.strip_accents = lowercase, strip_accents
        self.split, self.split_on_cjk = split, split_on_cjk
        self.suffix_indicator, self.oov_token = suffix_indicator, oov_token
        self.sequence_length = sequence_length

    @classmethod
    def from_files(cls, vocabulary_path: str | Path, settings_path: str | Path | None = None, **overrides):
        """Loads a vocabulary file (one token per line) and optional JSON settings."""
        with open(vocabulary_path, encoding="utf-8") as handle:
            vocabulary = [line.rstrip("\n").rstrip("\r") for line in handle]
        settings = json.loads(Path(settings_path).read_text(encoding="utf-8")) if settings_path else {}
        if not isinstance(settings, dict):
            raise ValueError(
                f"{settings_path}: tokenizer settings must be a JSON object; export the run again"
            )
        accepted = (
            "lowercase",
            "strip_accents",
            "split",
            "split_on_cjk",
            "suffix_indicator",
            "oov_token",
            "sequence_length",
        )
        settings = {key: value for key, value in settings.items() if key in accepted}
        return cls(vocabulary, **{**settings, **overrides})

    def pretokenize(self, text: str) -> list[str]:
        """Splits text into words, as keras-hub does before WordPiece."""
        # tensorflow-text's regex split (RE2) reads a string only up to its first NUL character,
        # so keras-hub never sees what follows one; neither do we.
        text = text.split("\x00", 1)[0]
        if self.split and self.split_on_cjk:
            text = "".join(f" {c} " if is_cjk(c) else c for c in text)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if not self.split:
            words = [text]
        else:
            words, current = [], []
            for character in text:
                kept = is_punctuation(character) or (self.split_on_cjk and is_cjk(character))
                if kept or is_separator(character):
                    if current:
                        words.append("".join(current))
                        current = []
                    if kept:
                        words.append(character)
                else:
                    current.append(character)
            if current:
                words.append("".join(current))
        return [nfkc_casefold(word) for word in words] if self.lowercase else words

    def _word_pieces(self, word: str) -> list[int]:
        if not word:
            return []
        if len(word.encode("utf-8")) > MAX_BYTES_PER_WORD:
            return [self.token_to_id[self.oov_token]]
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                candidate = word[start:end] if start == 0 else self.suffix_indicator + word[start:end]
                if candidate in self.token_to_id:
                    found = self.token_to_id[candidate]
                    break
                end -= 1
            if found is None:
                return [self.token_to_id[self.oov_token]]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[int]:
        """Token ids of one text, unpadded."""
        return [piece for word in self.pretokenize(text) for piece in self._word_pieces(word)]

    def __call__(self, texts: list[str]) -> np.ndarray:
        """int32 ids of a batch, padded with 0 (or truncated) to ``sequence_length``."""
        rows = [self.tokenize(text) for text in texts]
        length = self.sequence_length or max((len(row) for row in rows), default=0)
        ids = np.zeros((len(rows), length), dtype=np.int32)
        for index, row in enumerate(rows):
            row = row[:length]
            ids[index, : len(row)] = row
        return ids
