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
   out-of-vocabulary token (FastWordpiece's ``max_bytes_per_word``), so the work per word is
   bounded.

With a ``sequence_length``, a text is read in pieces of about ``PIECE_CHARACTERS`` characters,
cut only just before a character that ends every word whatever surrounds it, and tokenizing stops
once ``sequence_length`` ids exist: a 20 MB line costs what its first few hundred words cost, and
its ids are exactly those of the whole text, cut to ``sequence_length``. Each step runs through
``str.translate`` tables filled in per character on first use, so long words cost C-speed passes.
"""

import json
import unicodedata
from pathlib import Path

import numpy as np

MAX_BYTES_PER_WORD = 100  # tensorflow-text's FastWordpiece maps longer words to the unknown token
# Settings asking for more ids per text are refused: a text model takes a few hundred.
MAX_SEQUENCE_LENGTH = 1 << 16
PIECE_CHARACTERS = 512  # a text is tokenized this many characters (and up to a safe cut) at a time
_TABLE_CACHE_LIMIT = 1 << 16  # characters remembered per translation table
_CUT = "\x00"  # marks safe cuts; no text holds one (a NUL ends the text first)
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


class _CharacterTable(dict):
    """A ``str.translate`` table whose entry for a character is computed on first use.

    ``rule(character)`` returns the replacement: the character itself, another string, or None to
    delete it. Translating then runs at C speed, with one Python call per distinct character.
    """

    def __init__(self, rule):
        super().__init__()
        self._rule = rule

    def __missing__(self, code: int):
        value = self._rule(chr(code))
        if len(self) < _TABLE_CACHE_LIMIT:  # a text of every code point cannot grow it without end
            self[code] = value
        return value


def _splits_words(character: str, split_on_cjk: bool) -> str:
    if is_punctuation(character) or (split_on_cjk and is_cjk(character)):
        return f" {character} "  # kept as a word of its own
    return " " if is_separator(character) else character


def _is_safe_cut(character: str, split_on_cjk: bool) -> str:
    """``_CUT`` when a text may be cut just before ``character`` without changing any word.

    A CJK ideograph gets a space before it (step 1); otherwise the character must end words
    (punctuation or separator) and be a starter that NFD leaves alone, so that accent stripping
    and splitting give the same result on both sides of the cut as on the whole text.
    """
    if split_on_cjk and is_cjk(character):
        return _CUT
    ends_words = is_punctuation(character) or is_separator(character)
    stable = unicodedata.combining(character) == 0 and unicodedata.normalize("NFD", character) == character
    return _CUT if ends_words and stable else character


_SPACE_AROUND_CJK = _CharacterTable(lambda c: f" {c} " if is_cjk(c) else c)
_DROP_MARKS = _CharacterTable(lambda c: None if unicodedata.category(c) == "Mn" else c)
_DROP_IGNORABLE = _CharacterTable(lambda c: None if _in_ranges(c, DEFAULT_IGNORABLE_RANGES) else c)
_SPLIT = {flag: _CharacterTable(lambda c, flag=flag: _splits_words(c, flag)) for flag in (False, True)}
_SAFE_CUTS = {flag: _CharacterTable(lambda c, flag=flag: _is_safe_cut(c, flag)) for flag in (False, True)}

# Tokenizer settings a bundle or run may give, with the JSON type each must have.
SETTING_TYPES = {
    "lowercase": bool,
    "strip_accents": bool,
    "split": bool,
    "split_on_cjk": bool,
    "suffix_indicator": str,
    "oov_token": str,
    "sequence_length": int,
}
_TYPE_NAMES = {bool: "true or false", str: "a string", int: "a whole number"}


def nfkc_casefold(text: str) -> str:
    """Unicode NFKC_Casefold, as ICU (and so tensorflow-text's case_fold_utf8) computes it."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return text.translate(_DROP_IGNORABLE)


def parse_vocabulary(text: str) -> list[str]:
    """Tokens of a vocabulary file's text, one per line (``\\n``, ``\\r\\n`` or ``\\r``), id = line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def check_settings(settings, source: str = "tokenizer settings") -> dict:
    """The settings a ``WordPieceTokenizer`` accepts, after checking each one's type.

    Raises:
        ValueError: not a JSON object, or a setting of the wrong type or out of range.
    """
    if not isinstance(settings, dict):
        raise ValueError(f"{source}: tokenizer settings must be a JSON object; export the run again")
    accepted = {key: value for key, value in settings.items() if key in SETTING_TYPES}
    for key, value in accepted.items():
        kind = SETTING_TYPES[key]
        if key == "sequence_length" and value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(
                f"{source}: tokenizer setting '{key}' must be {_TYPE_NAMES[kind]}, got {value!r}; "
                "export the run again"
            )
    length = accepted.get("sequence_length")
    if length is not None and not 1 <= length <= MAX_SEQUENCE_LENGTH:
        raise ValueError(
            f"{source}: tokenizer setting 'sequence_length' must be between 1 and "
            f"{MAX_SEQUENCE_LENGTH}, got {length}; export the run again"
        )
    return accepted


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
        vocabulary = Path(vocabulary_path).read_bytes()
        settings = Path(settings_path).read_bytes() if settings_path else None
        return cls.from_bytes(vocabulary, settings, source=str(settings_path or vocabulary_path), **overrides)

    @classmethod
    def from_bytes(
        cls,
        vocabulary: bytes | str,
        settings: bytes | str | dict | None = None,
        *,
        source: str = "",
        **overrides,
    ):
        """A tokenizer from the contents of a vocabulary file and of its JSON settings file.

        A bundle hands over the bytes it has just checked against their sha256, so what is hashed
        is what is used (the files are not read a second time).

        Args:
            vocabulary: the vocabulary file's content (UTF-8, one token per line).
            settings: the settings file's content, an already-parsed dict, or None.
            source: what the contents came from, for error messages.
            **overrides: settings that replace the file's.

        Raises:
            ValueError: content that is not UTF-8, not JSON, or settings of the wrong type.

        Example:
            tokenizer = WordPieceTokenizer.from_bytes(b"[PAD]\\n[UNK]\\nok\\n", b'{"lowercase": true}')
        """
        source = source or "tokenizer"
        try:
            if isinstance(vocabulary, bytes):
                vocabulary = vocabulary.decode("utf-8")
            if isinstance(settings, bytes):
                settings = settings.decode("utf-8")
            if isinstance(settings, str):
                settings = json.loads(settings)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise ValueError(
                f"{source}: unreadable vocabulary or tokenizer settings ({error}); export the run again"
            ) from error
        accepted = check_settings({} if settings is None else settings, source)
        return cls(parse_vocabulary(vocabulary), **{**accepted, **overrides})

    def _strip(self, text: str) -> str:
        if not self.strip_accents:
            return text
        return unicodedata.normalize("NFD", text).translate(_DROP_MARKS)

    def _pieces(self, text: str):
        """The text in pieces of at least ``PIECE_CHARACTERS`` characters, each cut just before a
        character where no word can continue (see ``_is_safe_cut``); one piece if there is none."""
        cuts = _SAFE_CUTS[self.split_on_cjk]
        start = 0
        while start < len(text):
            end, window = start + PIECE_CHARACTERS, PIECE_CHARACTERS
            while end < len(text):
                found = text[end : end + window].translate(cuts).find(_CUT)
                if found >= 0:
                    end += found
                    break
                end += window
                window = min(2 * window, 1 << 20)
            yield text[start:end]
            start = end

    def words(self, text: str):
        """The words of a text, one at a time, as keras-hub splits them before WordPiece."""
        # tensorflow-text's regex split (RE2) reads a string only up to its first NUL character,
        # so keras-hub never sees what follows one; neither do we.
        text = text.partition("\x00")[0]
        if not self.split:
            text = self._strip(text)
            yield nfkc_casefold(text) if self.lowercase else text
            return
        for piece in self._pieces(text):
            if self.split_on_cjk:
                piece = piece.translate(_SPACE_AROUND_CJK)
            for word in self._strip(piece).translate(_SPLIT[self.split_on_cjk]).split(" "):
                if word:
                    yield nfkc_casefold(word) if self.lowercase else word

    def pretokenize(self, text: str) -> list[str]:
        """Splits text into words, as keras-hub does before WordPiece."""
        return list(self.words(text))

    def _word_pieces(self, word: str) -> list[int]:
        if not word:
            return []
        if len(word) > MAX_BYTES_PER_WORD or len(word.encode("utf-8", "surrogatepass")) > MAX_BYTES_PER_WORD:
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

    def tokenize(self, text: str, *, limit: int | None = None) -> list[int]:
        """Token ids of one text, unpadded; with ``limit``, only the first ``limit`` ids, and the
        rest of the text is not read."""
        ids = []
        for word in self.words(text):
            ids += self._word_pieces(word)
            if limit is not None and len(ids) >= limit:
                return ids[:limit]
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        """int32 ids of a batch, padded with 0 (or truncated) to ``sequence_length``."""
        rows = [self.tokenize(text, limit=self.sequence_length or None) for text in texts]
        length = self.sequence_length or max((len(row) for row in rows), default=0)
        ids = np.zeros((len(rows), length), dtype=np.int32)
        for index, row in enumerate(rows):
            row = row[:length]
            ids[index, : len(row)] = row
        return ids
