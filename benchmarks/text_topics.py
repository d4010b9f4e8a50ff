"""Benchmark: text models against TF-IDF + logistic regression on topic sets, in the file shapes
people have (headerless CSV with a label index, TSV with a header, several scripts).

Usage:
    python benchmarks/text_topics.py --set NAME TRAIN TEST TEXT_COLUMNS LABEL_COLUMN [--set ...]

TEXT_COLUMNS is a comma-separated list of header names or 0-based indexes; add ``:char`` to
NAME for scripts written without spaces (the TF-IDF peer then uses character 1-3-grams). With no
--set, the sets are made from Debian's ``fortunes`` packages (English 14 topics, Russian 8
topics), which benchmarks/make_fortune_sets.py writes. Every model goes through the train app's
path with its defaults (no --model, then each --models entry); the peer is trained on the same
training file in the same run. Writes benchmarks/results/text_topics.json.
"""

import argparse
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from text_common import print_rows, read_columns, tfidf_peer, train_and_export, write_summary  # noqa: E402

FORTUNE_SETS = [
    ("en_fortunes", "en_fortunes_train.csv", "en_fortunes_test.csv", "1", "0"),
    ("ru_fortunes", "ru_fortunes_train.tsv", "ru_fortunes_test.tsv", "text", "category"),
]


def _column(value: str):
    return int(value) if value.isdigit() else value


def run_set(spec, models, work: Path) -> dict:
    name, train, test, text_columns, label_column = spec
    name, _, analyzer = name.partition(":")
    train, test = Path(train), Path(test)
    text_columns = [_column(c) for c in text_columns.split(",")]
    label_column = _column(label_column)
    header = isinstance(label_column, str)
    peer = tfidf_peer(
        read_columns(train, text_columns, label_column, header),
        read_columns(test, text_columns, label_column, header),
        analyzer=analyzer or "word",
    )
    options = {
        "text_columns": text_columns,
        "label_column": label_column,
        "test_source": str(test),
        "header": header,
    }
    results = [train_and_export(model, train, work / name, options) for model in models]
    print_rows(name, peer, results)
    return {
        "set": name,
        "train": str(train),
        "test": str(test),
        "tfidf_logistic_regression": peer,
        "models": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set", dest="sets", nargs=5, action="append", metavar=("NAME", "TRAIN", "TEST", "TEXT", "LABEL")
    )
    parser.add_argument("--fortunes", default="/tmp/bigmodels-fortunes", help="folder of the fortune sets")
    parser.add_argument("--models", nargs="+", default=["default", "ngram_classifier"])
    parser.add_argument("--out", default="benchmarks/results/text_topics.json")
    args = parser.parse_args()
    sets = args.sets or [
        (n, f"{args.fortunes}/{a}", f"{args.fortunes}/{b}", t, lab) for n, a, b, t, lab in FORTUNE_SETS
    ]
    models = [None if model == "default" else model for model in args.models]
    work = Path(tempfile.mkdtemp(prefix="bigmodels-topics-"))
    results = [run_set(spec, models, work) for spec in sets]
    summary = {
        "benchmark": "text models vs TF-IDF + logistic regression, same split, same run",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "sets": results,
        "beats_or_matches_tfidf": {
            f"{result['set']}/{model['model']}": model["test_accuracy"]
            >= result["tfidf_logistic_regression"]["test_accuracy"]
            for result in results
            for model in result["models"]
        },
    }
    write_summary(args.out, summary)


if __name__ == "__main__":
    main()
