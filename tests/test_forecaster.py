"""The forecaster: windows, quantiles, backtest against baselines, save/load, TFLite parity, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from toolkit.data.series import load_series, split_series
from toolkit.errors import DataError, NotFittedError
from toolkit.timeseries import Forecaster, ForecasterConfig, make_windows
from toolkit.timeseries.classical import CLASSICAL


def seasonal(n=240, period=12, seed=0, features=False):
    """A monthly series: trend + season + noise (and a feature that leads the target by one step)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 10 + 0.05 * t + 3 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.3, n)
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})
    if features:
        frame["promo"] = rng.integers(0, 2, n).astype(float)
        frame["y"] += 2 * np.roll(frame["promo"].to_numpy(), 1)
    return frame


@pytest.fixture(scope="module")
def series():
    return load_series(seasonal())


@pytest.fixture(scope="module")
def fitted(series):
    train, _ = split_series(series, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Forecaster(model="lstm", horizon=6, epochs=60, patience=60, units=8,
                          classical=("theta",)).fit(train)


def test_config_validation():
    with pytest.raises(ValueError, match="Valid models"):
        ForecasterConfig(model="arima")
    with pytest.raises(ValueError, match="horizon"):
        ForecasterConfig(horizon=0)
    with pytest.raises(ValueError, match="window"):
        ForecasterConfig(window=1)


def test_make_windows_pairs_inputs_with_the_next_targets():
    values = np.arange(20, dtype="float32")[:, None]
    x, y = make_windows(values, 5, 3)
    assert x.shape == (13, 5, 1) and y.shape == (13, 3)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(y[0], [5, 6, 7])
    np.testing.assert_array_equal(y[-1], [17, 18, 19])


def test_fit_detects_the_season_and_learns(fitted, series):
    assert fitted.season_ == 12 and fitted.window_ == 14
    result = fitted.backtest(series)
    assert len(result.cutoffs) >= 5
    # On a clean seasonal series with a trend, the model must beat the naive forecasts.
    assert result.table["lstm"]["mase"] < result.table["naive"]["mase"]
    assert result.table["lstm"]["mase"] < result.table["drift"]["mase"]


def test_quantiles_are_ordered_and_forecast_has_future_times(fitted, series):
    q = fitted.predict_quantiles(series)
    assert q.shape == (1, 6, 3)
    assert np.all(q[..., 0] <= q[..., 1]) and np.all(q[..., 1] <= q[..., 2])
    table = fitted.forecast(series, horizon=4)
    assert list(table.columns) == ["time", "p10", "p50", "p90"] and len(table) == 4
    assert table["time"].iloc[0] == pd.Timestamp("2020-01-01")  # the month after the series ends
    np.testing.assert_allclose(table["p50"], fitted.predict(series)[0, :4], rtol=1e-6)
    default = fitted.forecast()  # from the end of the training data
    assert default["time"].iloc[0] == pd.Timestamp("2016-01-01")


def test_predict_accepts_one_window_or_a_batch(fitted, series):
    window = series.values[:14]
    assert fitted.predict(window).shape == (1, 6)
    assert fitted.predict(window[:, 0]).shape == (1, 6)  # univariate: (W,) is fine
    assert fitted.predict(np.stack([window] * 3)).shape == (3, 6)
    with pytest.raises(DataError, match=r"Expected windows of shape \(14, 1\)"):
        fitted.predict(series.values[:10])
    with pytest.raises(DataError, match="NaN"):
        fitted.predict(np.full((14, 1), np.nan))


def test_evaluate_reports_model_and_every_baseline(fitted, series):
    metrics = fitted.evaluate(series)
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive", "drift"}
    assert set(metrics["mase_ratio"]) == {"naive", "seasonal_naive", "drift"}
    assert 0 <= metrics["coverage_80"] <= 1 and metrics["n_cutoffs"] >= 5
    assert "MASE" in metrics["verdict"]
    assert metrics["beats_every_baseline"] == all(r < 1 for r in metrics["mase_ratio"].values())
    theta = metrics["classical"]["theta"]
    assert set(metrics["classical"]) == {"theta"} and theta["spec"] == "Theta(period=12)" and theta["failed"] == 0
    assert theta["fit_seconds"] > 0 and theta["mase"] < metrics["baselines"]["naive"]["mase"]
    assert metrics["ratio_to_best_classical"] == pytest.approx(metrics["mase"] / theta["mase"])
    interval = metrics["ratio_to_best_classical_interval"]  # one classical model: its resamples' ratio brackets this one
    assert interval["low"] <= metrics["ratio_to_best_classical"] <= interval["high"] and interval["level"] == 0.9
    everything = {"lstm": metrics["mase"], "theta": theta["mase"], **{k: v["mase"] for k, v in metrics["baselines"].items()}}
    assert metrics["best"] == min(everything, key=everything.get) and f"Best of all: {metrics['best']}" in metrics["verdict"]
    assert Forecaster(classical=("none",)).config.classical == () and Forecaster().config.classical == CLASSICAL
    with pytest.raises(ValueError, match="Unknown classical 'prophet'"):
        ForecasterConfig(classical=("prophet",))


def test_horizon_and_length_errors(fitted, series):
    with pytest.raises(DataError, match="up to 6 steps"):
        fitted.forecast(series, horizon=7)
    with pytest.raises(DataError, match="at least the last 14 values"):
        fitted.forecast(series.slice(0, 10))
    with pytest.raises(DataError, match="at least"):
        Forecaster(horizon=6, window=12).fit(series.slice(0, 25))


def test_not_fitted():
    with pytest.raises(NotFittedError):
        Forecaster().predict(np.zeros((14, 1)))


def test_multivariate_features_are_used(tmp_path):
    frame = seasonal(features=True)
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    series = load_series(path, target="y", features=["promo"])
    train, _ = split_series(series, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = Forecaster(model="dense", horizon=3, epochs=80, patience=80).fit(train)
    assert fc.columns_ == ["y", "promo"]
    # The promo of the last step drives the first forecast step: changing it moves the forecast.
    window = series.values[-fc.window_:].copy()
    window[-1, 1] = 0.0
    low = fc.predict(window)[0, 0]
    window[-1, 1] = 1.0
    assert fc.predict(window)[0, 0] - low > 0.5
    with pytest.raises(DataError, match="2 columns"):
        fc.forecast(load_series(path, target="y"))
    loaded = fc.load_data(str(path))  # by the model's column names
    assert loaded.columns == ["y", "promo"]


@pytest.mark.parametrize("model", ["gru", "conv1d", "transformer", "dense", "nbeats"])
def test_every_architecture_trains_and_exports(model, series, tmp_path):
    train, _ = split_series(series, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = Forecaster(model=model, horizon=4, epochs=2).fit(train)
    directory = fc.save(tmp_path / model)
    path = fc.export(directory, quantization="float32", data=series)
    entry = next(e for e in Forecaster.load(directory).tflite_ if e["file"] == path.name)
    assert entry["max_relative_difference"] < 1e-3
    assert entry["input"]["shape"] == [1, fc.window_, 1] and entry["output"]["shape"] == [1, 4, 3]


def test_lstm_nbeats_blend_is_the_mean_of_its_members_in_one_file(series, tmp_path):
    from toolkit import TFLiteModel

    train, _ = split_series(series, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = Forecaster(model="lstm+nbeats", horizon=4, epochs=3, units=4, classical=()).fit(train)
    members = {layer.name: layer for layer in fc.model_.layers if layer.name.startswith("forecaster_")}
    assert set(members) == {"forecaster_lstm", "forecaster_nbeats"}
    x, _ = make_windows(series.values, fc.window_, 4)
    mean = np.mean([np.asarray(m(x[-10:])) for m in members.values()], axis=0)
    np.testing.assert_allclose(fc.predict_quantiles(x[-10:]), mean, rtol=1e-5, atol=1e-5)
    assert len(fc.history_["loss"]) == max(len(fc.history_["lstm_loss"]), len(fc.history_["nbeats_loss"]))
    directory = fc.save(tmp_path / "blend")
    again = Forecaster.load(directory)
    assert again.config.model == "lstm+nbeats"
    np.testing.assert_allclose(again.predict_quantiles(x[-10:]), mean, rtol=1e-5, atol=1e-5)
    path = again.export(directory, quantization="float32", data=series)
    np.testing.assert_allclose(TFLiteModel(path).run(x[-10:]), mean, rtol=1e-3, atol=1e-3)
    ops = _ops(path)
    assert not any(op.startswith("Flex") for op in ops) and "WHILE" not in ops  # the LSTM member unrolled


def test_log_scale_nbeats_forecasts_positive_values_and_round_trips(tmp_path):
    from toolkit.timeseries.layers import use_log

    t = np.arange(120)
    y = 5 * np.exp(0.02 * t) * (1 + 0.1 * np.sin(2 * np.pi * t / 12))  # multiplicative, grows 10x
    series = load_series(pd.DataFrame({"date": pd.date_range("2000-01-01", periods=120, freq="MS"), "y": y}))
    assert use_log("auto", y) and not use_log("auto", y - 10) and not use_log("none", y)
    with pytest.raises(DataError, match="positive target"):
        use_log("log", y - 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = Forecaster(model="nbeats", horizon=4, epochs=40, classical=()).fit(series.slice(0, 100))
    assert fc.model_.get_layer("scaler").log and fc.model_.get_layer("forecast").log
    quantiles = fc.predict_quantiles(series.slice(0, 110))
    assert (quantiles > 0).all() and (np.diff(quantiles, axis=-1) >= 0).all()
    assert np.abs(quantiles[0, :, 1] / y[110:114] - 1).max() < 0.3  # the trend is followed
    again = Forecaster.load(fc.save(tmp_path / "nbeats"))
    np.testing.assert_allclose(again.predict_quantiles(series.slice(0, 110)), quantiles, rtol=1e-5)


def test_save_load_export_and_tflite_parity(fitted, series, tmp_path):
    from toolkit import TFLiteModel, load

    directory = fitted.save(tmp_path / "fc")
    loaded = load(directory)
    np.testing.assert_allclose(loaded.predict(series), fitted.predict(series), rtol=1e-6)
    np.testing.assert_allclose(loaded.forecast()["p50"], fitted.forecast()["p50"], rtol=1e-6)
    path = loaded.export(directory, quantization="float32", data=series)
    entry = next(e for e in load(directory).tflite_ if e["file"] == path.name)
    assert entry["max_relative_difference"] < 1e-3 and entry["n_test_windows"] > 10
    x, _ = make_windows(series.values, fitted.window_, 6)
    lite = TFLiteModel(path).run(x[-20:])
    np.testing.assert_allclose(lite, fitted.predict_quantiles(x[-20:]), rtol=1e-3, atol=1e-3)
    ops = _ops(path)
    assert not any(op.startswith("Flex") for op in ops) and "WHILE" not in ops


def _ops(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return {d["op_name"] for d in interpreter._get_ops_details()}


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_explain_gives_a_lag_by_feature_heatmap(fitted, series, method):
    explanation = fitted.explain(series, method=method, step=0, budget=100)
    assert explanation.attributions.shape == (14, 1)
    assert explanation.image.dtype == np.uint8 and explanation.image.ndim == 3
    assert explanation.method == method
