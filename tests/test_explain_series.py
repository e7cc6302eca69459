"""Forecast explanations: SHAP and LIME find the one lag/feature cell that drives a forecast."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.explain.base import Explanation
from toolkit.explain.series import (
    DEFAULT_BUDGETS,
    SERIES_METHODS,
    explain_window,
    lag_labels,
    lime_series,
    model_predictor,
    pick_output,
    render_series_explanation,
    shap_series,
)

W, F, H = 12, 3, 2
NAMES = ["sales", "price", "noise"]
LAG, FEATURE = 3, 1  # the forecast is 2 x price at lag t-3; everything else is noise
ROW = W - LAG


def lag_problem(n: int = 1200, seed: int = 0):
    """Raw windows (offset and scaled: the model normalises them) and targets (n, H, 3)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, W, F)).astype("float32")
    x = z * np.array([3.0, 2.0, 5.0], "float32") + np.array([50.0, 10.0, -4.0], "float32")
    y = 2.0 * z[:, ROW, FEATURE]
    return x, np.repeat(y[:, None, None], H * 3, axis=1).reshape(n, H, 3).astype("float32")


def forecaster(kind: str, x: np.ndarray, window: int = W, features: int = F, horizon: int = H, units: int = 16):
    """A quantile-shaped (batch, H, 3) forecaster with its normalisation inside, as the real one."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((window, features))
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(x)
    h = norm(inputs)
    if kind == "lstm":
        h = keras.layers.LSTM(units)(h)
    elif kind == "gru":
        h = keras.layers.GRU(units)(h)
    elif kind == "conv1d":
        h = keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(units, 3, activation="relu")(h))
    elif kind == "transformer":
        h = keras.layers.Dense(units)(h)
        h = keras.layers.LayerNormalization()(h + keras.layers.MultiHeadAttention(2, 8)(h, h))
        h = keras.layers.GlobalAveragePooling1D()(h)
    else:
        h = keras.layers.Flatten()(h)
    outputs = keras.layers.Reshape((horizon, 3))(keras.layers.Dense(horizon * 3)(h))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def problem():
    x, y = lag_problem()
    window = x[0].copy()
    window[ROW, FEATURE] = 10.0 + 2.0 * 2.5  # the driving cell 2.5 sd above its mean
    return x, y, window, x[-60:]


@pytest.fixture(scope="module")
def trained(problem):
    """A linear (dense) and an LSTM forecaster trained for a few seconds."""
    import keras

    x, y, _, _ = problem
    models = {}
    for kind, epochs in (("dense", 15), ("lstm", 12)):
        started = time.perf_counter()
        model = forecaster(kind, x)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
        print(f"\ntrained {kind} in {time.perf_counter() - started:.1f}s, loss {history.history['loss'][-1]:.4f}")
        models[kind] = model
    return models


def cell_share(attributions: np.ndarray) -> float:
    magnitude = np.abs(attributions)
    return float(magnitude[ROW, FEATURE] / magnitude.sum())


def test_lag_labels_and_pick_output():
    assert lag_labels(4) == ["t-4", "t-3", "t-2", "t-1"]
    q = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    assert pick_output(q, 0).tolist() == [1.0, 10.0]
    assert pick_output(q, 2).tolist() == [7.0, 16.0]
    assert pick_output(q, "mean").tolist() == [4.0, 13.0]
    assert pick_output(q[..., 1], 1).tolist() == [4.0, 13.0]
    for bad in (3, -1, "last", 1.0):
        with pytest.raises(ValueError, match="step must be"):
            pick_output(q, bad)


@pytest.mark.parametrize("kind", ["dense", "lstm"])
def test_shap_finds_the_driving_cell(trained, problem, kind):
    _, _, window, background = problem
    model = trained[kind]
    started = time.perf_counter()
    attributions = shap_series(model, window, background, step=0, seed=0)
    print(f"\nshap {kind}: {time.perf_counter() - started:.2f}s, share at the driving cell {cell_share(attributions):.2f}")
    assert attributions.shape == (W, F) and attributions.dtype == np.float32
    assert np.unravel_index(np.argmax(np.abs(attributions)), (W, F)) == (ROW, FEATURE)
    assert cell_share(attributions) > 0.5
    assert attributions[ROW, FEATURE] > 0  # a high price at t-3 pushes the forecast up
    predict = model_predictor(model, 0)
    gap = float(predict(window[None])[0] - predict(background).mean())
    assert attributions.sum() == pytest.approx(gap, rel=0.15, abs=0.05)  # expected gradients add up


@pytest.mark.parametrize("kind", ["dense", "lstm"])
def test_lime_finds_the_driving_cell(trained, problem, kind):
    _, _, window, background = problem
    started = time.perf_counter()
    attributions = lime_series(model_predictor(trained[kind], 0), window, background, NAMES, seed=0)
    print(f"\nlime {kind}: {time.perf_counter() - started:.2f}s, share at the driving cell {cell_share(attributions):.2f}")
    assert attributions.shape == (W, F)
    assert np.unravel_index(np.argmax(np.abs(attributions)), (W, F)) == (ROW, FEATURE)
    assert cell_share(attributions) > 0.5
    assert attributions[ROW, FEATURE] > 0
    if kind == "dense":  # a linear model: LIME's local terms add up to the gap to the background mean
        predict = model_predictor(trained[kind], 0)
        gap = float(predict(window[None])[0] - predict(background).mean())
        assert attributions.sum() == pytest.approx(gap, rel=0.1)


@pytest.mark.parametrize("kind", ["gru", "conv1d", "transformer"])
def test_shap_gradient_explainer_works_on_other_architectures(problem, kind):
    """Untrained GRU / Conv1D / attention forecasters: finite values that add up (shap#4023)."""
    x, _, window, background = problem
    model = forecaster(kind, x)
    values = shap_series(model, window, background, step=1, budget=400, seed=0)
    predict = model_predictor(model, 1)
    gap = float(predict(window[None])[0] - predict(background).mean())
    assert values.shape == (W, F) and np.isfinite(values).all() and np.abs(values).sum() > 0
    assert values.sum() == pytest.approx(gap, rel=0.2, abs=0.02)


def test_step_mean_and_quantile_predictors(trained, problem):
    _, _, window, background = problem
    model = trained["dense"]
    mean_values = shap_series(model, window, background, step="mean", budget=50)
    assert np.unravel_index(np.argmax(np.abs(mean_values)), (W, F)) == (ROW, FEATURE)
    # a predictor returning the raw (N, H, 3) quantiles is reduced with `step`
    raw = lime_series(lambda w: np.asarray(model(w, training=False)), window, background, NAMES, step=1, budget=300)
    assert np.unravel_index(np.argmax(np.abs(raw)), (W, F)) == (ROW, FEATURE)


def test_budgets_are_respected(trained, problem, monkeypatch):
    import shap

    _, _, window, background = problem
    rows = []

    def counting(windows):
        rows.append(len(windows))
        assert windows.shape[1:] == (W, F) and windows.dtype == np.float32
        return model_predictor(trained["dense"], 0)(windows)

    lime_series(counting, window, background, NAMES, budget=123)
    assert rows == [123]  # one batched call
    rows.clear()
    lime_series(counting, window, background, NAMES)
    assert rows == [DEFAULT_BUDGETS["lime"]]

    seen = []
    original = shap.GradientExplainer.shap_values

    def spy(self, X, nsamples=200, **kwargs):
        seen.append(nsamples)
        return original(self, X, nsamples=nsamples, **kwargs)

    monkeypatch.setattr(shap.GradientExplainer, "shap_values", spy)
    shap_series(trained["dense"], window, background, budget=37)
    shap_series(trained["dense"], window, background)
    assert seen == [37, DEFAULT_BUDGETS["shap"]]


def test_shap_is_seeded_and_leaves_numpy_random_state_alone(trained, problem):
    _, _, window, background = problem
    np.random.seed(123)
    expected = np.random.uniform(size=3)
    np.random.seed(123)
    a = shap_series(trained["lstm"], window, background, budget=40, seed=5)
    assert np.array_equal(np.random.uniform(size=3), expected)
    b = shap_series(trained["lstm"], window, background, budget=40, seed=5)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(W, F), (40, 1), (3, 8)])
def test_render_gives_a_900_by_360_rgb_picture(shape):
    rng = np.random.default_rng(0)
    names = [f"feature number {i} with a long name" for i in range(shape[1])]
    image = render_series_explanation(rng.normal(size=shape), names, "SHAP: what drives the p50 at step 1")
    assert image.dtype == np.uint8 and image.shape == (360, 900, 3)
    assert image.std() > 10  # something was drawn
    assert render_series_explanation(np.zeros(shape), names, "").shape == (360, 900, 3)
    with pytest.raises(ValueError, match="feature names"):
        render_series_explanation(np.zeros(shape), names[:-1] + ["a", "b"], "")


@pytest.mark.parametrize("method", SERIES_METHODS)
def test_explain_window(trained, problem, method, tmp_path):
    _, _, window, background = problem
    explanation = explain_window(trained["lstm"], window, background, NAMES, method=method, step=0, budget=300)
    print(f"\nexplain_window {method} (budget 300): {explanation.seconds:.2f}s")
    assert isinstance(explanation, Explanation)
    assert explanation.method == method and explanation.budget == 300
    assert explanation.target == "p50 at step 1"
    assert explanation.attributions.shape == (W, F)
    assert explanation.image.shape == (360, 900, 3) and explanation.image.dtype == np.uint8
    extra = explanation.extra
    assert max(extra["feature_totals"], key=extra["feature_totals"].get) == "price"
    assert extra["top_lags"][0]["lag"] == "t-3" and len(extra["top_lags"]) == 10
    assert extra["step"] == 0
    json.dumps(explanation.summary())
    assert explanation.save(tmp_path / "why.png").stat().st_size > 1000
    mean = explain_window(trained["lstm"], window, background, NAMES, method=method, step="mean", budget=100)
    assert mean.target == "mean p50 over the horizon" and mean.extra["step"] == "mean"


def test_explain_window_uses_a_given_predictor(trained, problem):
    _, _, window, background = problem
    calls = []

    def predictor(windows):
        calls.append(len(windows))
        return model_predictor(trained["dense"], 0)(windows)

    explanation = explain_window(trained["dense"], window, background, NAMES, method="lime", budget=50,
                                 predict_fn=predictor)
    assert calls == [50] and explanation.budget == 50


def test_bad_input_is_refused(trained, problem):
    _, _, window, background = problem
    model = trained["dense"]
    with pytest.raises(ValueError, match=r"Expected one of \['shap', 'lime'\]"):
        explain_window(model, window, background, NAMES, method="gradcam")
    with pytest.raises(DataError, match=r"\(12, 3\)"):
        explain_window(model, window[1:], background, NAMES)
    with pytest.raises(DataError, match=r"\(12, 3\)"):
        explain_window(model, window[:, :2], background, NAMES, method="lime")
    with pytest.raises(DataError, match="background"):
        explain_window(model, window, background[:, 1:], NAMES)
    with pytest.raises(DataError, match="feature names"):
        explain_window(model, window, background, NAMES[:2])
    with pytest.raises(DataError, match="feature names"):
        lime_series(model_predictor(model), window, background, NAMES + ["extra"])
    with pytest.raises(ValueError, match="step must be"):
        explain_window(model, window, background, NAMES, step=H)
    broken = window.copy()
    broken[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        explain_window(model, broken, background, NAMES)
    assert explain_window(model, window[None], background, NAMES, budget=20).attributions.shape == (W, F)


def test_default_budgets_answer_in_seconds():
    """An LSTM on a 40-step window of 3 columns, as the app would explain it."""
    x = np.random.default_rng(1).normal(size=(200, 40, 3)).astype("float32")
    model = forecaster("lstm", x, window=40, horizon=12, units=32)
    names = ["target", "a", "b"]
    for method in SERIES_METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and quietly
            explanation = explain_window(model, x[0], x[-50:], names, method=method)
        print(f"\n{method} with the default budget {explanation.budget}: {explanation.seconds:.2f}s")
        assert explanation.seconds > 0  # the time is measured by `make bench` (about 1 s)
