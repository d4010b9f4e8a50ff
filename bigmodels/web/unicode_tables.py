"""The Unicode facts the browser's WordPiece tokenizer needs, written out of Python's ``unicodedata``.

The page's tokenizer (``tokenizer.js``) must give the Python tokenizer's ids exactly, but a
browser's Unicode tables are its own (Chromium and Node ship ICU with Unicode 16 or 17, Python
3.11's ``unicodedata`` is Unicode 14). So the page reads, from the Python that serves it:

- the code points Python leaves unassigned (category Cn): the page treats them as Python does,
  as plain letters with no case, no decomposition and no combining class, by normalizing the text
  between them only (Unicode's normalization stability policy makes every other character agree);
- punctuation (P*), control and format characters (Cc, Cf) and combining marks (Mn), as ranges;
- full case folding (``str.casefold``), which JavaScript lacks (``toLowerCase`` leaves "ß");
- the tokenizer's own constants (CJK ranges, default-ignorable ranges, ASCII whitespace, the
  longest word), taken from ``bigmodels.lite.tokenizer`` so that the two cannot drift apart.
"""

import functools
import json
import sys
import unicodedata

from bigmodels.lite import tokenizer

CATEGORY_SETS = {
    "unassigned": lambda category: category == "Cn",
    "punctuation": lambda category: category.startswith("P"),
    "control_or_format": lambda category: category in ("Cc", "Cf"),
    "nonspacing_mark": lambda category: category == "Mn",
}


def _ranges(predicate) -> list[list[int]]:
    """[[first, last], ...] of the code points whose category satisfies ``predicate``."""
    ranges = []
    for code in range(sys.maxunicode + 1):
        if predicate(unicodedata.category(chr(code))):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return ranges


def _case_folding() -> dict[str, str]:
    """Every code point whose ``str.casefold`` is not itself, as hex code -> folded text."""
    folding = {}
    for code in range(sys.maxunicode + 1):
        character = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        folded = character.casefold()
        if folded != character:
            folding[f"{code:x}"] = folded
    return folding


@functools.cache  # binary searches in the page need each range list sorted
def unicode_tables() -> dict:
    """The tables, with the Unicode version they come from (about 2 s to compute, then cached)."""
    return {
        "unidata_version": unicodedata.unidata_version,
        **{name: _ranges(predicate) for name, predicate in CATEGORY_SETS.items()},
        "case_folding": _case_folding(),
        "cjk": sorted(list(pair) for pair in tokenizer.CJK_RANGES),
        "default_ignorable": sorted(list(pair) for pair in tokenizer.DEFAULT_IGNORABLE_RANGES),
        "ascii_whitespace": "".join(sorted(tokenizer.ASCII_WHITESPACE)),
        "max_bytes_per_word": tokenizer.MAX_BYTES_PER_WORD,
        "max_sequence_length": tokenizer.MAX_SEQUENCE_LENGTH,
    }


def unicode_tables_js() -> str:
    """``unicode_tables.js``, the ES module the page's tokenizer imports."""
    return (
        "// Written by bigmodels/web/unicode_tables.py from Python's unicodedata; do not edit.\n"
        f"export default {json.dumps(unicode_tables(), ensure_ascii=True, separators=(',', ':'))};\n"
    )
