"""Writes topic-classification sets from Debian's fortunes packages, for benchmarks/text_topics.py.

Usage (as root, or install the packages yourself):
    apt-get install -y fortunes fortunes-ru
    python benchmarks/make_fortune_sets.py --out /tmp/bigmodels-fortunes

en_fortunes: 14 English topic files (people, computers, politics, ...), headerless CSV with the
label index first; ru_fortunes: 8 Russian topic files, TSV with a header (category, text).
Each entry becomes one row (whitespace collapsed, ANSI colours removed); 80/20 seeded split;
en_fortunes_800.csv and ru_fortunes_600.tsv are seeded samples of the training splits.
Nothing is committed: the packages are the source. (fortunes-zh's files split trivially by
source, so they make no Chinese check: TF-IDF reaches 100%.)
"""

import argparse
import csv
import random
import re
from pathlib import Path

ROOT = Path("/usr/share/games/fortunes")
ENGLISH = [
    "people",
    "definitions",
    "computers",
    "songs-poems",
    "politics",
    "science",
    "work",
    "food",
    "law",
    "education",
    "medicine",
    "love",
    "sports",
    "kids",
]
RUSSIAN = ["love", "polit", "knowledge", "education", "computer", "friendship", "book", "wealth"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def entries(path: Path) -> list[str]:
    text = ANSI.sub("", path.read_text(encoding="utf-8", errors="replace"))
    return [entry for entry in (" ".join(e.split()) for e in text.split("\n%\n")) if len(entry) > 10]


# Training sets of a few hundred rows (a seeded sample of the training split; 57 and 75 texts a
# class): the size many users have (benchmarks/results/text_small_sets.json).
SMALL = {"en_fortunes": 800, "ru_fortunes": 600}


def write(out: Path, name: str, suffix: str, rows: list, header) -> None:
    random.Random(0).shuffle(rows)
    cut = len(rows) // 5
    small = list(rows[cut:])
    random.Random(0).shuffle(small)
    parts = (("train", rows[cut:]), ("test", rows[:cut]), (str(SMALL[name]), small[: SMALL[name]]))
    for part, part_rows in parts:
        with open(out / f"{name}_{part}.{suffix}", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="," if suffix == "csv" else "\t")
            writer.writerows(([header] if header else []) + part_rows)
        print(f"{name}_{part}.{suffix}: {len(part_rows)} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/bigmodels-fortunes")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    write(out, "en_fortunes", "csv", [[i, e] for i, c in enumerate(ENGLISH) for e in entries(ROOT / c)], None)
    write(
        out,
        "ru_fortunes",
        "tsv",
        [[c, e] for c in RUSSIAN for e in entries(ROOT / "ru" / c)],
        ["category", "text"],
    )


if __name__ == "__main__":
    main()
