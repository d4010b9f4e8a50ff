"""What the text benchmarks share: the TF-IDF + logistic-regression peer, and one model trained
through the train app's path (``train_run`` with the app's defaults) and exported."""

import json
import time
from pathlib import Path

from bigmodels import export_run, train_run

TARGET_SIZE_BYTES = 500 * 1024
TARGET_LATENCY_MS = 0.2
C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)


def read_columns(path: Path, text_columns, label_column, header: bool):
    """(texts, labels) of a CSV/TSV file as the train app reads it (bigmodels.read_table: the
    same rows, quotes and skipped lines), so the peer learns from the same examples; several
    text columns are joined with a space."""
    from bigmodels import read_table

    texts, labels, _ = read_table(path, text_columns=text_columns, label_column=label_column, header=header)
    return texts, labels


def tfidf_peer(train, test, *, analyzer: str = "word", validation=None) -> dict:
    """TF-IDF (word 1-2-grams, or character 1-3-grams for unsegmented scripts) + logistic
    regression: with scikit-learn's default C=1, and with C chosen on ``validation`` (or by
    3-fold cross-validation on the training texts when there is none)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    ngrams = (1, 2) if analyzer == "word" else (1, 3)
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True)
    features = vectorizer.fit_transform(train[0])
    test_features = vectorizer.transform(test[0])
    default = LogisticRegression(max_iter=3000).fit(features, train[1])
    if validation is None:
        search = GridSearchCV(LogisticRegression(max_iter=3000), {"C": list(C_GRID)}, cv=3).fit(
            features, train[1]
        )
        chosen_c, tuned = search.best_params_["C"], search.best_estimator_
    else:
        scored = []
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=3000).fit(features, train[1])
            scored.append((model.score(vectorizer.transform(validation[0]), validation[1]), c, model))
        _, chosen_c, tuned = max(scored, key=lambda item: item[0])
    return {
        "model": f"TF-IDF ({analyzer} {ngrams[0]}-{ngrams[1]} grams) + logistic regression (scikit-learn)",
        "features": len(vectorizer.vocabulary_),
        "test_accuracy_default_c": round(default.score(test_features, test[1]), 4),
        "C_chosen": chosen_c,
        "C_chosen_on": "validation file" if validation is not None else "3-fold cross-validation",
        "test_accuracy": round(tuned.score(test_features, test[1]), 4),
    }


def train_and_export(model: str | None, train_file: Path, work: Path, data_options: dict, **training) -> dict:
    """One model through train_run with the app's defaults (what is not given), then export_run."""
    started = time.perf_counter()
    run_dir, metrics = train_run(
        model,
        str(train_file),
        work / (model or "default"),
        data_options=data_options,
        overwrite=True,
        verbose=0,
        **training,
    )
    train_seconds = time.perf_counter() - started
    report = export_run(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    chosen = next(a for a in report["artifacts"] if a["file"] == report["chosen"]["file"])
    return {
        "model": config["model"],
        "asked": model or "(no --model: the app's default)",
        "model_args": config["model_args"],
        "tokenizer": config["tokenizer"],
        "num_parameters": metrics["num_parameters"],
        "test_accuracy": metrics["test_accuracy"],
        "epochs_trained": metrics["epochs_trained"],
        "train_run_seconds": round(train_seconds, 1),
        **({"model_candidates": config["model_candidates"]} if "model_candidates" in config else {}),
        "artifacts": report["artifacts"],
        "chosen": {
            key: chosen.get(key) for key in ("file", "accuracy", "size_bytes", "gzip_bytes", "latency_ms")
        },
        "chosen_meets_size_and_latency": chosen["size_bytes"] <= TARGET_SIZE_BYTES
        and chosen["latency_ms"] <= TARGET_LATENCY_MS,
    }


def print_rows(title: str, peer: dict, results: list[dict]) -> None:
    print(f"\n{title}")
    print(f"  {'TF-IDF + LR, C=1':<44}{peer['test_accuracy_default_c']:>9.4f}")
    tuned = f"TF-IDF + LR, C={peer['C_chosen']} ({peer['C_chosen_on']})"
    print(f"  {tuned:<44}{peer['test_accuracy']:>9.4f}")
    for result in results:
        chosen = result["chosen"]
        print(
            f"  {result['model']:<44}{result['test_accuracy']:>9.4f}   chosen {chosen['file']}: "
            f"{chosen['accuracy']:.4f}, {chosen['size_bytes'] / 1024:.0f} KB, {chosen['latency_ms']:.3f} ms, "
            f"trained in {result['train_run_seconds']:.0f} s"
        )


def write_summary(path: str, summary: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"written: {out}")
