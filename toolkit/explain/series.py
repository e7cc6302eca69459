"""Forecast explanations: which lags and features of the input window drive one forecast.

The forecaster takes a raw window (batch, W, F) (column 0 = target, then the features; the
last row is the most recent step, lag ``t-1``) and returns (batch, H, 3) quantiles p10/p50/p90.
The explained scalar is the p50 forecast at ``step`` (0-based), or its mean over the horizon
with ``step="mean"``. Both methods return a (W, F) array; positive values push that forecast up.

SHAP: ``shap.GradientExplainer`` (expected gradients) over the whole window, on a small Keras
wrapper whose last layer is a frozen ``Dense(1)`` picking the explained scalar (shap reads the
output of the last layer, so a slice op would not do). Verified under TF 2.21 / Keras 3.15 /
shap 0.51 on LSTM, GRU, Conv1D, Transformer and Dense forecasters: attributions sum to the
forecast minus the background mean. ``shap.DeepExplainer`` fails there on recurrent and
attention models (``LookupError: gradient registry has no entry for: shap_TensorListStack`` /
``shap_Neg``; LSTM failures of this kind fill shap's issue tracker), so it is not used.

LIME: ``lime.lime_tabular.RecurrentTabularExplainer`` in regression mode with continuous cells:
it samples every cell from a normal with the background windows' mean and sd, and fits a
weighted ridge model on the standardised cells. A cell's attribution is its term in that local
linear model, coefficient x the window's standardised value, so, like SHAP, it is relative to
the background mean and depends on this window (on a one-driving-cell LSTM, LIME's quartile-
discretised default put a median 40% of |attribution| on that cell over 10 windows, this 90%).
Its tabular code has no progress bar. LIME names the cells ``feature_t-k`` with k = 0 for the
last row; the weights are mapped back by column index, so row W-1 here is lag ``t-1``.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Callable

import numpy as np

from ..errors import DataError
from .base import Explanation

SERIES_METHODS = ("shap", "lime")
DEFAULT_BUDGETS = {"shap": 200, "lime": 1000}  # GradientExplainer nsamples / LIME num_samples
PREDICT_BATCH = 1024
TOP_LAGS = 10

Predictor = Callable[[np.ndarray], np.ndarray]


def lag_labels(window_length: int) -> list[str]:
    """Column labels of a window's rows, oldest first: ``["t-W", ..., "t-1"]``."""
    return [f"t-{window_length - i}" for i in range(window_length)]


def pick_output(outputs: np.ndarray, step: int | str = 0) -> np.ndarray:
    """The explained scalar per row: p50 at ``step`` (or its mean over the horizon with
    ``step="mean"``) of (N, H, 3) quantiles; (N, H) point forecasts and (N,) pass through."""
    y = np.asarray(outputs)
    if y.ndim == 3 and y.shape[-1] in (1, 3):
        y = y[..., 1] if y.shape[-1] == 3 else y[..., 0]
    if y.ndim == 1:
        return y
    if y.ndim != 2:
        raise ValueError(f"Expected forecasts of shape (N, H, 3), (N, H) or (N,). Received shape={y.shape}.")
    if step == "mean":
        return y.mean(axis=1)
    if not isinstance(step, (int, np.integer)) or not 0 <= int(step) < y.shape[1]:
        raise ValueError(f"step must be an integer in 0..{y.shape[1] - 1} (the forecast horizon) or 'mean'. "
                         f"Received step={step!r}.")
    return y[:, int(step)]


def _target_label(step: int | str) -> str:
    return "mean p50 over the horizon" if step == "mean" else f"p50 at step {int(step) + 1}"


def _check_window(window, background, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (W, F) float32 window and an (N, W, F) background of the same window shape."""
    window = np.asarray(window, dtype=np.float32)
    if window.ndim == 3 and window.shape[0] == 1:
        window = window[0]
    background = np.asarray(background, dtype=np.float32)
    if background.ndim == 2:
        background = background[None]
    if shape is None:
        shape = tuple(background.shape[1:]) if background.ndim == 3 else tuple(window.shape)
    what = f"(W, F) = {shape} (time steps, oldest first x [target, *features])"
    if window.shape != shape:
        raise DataError(f"Expected one window of shape {what}. Received shape {window.shape}. "
                        f"Pass the last {shape[0]} rows of the history with all {shape[1]} columns.")
    if background.ndim != 3 or background.shape[1:] != shape or len(background) == 0:
        raise DataError(f"Expected background windows of shape (N, W, F) with (W, F) = {shape}. Received shape "
                        f"{background.shape}. Pass a sample of training windows, e.g. 50 of them.")
    if not (np.isfinite(window).all() and np.isfinite(background).all()):
        raise DataError("The window or background windows contain NaN or infinite values. "
                        "Fill the gaps in the series (e.g. interpolate) before explaining.")
    return window, background


def model_predictor(model, step: int | str = 0, batch_size: int = PREDICT_BATCH) -> Predictor:
    """``windows (N, W, F) -> (N,)``: the explained scalar, by batched ``model(x, training=False)``."""
    def predict(windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, dtype=np.float32)
        parts = [pick_output(np.asarray(model(x[i:i + batch_size], training=False)), step)
                 for i in range(0, len(x), batch_size)]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
    return predict


# --------------------------------------------------------------------------- SHAP


def _scalar_model(model, step: int | str):
    """A Keras model: (batch, W, F) -> (batch, 1), the explained scalar (a frozen linear pick)."""
    import keras

    inputs = keras.Input(tuple(model.inputs[0].shape[1:]), dtype="float32")
    out_shape = tuple(int(d) for d in model.outputs[0].shape[1:])
    size = int(np.prod(out_shape))
    kernel = pick_output(np.eye(size, dtype=np.float32).reshape((size, *out_shape)), step)
    pick = keras.layers.Dense(1, use_bias=False, trainable=False, name="explained_output")
    outputs = pick(keras.layers.Flatten()(model(inputs)))
    pick.set_weights([kernel.reshape(size, 1).astype(np.float32)])
    return keras.Model(inputs, outputs)


def shap_series(model, window: np.ndarray, background: np.ndarray, step: int | str = 0, budget: int | None = None,
                seed: int = 0) -> np.ndarray:
    """SHAP expected gradients (``shap.GradientExplainer``) of the p50 forecast at ``step``.

    ``budget`` is the number of gradient samples (default 200: well under 2 s for an LSTM
    on a 40 x 3 window on two cores). numpy's global random state is left as it was.
    """
    import tensorflow as tf

    with warnings.catch_warnings():  # shap's colour maps warn about matplotlib deprecations on import
        warnings.simplefilter("ignore")
        import shap

    shape = tuple(int(d) for d in model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    window, background = _check_window(window, background, shape)
    nsamples = max(int(budget or DEFAULT_BUDGETS["shap"]), 2)
    scalar = _scalar_model(model, step)
    logger, level = tf.get_logger(), tf.get_logger().level
    state = np.random.get_state()  # GradientExplainer reseeds numpy's global generator
    try:
        logger.setLevel(logging.ERROR)  # tf.function retracing notes: one new trace per explainer
        with warnings.catch_warnings():  # shap passes inputs as a list; Keras warns about the structure
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            explainer = shap.GradientExplainer(scalar, background, batch_size=nsamples)
            values = explainer.shap_values(window[None], nsamples=nsamples, rseed=int(seed))
    finally:
        np.random.set_state(state)
        logger.setLevel(level)
    values = np.asarray(values[0] if isinstance(values, list) else values, dtype=np.float32)
    return values.reshape(window.shape)


# --------------------------------------------------------------------------- LIME


def lime_series(predict_fn: Predictor, window: np.ndarray, background: np.ndarray, feature_names, step: int | str = 0,
                budget: int | None = None, seed: int = 0) -> np.ndarray:
    """LIME (``RecurrentTabularExplainer``, regression) terms per cell of the window: local
    linear coefficient x the cell's value standardised with the background statistics.

    ``predict_fn(windows (N, W, F)) -> (N,)`` the explained scalar; forecasts of shape
    (N, H, 3) or (N, H) are reduced with ``step`` as in :func:`pick_output`. ``budget`` is
    LIME's ``num_samples`` (default 1000), all sent to ``predict_fn`` in one call.
    """
    from lime.lime_tabular import RecurrentTabularExplainer

    window, background = _check_window(window, background)
    n_steps, n_features = window.shape
    names = [str(n) for n in feature_names]
    if len(names) != n_features:
        raise DataError(f"Expected {n_features} feature names (one per window column). Received {len(names)}: {names}.")
    explainer = RecurrentTabularExplainer(
        background.astype(np.float64), mode="regression", feature_names=names,
        feature_selection="none", discretize_continuous=False, random_state=int(seed),
    )

    def predict(windows: np.ndarray) -> np.ndarray:
        return np.asarray(pick_output(predict_fn(windows.astype(np.float32)), step), dtype=np.float64).reshape(-1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn/scipy notes on constant columns
        explanation = explainer.explain_instance(
            window.astype(np.float64), predict, num_features=n_steps * n_features,
            num_samples=max(int(budget or DEFAULT_BUDGETS["lime"]), 2),
        )
    flat = window.T.reshape(-1).astype(np.float64)  # LIME's columns: feature-major, time within
    standardised = (flat - explainer.scaler.mean_) / explainer.scaler.scale_
    weights = np.zeros((n_steps, n_features), dtype=np.float32)
    for index, weight in explanation.local_exp[1]:
        weights[index % n_steps, index // n_steps] = weight * standardised[index]
    return weights


# --------------------------------------------------------------------------- rendering


def _totals(attributions: np.ndarray, feature_names) -> tuple[dict, list[dict]]:
    magnitude = np.abs(np.asarray(attributions, dtype=np.float64))
    features = {str(n): float(v) for n, v in zip(feature_names, magnitude.sum(axis=0))}
    per_lag = magnitude.sum(axis=1)
    labels = lag_labels(len(per_lag))
    order = np.argsort(-per_lag, kind="stable")[:TOP_LAGS]
    return features, [{"lag": labels[i], "total": float(per_lag[i])} for i in order]


def render_series_explanation(attributions: np.ndarray, feature_names, title: str = "") -> np.ndarray:
    """A 900 x 360 uint8 RGB picture: a lag x feature heatmap (red pushes the forecast up, blue
    down; most recent lag ``t-1`` at the right) and bars of the total |attribution| per feature
    and of the top 10 lags."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    a = np.nan_to_num(np.asarray(attributions, dtype=np.float64))
    if a.ndim != 2 or a.shape[1] != len(feature_names):
        raise ValueError(f"Expected attributions of shape (W, F) with F = {len(feature_names)} feature names. "
                         f"Received shape={a.shape}.")
    names = [str(n) if len(str(n)) <= 14 else str(n)[:13] + "\u2026" for n in feature_names]
    n_steps = a.shape[0]
    features, top = _totals(a, names)
    fig = Figure(figsize=(9, 3.6), dpi=100, facecolor="white", layout="constrained")
    FigureCanvasAgg(fig)
    heat_ax, feat_ax, lag_ax = fig.subplots(1, 3, width_ratios=[3.2, 1.2, 1.2])
    scale = float(np.abs(a).max()) or 1.0
    image = heat_ax.imshow(a.T, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
    every = int(np.ceil(n_steps / 10))
    ticks = list(range(n_steps - 1, -1, -every))[::-1]
    heat_ax.set_xticks(ticks, [lag_labels(n_steps)[i] for i in ticks], fontsize=7, rotation=45)
    heat_ax.set_yticks(range(len(names)), names, fontsize=8)
    heat_ax.set_xlabel("lag (most recent at the right)", fontsize=8)
    heat_ax.set_title("red raises the forecast, blue lowers it", fontsize=8)
    fig.colorbar(image, ax=heat_ax, fraction=0.05, pad=0.02).ax.tick_params(labelsize=7)
    feat_ax.barh(range(len(names)), list(features.values()), color="#4b5563")
    feat_ax.set_yticks(range(len(names)), names, fontsize=8)
    feat_ax.invert_yaxis()
    feat_ax.set_title("|attribution| per feature", fontsize=8)
    lag_ax.barh(range(len(top)), [t["total"] for t in top], color="#9ca3af")
    lag_ax.set_yticks(range(len(top)), [t["lag"] for t in top], fontsize=8)
    lag_ax.invert_yaxis()
    lag_ax.set_title(f"top {len(top)} lags", fontsize=8)
    for ax in (feat_ax, lag_ax):
        ax.tick_params(axis="x", labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs missing from the font are drawn as boxes
        fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


# --------------------------------------------------------------------------- one call


def explain_window(model, window: np.ndarray, background: np.ndarray, feature_names, method: str = "shap",
                   step: int | str = 0, budget: int | None = None, seed: int = 0,
                   predict_fn: Predictor | None = None) -> Explanation:
    """Explain the p50 forecast at ``step`` of one (W, F) window: attributions, a heatmap + bars
    image, per-feature totals and the top lags (``extra``)."""
    if method not in SERIES_METHODS:
        raise ValueError(f"Unknown explanation method {method!r} for forecasts. Expected one of {list(SERIES_METHODS)}.")
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    window, background = _check_window(window, background, shape)
    names = [str(n) for n in feature_names]
    if len(names) != shape[1]:
        raise DataError(f"Expected {shape[1]} feature names ([target, *features]). Received {len(names)}: {names}.")
    horizon = int(model.outputs[0].shape[1])
    pick_output(np.zeros((1, horizon, 3)), step)  # a bad step fails here, before any work
    used = int(budget or DEFAULT_BUDGETS[method])
    started = time.perf_counter()
    if method == "shap":
        attributions = shap_series(model, window, background, step, used, seed)
    else:
        attributions = lime_series(predict_fn or model_predictor(model, step), window, background, names, step, used, seed)
    seconds = time.perf_counter() - started
    target = _target_label(step)
    feature_totals, top_lags = _totals(attributions, names)
    return Explanation(
        attributions=attributions,
        method=method,
        target=target,
        seconds=seconds,
        image=render_series_explanation(attributions, names, f"{method.upper()}: what drives the {target}"),
        budget=used,
        extra={"feature_totals": feature_totals, "top_lags": top_lags, "step": step, "feature_names": names},
    )


__all__ = [
    "DEFAULT_BUDGETS",
    "SERIES_METHODS",
    "explain_window",
    "lag_labels",
    "lime_series",
    "model_predictor",
    "pick_output",
    "render_series_explanation",
    "shap_series",
]
