"""The toolkit's charts as PNG bytes (matplotlib's Agg backend, no display): training curves of
every task and the RL learning curve. One home, so every task's curves look alike."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """A figure as PNG bytes (100 dpi); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    return buffer.getvalue()


def training_curves_png(history: dict[str, list[float]], panels: Sequence[str] | None = ("loss", "accuracy")) -> bytes:
    """Training curves per epoch. ``panels``: one chart per metric the history has (training and
    ``val_`` curves, a dashed line where fine-tuning began); ``None``: every curve in one chart."""
    plt = pyplot()
    groups = ([[k] for k in panels if k in history] if panels is not None
              else [[k for k in history if k != "fine_tune_start"]])
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups) if panels is not None else 6, 3.5),
                             squeeze=False)
    for ax, keys in zip(axes[0], groups):
        for key in keys:
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], label=f"train {key}" if panels else key)
            if panels is not None and f"val_{key}" in history:
                ax.plot(np.arange(1, len(history[f"val_{key}"]) + 1), history[f"val_{key}"], label=f"validation {key}")
        if history.get("fine_tune_start"):
            ax.axvline(history["fine_tune_start"][0] + 0.5, color="grey", linestyle="--", label="fine-tuning")
        ax.set_xlabel("epoch")
        if panels is not None:
            ax.set_title(keys[0])
        ax.legend()
    fig.tight_layout()
    return figure_png(fig)


def learning_curve_png(history: dict, threshold: float | None = None, threshold_step: int | None = None,
                       title: str = "") -> bytes:
    """Episode returns against environment steps (points and a moving mean), the greedy
    evaluations with their std, the threshold and where it was reached."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    steps = np.asarray(history.get("episode_steps", []))
    returns = np.asarray(history.get("episode_returns", []), dtype=np.float64)
    if len(returns):
        ax.scatter(steps, returns, s=4, alpha=0.25, color="#6b7280", label="training episode")
        window = max(1, min(20, len(returns) // 5))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="#1f2937", label=f"mean of {window} episodes")
    if history.get("eval_steps"):
        ax.errorbar(history["eval_steps"], history["eval_mean"], yerr=history["eval_std"], fmt="o-", ms=4,
                    color="#2563eb", capsize=2, label="greedy evaluation")
    if threshold is not None:
        ax.axhline(threshold, color="#16a34a", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    if threshold_step:
        ax.axvline(threshold_step, color="#16a34a", linestyle=":", linewidth=1,
                   label=f"reached at {threshold_step:,} steps")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title or "Learning curve")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return figure_png(fig)
