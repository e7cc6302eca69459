"""Classification metrics, the confusion matrix and training curves, as numbers and PNGs."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import numpy as np

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

        plt = _pyplot()
        size = max(4.0, 0.5 * len(self.class_names) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        ConfusionMatrixDisplay(self.confusion_matrix, display_labels=self.class_names).plot(
            ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45 if len(self.class_names) > 8 else "horizontal"
        )
        ax.set_title(f"Confusion matrix (accuracy {self.metrics['accuracy']:.3f})")
        return _png(fig)

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


def training_curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss and accuracy per epoch, training and validation; a line marks the fine-tuning phase."""
    plt = _pyplot()
    keys = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        if history.get("fine_tune_start"):
            ax.axvline(history["fine_tune_start"][0] + 0.5, color="grey", linestyle="--", label="fine-tuning")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    return _png(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
