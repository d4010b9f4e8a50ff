"""Classifier metrics: accuracy, per-class precision/recall/F1 and the confusion matrix."""

import csv
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def classification_report(labels: np.ndarray, predictions: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        labels: true class ids.
        predictions: predicted class ids (top-1).
        class_names: names, index = class id.

    Example:
        report = classification_report(y_test, probabilities.argmax(-1), info.class_names)
    """

    class_ids = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=class_ids, zero_division=0
    )
    per_class = {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": round(float(np.mean(labels == predictions)), 6),
        "macro_f1": round(float(np.mean(f1)), 4),
        "num_examples": int(len(labels)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(labels, predictions, labels=class_ids).tolist(),
        "class_names": list(class_names),
    }


def plot_confusion_matrix(report: dict, path: Path) -> None:
    """Writes the confusion matrix of ``classification_report`` as a PNG."""

    matplotlib.use("Agg")

    matrix = np.asarray(report["confusion_matrix"])
    names = report["class_names"]
    size = max(4.0, 0.45 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=90 if len(names) > 6 else 0)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"accuracy {report['accuracy']:.4f} on {report['num_examples']} examples")
    if len(names) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if count > threshold else "black",
            )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_history(history_csv: Path, path: Path, metrics=("loss", "accuracy")) -> None:
    """Writes training curves (one panel per metric, train and validation) from history.csv."""

    matplotlib.use("Agg")

    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [row.get(prefix + metric, "NA") for row in rows]
            if "NA" not in values:  # CSVLogger writes NA for metrics a model does not report
                axis.plot(epochs, [float(value) for value in values], marker="o", label=label)
        phases = [row.get("phase") for row in rows]
        fine_tuning = [epoch for epoch, phase in zip(epochs, phases, strict=True) if phase in ("2", "2.0")]
        if fine_tuning:  # transfer learning: where the backbone starts to learn
            axis.axvline(fine_tuning[0] - 0.5, color="grey", linestyle="--", label="fine-tuning starts")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
