"""Baselines, seasonality detection, forecast metrics and rolling-origin backtests."""

import json
import math

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.timeseries.baselines import (
    BASELINES,
    BacktestResult,
    backtest,
    baseline_forecast,
    detect_seasonality,
    drift,
    forecast_metrics,
    naive,
    rolling_cutoffs,
    seasonal_naive,
)


def _sunspots():
    sm = pytest.importorskip("statsmodels.api")
    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(float)


def _co2():
    sm = pytest.importorskip("statsmodels.api")
    return sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate().to_numpy(float)


# --------------------------------------------------------------------------- baselines


def test_baselines_on_hand_made_inputs():
    np.testing.assert_array_equal(naive([1, 2, 3], 2), [3.0, 3.0])
    np.testing.assert_array_equal(seasonal_naive([1, 2, 3, 4, 5], 5, 2), [4, 5, 4, 5, 4])
    np.testing.assert_array_equal(seasonal_naive([9, 1, 2, 3], 2, 3), [1, 2])
    np.testing.assert_array_equal(seasonal_naive([7, 8], 3, 2), [7, 8, 7])  # exactly one season is enough
    np.testing.assert_allclose(drift([1, 3, 5], 3), [7, 9, 11])
    np.testing.assert_allclose(drift([10, 0, 4], 2), [1, -2])  # (last - first) / (n - 1) = -3
    for out in (naive([1.0], 4), seasonal_naive(np.arange(24.0), 30, 12), drift([1, 2], 1)):
        assert out.dtype == np.float64 and out.ndim == 1


def test_seasonal_naive_repeats_the_last_season_for_long_horizons():
    history = np.arange(30.0)
    out = seasonal_naive(history, 25, 7)
    expected = [history[30 - 7 + (h % 7)] for h in range(25)]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("call, needle", [
    (lambda: naive([], 1), "at least 1"),
    (lambda: naive([1, 2], 0), "horizon"),
    (lambda: naive([1, np.nan], 1), "NaN"),
    (lambda: naive(np.ones((3, 2)), 1), "1-D"),
    (lambda: seasonal_naive([1, 2, 3], 2, 4), "one full season of 4"),
    (lambda: seasonal_naive([1, 2, 3], 2, 0), "season"),
    (lambda: drift([5.0], 3), "at least 2"),
    (lambda: drift([1, 2], 1.5), "horizon"),
])
def test_baselines_reject_bad_input_with_clear_errors(call, needle):
    with pytest.raises(DataError, match=needle):
        call()


def test_baseline_forecast_dispatches_and_lists_valid_names():
    assert set(BASELINES) == {"naive", "seasonal_naive", "drift"}
    np.testing.assert_array_equal(baseline_forecast("seasonal_naive", [1, 2, 3, 4], 3, 2), [3, 4, 3])
    np.testing.assert_allclose(baseline_forecast("drift", [0, 1], 2), [2, 3])
    with pytest.raises(ValueError, match="naive, seasonal_naive, drift"):
        baseline_forecast("arima", [1, 2], 1)
    with pytest.raises(DataError, match="needs a season"):
        baseline_forecast("seasonal_naive", [1, 2], 1)


# --------------------------------------------------------------------------- seasonality


def test_detect_seasonality_on_statsmodels_series():
    assert 10 <= detect_seasonality(_sunspots()) <= 12
    assert detect_seasonality(_co2()) == 12


@pytest.mark.parametrize("n", [120, 300, 1000])
def test_detect_seasonality_finds_none_in_noise_and_random_walks(n):
    rng = np.random.default_rng(0)
    noise = rng.normal(size=n)
    assert detect_seasonality(noise) is None
    assert detect_seasonality(np.cumsum(noise)) is None
    assert detect_seasonality(np.cumsum(rng.normal(size=n)) + 0.1 * np.arange(n)) is None  # walk with drift


def test_detect_seasonality_on_synthetic_seasons():
    t = np.arange(240)
    rng = np.random.default_rng(1)
    assert detect_seasonality(np.tile([1.0, 5.0, 2.0, 0.0], 30)) == 4
    assert detect_seasonality(np.sin(2 * np.pi * t / 7) + 0.3 * rng.normal(size=240)) == 7
    assert detect_seasonality(3 * np.sin(2 * np.pi * t / 24) + 0.05 * t + rng.normal(size=240)) == 24  # with trend
    assert detect_seasonality(0.002 * t ** 2 + 2 * np.sin(2 * np.pi * t / 12)) == 12  # curved trend
    assert detect_seasonality(np.ones(50)) is None and detect_seasonality(2.0 * t) is None
    assert detect_seasonality([1.0, 2.0, 3.0]) is None  # too short to tell
    assert detect_seasonality(np.tile([1.0, 5.0, 2.0, 0.0], 30), max_lag=3) is None  # season beyond max_lag
    with pytest.raises(DataError, match="max_lag"):
        detect_seasonality(t * 1.0, max_lag=1)


# --------------------------------------------------------------------------- metrics


def test_forecast_metrics_hand_computed():
    actual, predicted = [[1.0, 2.0], [3.0, 4.0]], [[2.0, 2.0], [3.0, 6.0]]  # errors 1, 0, 0, 2
    m = forecast_metrics(actual, predicted, train=[1.0, 3.0, 2.0, 6.0], season=None)
    assert m["mae"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 4))
    assert m["smape"] == pytest.approx(200 * (1 / 3 + 0 + 0 + 2 / 10) / 4)
    assert m["mase"] == pytest.approx(0.75 / (7 / 3))  # lag-1 in-sample MAE: (2 + 1 + 4) / 3
    assert m["mae_by_step"] == pytest.approx([0.5, 1.0])
    seasonal = forecast_metrics(actual, predicted, train=[1.0, 3.0, 2.0, 6.0], season=2)
    assert seasonal["mase"] == pytest.approx(0.75 / 2)  # lag-2 in-sample MAE: (1 + 3) / 2
    assert json.dumps(m)


def test_smape_treats_zero_over_zero_as_zero_and_is_bounded():
    assert forecast_metrics([[0.0, 1.0]], [[0.0, 1.0]], [0, 1], None)["smape"] == 0.0
    assert forecast_metrics([[0.0, 0.0]], [[1.0, -1.0]], [0, 1], None)["smape"] == pytest.approx(200.0)
    one_cutoff = forecast_metrics([0.0, 2.0], [0.0, 1.0], [0, 1], None)  # 1-D input = one cut-off
    assert one_cutoff["smape"] == pytest.approx(100 * (1 / 3))


def test_forecast_metrics_errors():
    with pytest.raises(DataError, match="constant"):
        forecast_metrics([[1.0]], [[2.0]], train=[3.0, 3.0, 3.0], season=None)
    with pytest.raises(DataError, match="periodic with period 2"):
        forecast_metrics([[1.0]], [[2.0]], train=[1.0, 2.0, 1.0, 2.0], season=2)
    with pytest.raises(DataError, match="same shape"):
        forecast_metrics([[1.0, 2.0]], [[1.0]], train=[1.0, 2.0], season=None)
    with pytest.raises(DataError, match="at least 13"):
        forecast_metrics([[1.0]], [[2.0]], train=np.arange(12.0), season=12)


# --------------------------------------------------------------------------- cut-offs


def test_rolling_cutoffs_counts_and_spacing():
    np.testing.assert_array_equal(rolling_cutoffs(100, 10, 80), np.arange(80, 91))
    np.testing.assert_array_equal(rolling_cutoffs(100, 10, 80, stride=4), [82, 86, 90])  # anchored at n - H
    np.testing.assert_array_equal(rolling_cutoffs(100, 10, 80, max_cutoffs=3), [80, 85, 90])
    np.testing.assert_array_equal(rolling_cutoffs(100, 10, 80, max_cutoffs=50), np.arange(80, 91))
    np.testing.assert_array_equal(rolling_cutoffs(20, 10, 10), [10])
    cuts = rolling_cutoffs(309, 10, 200, max_cutoffs=6)
    assert len(cuts) == 6 and cuts[-1] == 299 and np.all(np.diff(cuts) > 0)


def test_rolling_cutoffs_errors_explain_the_minimum_length():
    with pytest.raises(DataError, match="at least first \\+ horizon = 25 points. Received 20"):
        rolling_cutoffs(20, 10, 15)
    with pytest.raises(DataError, match="first >= 1"):
        rolling_cutoffs(20, 5, 0)
    with pytest.raises(DataError, match="stride"):
        rolling_cutoffs(20, 5, 5, stride=0)


# --------------------------------------------------------------------------- backtest


def _noisy_seasonal(n=200, season=12, seed=0):
    t = np.arange(n)
    return 10 + 5 * np.sin(2 * np.pi * t / season) + 0.05 * t + np.random.default_rng(seed).normal(size=n)


def test_backtest_perfect_forecaster_beats_every_baseline_and_bad_one_loses():
    y, horizon, season, train_end = _noisy_seasonal(), 12, 12, 150
    cuts = rolling_cutoffs(len(y), horizon, train_end, stride=6)
    rng = np.random.default_rng(3)
    forecasters = {
        "oracle": lambda c: np.stack([y[i:i + horizon] for i in c]),
        "lstm": lambda c: np.stack([y[i - 1] + rng.normal(scale=5, size=horizon) for i in c]),
    }
    result = backtest(y, horizon, cuts, forecasters, season, train_end)
    assert isinstance(result, BacktestResult)
    assert list(result.table) == ["oracle", "lstm", "naive", "seasonal_naive", "drift"]
    assert result.actual.shape == (len(cuts), horizon) and result.predictions["lstm"].shape == result.actual.shape
    np.testing.assert_array_equal(result.predictions["naive"][:, 0], y[cuts - 1])
    assert result.table["oracle"]["mase"] == 0.0 and result.table["oracle"]["smape"] == 0.0
    assert result.best_baseline == "seasonal_naive"
    assert result.ratios["oracle"] == {"naive": 0.0, "seasonal_naive": 0.0, "drift": 0.0}
    lstm, sn = result.table["lstm"]["mase"], result.table["seasonal_naive"]["mase"]
    assert result.ratios["lstm"]["seasonal_naive"] == pytest.approx(lstm / sn) and lstm > sn
    assert result.verdicts["oracle"].startswith("oracle beats every baseline on MASE: 0.000 vs")
    assert f"lstm loses to seasonal_naive on MASE: {lstm:.3f} vs {sn:.3f}" in result.verdict
    assert "oracle beats every baseline" in result.verdict


def test_backtest_reports_json_frame_and_markdown():
    y, horizon = _noisy_seasonal(seed=4), 6
    cuts = rolling_cutoffs(len(y), horizon, 150, max_cutoffs=5)
    result = backtest(y, horizon, cuts, {"m": lambda c: np.stack([np.full(horizon, y[i - 1]) + 0.1 for i in c])},
                      12, 150)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["n_cutoffs"] == 5 and data["season"] == 12 and data["horizon"] == 6
    assert set(data) >= {"table", "ratios", "verdict", "n_cutoffs", "season", "horizon"}
    assert data["table"]["m"]["mase"] == pytest.approx(result.table["m"]["mase"])
    assert len(data["table"]["naive"]["mae_by_step"]) == horizon
    frame = result.to_frame()
    assert list(frame.index) == ["m", "naive", "seasonal_naive", "drift"]
    assert list(frame.columns) == ["mae", "rmse", "smape", "mase"]
    assert frame.loc["naive", "mae"] == pytest.approx(result.table["naive"]["mae"])
    lines = result.markdown().splitlines()
    assert len(lines) == 2 + 4 and lines[0].startswith("| forecaster | MAE")
    assert lines[2].startswith("| m | ") and lines[4].startswith("| seasonal_naive (baseline) | 1.301 |")


def test_pure_seasonal_series_seasonal_naive_is_perfect():
    pattern = np.array([3.0, 7.0, 1.0, 4.0, 9.0, 2.0])
    y = np.tile(pattern, 30)
    y[:100] += np.random.default_rng(2).normal(scale=0.5, size=100)  # noisy training part, exact test part
    assert detect_seasonality(y) == 6
    cuts = rolling_cutoffs(len(y), 6, 110, stride=3)
    result = backtest(y, 6, cuts, {}, season=6, train_end=100)
    assert result.table["seasonal_naive"]["mase"] < 1e-12 and result.table["naive"]["mase"] > 1
    assert result.best_baseline == "seasonal_naive" and result.models == []
    assert result.verdict.startswith("No model to compare; the best baseline is seasonal_naive")


def test_backtest_without_season_skips_seasonal_naive_and_uses_lag_one_scale():
    y = _noisy_seasonal(seed=5)
    result = backtest(y, 5, rolling_cutoffs(len(y), 5, 160), {}, None, 160)
    assert result.baselines == ["naive", "drift"]
    expected = forecast_metrics(result.actual, result.predictions["naive"], y[:160], None)["mase"]
    assert result.table["naive"]["mase"] == pytest.approx(expected)


def test_backtest_input_errors_and_leak_warning():
    y = _noisy_seasonal()
    cuts = rolling_cutoffs(len(y), 12, 150)
    with pytest.raises(DataError, match="forecaster 'm'.*shape \\(39, 12\\)"):
        backtest(y, 12, cuts, {"m": lambda c: np.zeros((len(c), 11))}, 12, 150)
    with pytest.raises(ValueError, match="taken by the baselines"):
        backtest(y, 12, cuts, {"naive": lambda c: np.zeros((len(c), 12))}, 12, 150)
    with pytest.raises(DataError, match="cut-offs between 1 and"):
        backtest(y, 12, [195], {}, 12, 150)
    with pytest.raises(DataError, match="one full season of 12"):
        backtest(y, 12, [5, 20], {}, 12, 4)
    with pytest.warns(UserWarning, match="trained on"):
        backtest(y, 12, [100, 150], {}, 12, 150)


@pytest.mark.parametrize("series, horizon, season", [(_sunspots, 10, 11), (_co2, 12, 12)])
def test_backtest_on_statsmodels_series_prefers_seasonal_naive(series, horizon, season):
    y = series()
    train_end = int(len(y) * 0.8)
    cuts = rolling_cutoffs(len(y), horizon, train_end, stride=horizon)
    assert len(cuts) >= 5
    result = backtest(y, horizon, cuts, {"naive_copy": lambda c: np.stack([np.full(horizon, y[i - 1]) for i in c])},
                      season, train_end)
    assert result.best_baseline == "seasonal_naive"
    assert result.table["seasonal_naive"]["mase"] < result.table["naive"]["mase"]
    assert result.table["naive_copy"]["mase"] == pytest.approx(result.table["naive"]["mase"])
    assert result.verdict.startswith("naive_copy loses to seasonal_naive on MASE")
    assert "also to naive" in result.verdict  # an exact tie is not a win


def _result_with(errors: dict[str, np.ndarray], classical: list[str], gap: int = 1, horizon: int = 4) -> BacktestResult:
    """A backtest result whose forecasters miss the actual values (all 0) by the given per-cut-off errors."""
    n = len(next(iter(errors.values())))
    actual = np.zeros((n, horizon))
    predictions = {k: np.repeat(np.asarray(e, float)[:, None], horizon, axis=1) for k, e in errors.items()}
    table = {k: forecast_metrics(actual, p, np.arange(10.0), None) for k, p in predictions.items()}
    models = [k for k in errors if k not in classical]
    return BacktestResult(table, predictions, actual, np.arange(n) * gap + 20, None, horizon, models, [],
                          classical=classical)


def test_ratio_to_the_best_classical_model_comes_with_a_bootstrap_interval():
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 2, 24)
    same = _result_with({"model": base, "ets": base}, ["ets"]).to_best_classical_interval("model")
    assert same["low"] == same["high"] == 1.0 and same["share_at_most_one"] == 1.0 and same["block"] == 4
    half = _result_with({"model": base / 2, "ets": base}, ["ets"], gap=2).to_best_classical_interval("model")
    assert half["low"] == pytest.approx(0.5) and half["high"] == pytest.approx(0.5) and half["block"] == 2
    # Two classical models, each the better one on half the cut-offs: a model equal to one of them is at most
    # the best in some resamples only, and its ratio is never below 1 (the best is chosen again in each).
    a, b = base.copy(), base.copy()
    a[:12] *= 0.8
    b[12:] *= 0.8
    result = _result_with({"model": a, "ets": a, "arima": b}, ["ets", "arima"])
    interval = result.to_best_classical_interval("model", level=0.8, n_boot=500)
    assert 0 < interval["share_at_most_one"] < 1 and interval["low"] == 1.0 and interval["high"] > 1.0
    assert interval["low"] <= result.to_best_classical("model") <= interval["high"]
    assert _result_with({"model": base}, []).to_best_classical_interval("model") is None


def test_coverage_comes_with_a_bootstrap_interval_over_the_cut_offs():
    base = np.linspace(1, 2, 20)
    result = _result_with({"model": base, "ets": base}, ["ets"])
    assert result.coverage_interval() is None  # no quantiles
    result.quantiles = np.stack([-np.ones((20, 4)), np.zeros((20, 4)), np.ones((20, 4))], axis=-1)
    assert result.coverage_interval()["low"] == result.coverage_interval()["high"] == 1.0
    result.quantiles[10:] += 5  # the last half of the cut-offs miss: coverage 0.5, uncertain with 20 cut-offs
    interval = result.coverage_interval()
    assert interval["low"] < 0.5 < interval["high"] and 0 <= interval["low"] and interval["high"] <= 1
