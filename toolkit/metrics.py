"""Classification metrics and the confusion matrix, as numbers and a PNG."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .plotting import figure_png, pyplot
from .storage import atomic_write_bytes


@dataclasses.dataclass
class ClassificationReport:
    """Everything ``evaluate`` knows: flat metrics, per-class table and confusion matrix."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    confusion_matrix: np.ndarray
    class_names: list[str]

    def to_dict(self) -> dict:
        return {
            "metrics": self.metrics,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion_matrix.tolist(),
            "labels": self.class_names,
        }

    def confusion_matrix_png(self) -> bytes:
        from sklearn.metrics import ConfusionMatrixDisplay

        plt = pyplot()
        size = max(4.0, 0.5 * len(self.class_names) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        ConfusionMatrixDisplay(self.confusion_matrix, display_labels=self.class_names).plot(
            ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45 if len(self.class_names) > 8 else "horizontal"
        )
        ax.set_title(f"Confusion matrix (accuracy {self.metrics['accuracy']:.3f})")
        return figure_png(fig)

    def save_confusion_matrix(self, path: str | os.PathLike) -> Path:
        return atomic_write_bytes(path, self.confusion_matrix_png())


def classification_report(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> ClassificationReport:
    from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    labels = np.arange(len(class_names))
    y_pred = np.argmax(probs, axis=-1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = support > 0
    majority = np.bincount(y_true, minlength=len(labels)).max() / len(y_true)
    metrics = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "loss": float(log_loss(y_true, np.clip(probs, 1e-7, 1.0), labels=labels)),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "baseline_majority_accuracy": float(majority),
        "n_samples": float(len(y_true)),
    }
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": float(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    for name, row in per_class.items():
        for key in ("precision", "recall", "f1"):
            metrics[f"{key}/{name}"] = row[key]
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return ClassificationReport(metrics, per_class, matrix, list(class_names))


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Keras ``class_weight`` inversely proportional to class frequency (scikit-learn's "balanced");
    classes absent from ``y`` weigh 1."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    weights = dict.fromkeys(range(n_classes), 1.0)
    weights.update({int(c): float(w) for c, w in zip(present, compute_class_weight("balanced", classes=present, y=y))})
    return weights
