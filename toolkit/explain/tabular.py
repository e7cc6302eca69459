"""Explanations over a feature vector (an agent's observation): which features pushed one
scalar output (e.g. the chosen action's advantage) up or down, as signed attributions and a bar
chart with the feature names.

SHAP: ``shap.KernelExplainer`` on the model's predict function with a background of real
states. With a handful of features it enumerates every coalition (2^F <= budget), so the values
are the exact Shapley values and sum to f(x) - E[f(background)].

LIME: ``lime.lime_tabular.LimeTabularExplainer`` in regression mode with continuous features
(samples from a normal with the background's mean and sd); a feature's attribution is its term in
the weighted local linear model, coefficient x the standardised value, so, like SHAP, it is
relative to the background mean (the convention of :mod:`toolkit.explain.series`).
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import numpy as np

from ..errors import DataError
from .base import Explanation

FEATURE_METHODS = ("shap", "lime")
DEFAULT_BUDGETS = {"shap": 256, "lime": 1000}  # KernelExplainer nsamples / LIME num_samples
MAX_BACKGROUND = 50  # KernelExplainer evaluates budget x background rows

Predictor = Callable[[np.ndarray], np.ndarray]


def _check(x, background, n_names: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    background = np.asarray(background, dtype=np.float64)
    if background.ndim == 1:
        background = background[None]
    if background.ndim != 2 or background.shape[1] != len(x) or len(background) == 0:
        raise DataError(f"Expected background states of shape (N, {len(x)}). Received shape {background.shape}.")
    if len(x) != n_names:
        raise DataError(f"Expected {n_names} features (one per name). Received {len(x)}.")
    if not (np.isfinite(x).all() and np.isfinite(background).all()):
        raise DataError("The state or the background states contain NaN or infinite values.")
    return x, background


def _subsample(background: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(background) <= n:
        return background
    pick = np.random.default_rng(seed).choice(len(background), n, replace=False)
    return background[np.sort(pick)]


def shap_features(predict_fn: Predictor, x: np.ndarray, background: np.ndarray,
                  budget: int = DEFAULT_BUDGETS["shap"], seed: int = 0) -> np.ndarray:
    """Kernel SHAP values of ``predict_fn(states (N, F)) -> (N,)`` at ``x``; numpy's global
    random state is left as it was."""
    with warnings.catch_warnings():  # shap's colour maps warn about matplotlib deprecations on import
        warnings.simplefilter("ignore")
        import shap

    x, background = _check(x, background, len(np.reshape(x, -1)))
    background = _subsample(background, MAX_BACKGROUND, seed)
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        explainer = shap.KernelExplainer(lambda s: np.asarray(predict_fn(s), np.float64), background)
        values = explainer.shap_values(x[None], nsamples=max(int(budget), 2 * len(x) + 2), silent=True)
    finally:
        np.random.set_state(state)
    return np.asarray(values, dtype=np.float32).reshape(-1)


def lime_features(predict_fn: Predictor, x: np.ndarray, background: np.ndarray, feature_names,
                  budget: int = DEFAULT_BUDGETS["lime"], seed: int = 0) -> np.ndarray:
    """LIME terms (local linear coefficient x standardised value) of ``predict_fn`` at ``x``."""
    from lime.lime_tabular import LimeTabularExplainer

    names = [str(n) for n in feature_names]
    x, background = _check(x, background, len(names))
    explainer = LimeTabularExplainer(background, mode="regression", feature_names=names, feature_selection="none",
                                     discretize_continuous=False, random_state=int(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn/scipy notes on constant columns
        explanation = explainer.explain_instance(
            x, lambda s: np.asarray(predict_fn(s), np.float64).reshape(-1), num_features=len(names),
            num_samples=max(int(budget), 2),
        )
    scale = np.where(explainer.scaler.scale_ > 0, explainer.scaler.scale_, 1.0)
    standardised = (x - explainer.scaler.mean_) / scale
    weights = np.zeros(len(names), dtype=np.float32)
    for index, weight in explanation.local_exp[1]:  # regression: key 1 (key 0 holds the negated weights)
        weights[index] = weight * standardised[index]
    return weights


def render_feature_bars(attributions: np.ndarray, feature_names, values=None, title: str = "") -> np.ndarray:
    """A horizontal bar chart (red pushes the output up, blue down), one bar per feature, each
    labelled with its value; uint8 RGB, about 640 x (120 + 36 per feature) pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    a = np.nan_to_num(np.asarray(attributions, dtype=np.float64)).reshape(-1)
    names = [str(n) for n in feature_names]
    if values is not None:
        names = [f"{n} = {float(v):.3g}" for n, v in zip(names, np.reshape(values, -1))]
    fig = Figure(figsize=(6.4, 1.2 + 0.36 * len(a)), dpi=100, facecolor="white", layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.barh(range(len(a)), a, color=["#dc2626" if v > 0 else "#2563eb" for v in a])
    ax.set_yticks(range(len(a)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#374151", linewidth=0.8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("attribution (red: towards, blue: against)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def explain_features(predict_fn: Predictor, x: np.ndarray, background: np.ndarray, feature_names,
                     method: str = "shap", budget: int | None = None, seed: int = 0, target: str = "",
                     quantity: str = "") -> Explanation:
    """Explain ``predict_fn``'s scalar at ``x`` (one state) with SHAP or LIME: signed
    attributions per feature, a bar chart, and the sentence naming the feature that drove it."""
    if method not in FEATURE_METHODS:
        raise ValueError(f"Unknown explanation method {method!r}. Valid methods: {list(FEATURE_METHODS)}.")
    names = [str(n) for n in feature_names]
    x, background = _check(x, background, len(names))
    used = int(budget or DEFAULT_BUDGETS[method])
    if used < 1:
        raise ValueError(f"budget must be >= 1. Received {used}.")
    started = time.perf_counter()
    if method == "shap":
        attributions = shap_features(predict_fn, x, background, used, seed)
    else:
        attributions = lime_features(predict_fn, x, background, names, used, seed)
    seconds = time.perf_counter() - started
    top = int(np.argmax(np.abs(attributions)))
    direction = "towards" if attributions[top] >= 0 else "away from"
    sentence = f"the {names[top]} ({x[top]:.3g}) mattered most"
    if target:
        sentence += f", pushing {direction} {target!r}"
    title = f"{method.upper()}: why {target!r}" + (f" ({quantity})" if quantity else "") if target else method.upper()
    return Explanation(
        attributions=attributions, method=method, target=target, seconds=seconds,
        image=render_feature_bars(attributions, names, x, title), budget=used,
        extra={"feature_names": names, "values": x.tolist(), "top_feature": names[top], "sentence": sentence,
               "explained": quantity},
    )


__all__ = ["DEFAULT_BUDGETS", "FEATURE_METHODS", "explain_features", "lime_features", "render_feature_bars",
           "shap_features"]
