"""Classical forecasters in the backtest: ETS, Theta, ARIMA; failures counted; short series fall back."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.timeseries import classical
from toolkit.timeseries.baselines import backtest, rolling_cutoffs


def seasonal(n=96, period=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 20 + 0.05 * t + 3 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.3, n)


def test_ets_and_theta_beat_naive_on_a_seasonal_series_and_the_verdict_names_the_best():
    y = seasonal()
    cuts = rolling_cutoffs(len(y), 6, 78, max_cutoffs=3)
    result = backtest(y, 6, cuts, {}, 12, train_end=78, classical=("ets", "theta"))
    assert result.classical == ["ets", "theta"]
    assert result.table["ets"]["mase"] < 0.5 * result.table["naive"]["mase"]
    assert result.table["ets"]["mase"] < result.table["seasonal_naive"]["mase"]
    assert result.best in ("ets", "theta") and f"Best of all: {result.best}" in result.verdict
    info = result.to_dict()["classical"]["ets"]
    assert info["spec"].startswith("ETS(") and info["spec"].endswith("A)") or info["spec"].endswith("M)")
    assert info["fit_seconds"] > 0 and info["failed"] == 0 and info["n_cutoffs"] == 3
    assert "(ETS(" in result.markdown()


def test_arima_finds_an_autoregression():
    rng = np.random.default_rng(1)
    y = np.zeros(150)
    for i in range(2, 150):
        y[i] = 1.2 * y[i - 1] - 0.5 * y[i - 2] + rng.normal()
    run = classical.run_classical("arima", y, 5, [120, 125], None)
    assert run.label.startswith("ARIMA(") and ",0," in run.label and run.failed == 0
    assert run.predictions.shape == (2, 5) and np.all(np.isfinite(run.predictions))
    truth = [1.2 * y[c - 1] - 0.5 * y[c - 2] for c in (120, 125)]  # the true one-step conditional mean
    np.testing.assert_allclose(run.predictions[:, 0], truth, atol=0.4)


def test_failed_and_unconverged_fits_are_counted_not_dropped(monkeypatch):
    y = seasonal(60)
    cuts = np.array([48, 50, 52, 54])
    fit = classical._fit
    calls = {"n": 0}

    def flaky(spec, values, start_params=None, fixed=False):
        result, _ = fit(spec, values, start_params, fixed)
        calls["n"] += 1
        if len(values) == 50:
            raise np.linalg.LinAlgError("singular")
        return result, len(values) != 52  # "did not converge" at cut-off 52

    monkeypatch.setattr(classical, "_fit", flaky)
    run = classical.run_classical("theta", y, 6, cuts, 12)
    assert run.failed == 1 and run.not_converged == 1 and len(run.predictions) == 4
    np.testing.assert_allclose(run.predictions[1], y[50 - 12:50 - 6])  # seasonal naive at the failed cut-off
    assert any("failed at 1 of 4" in n for n in run.notes) and any("did not converge at 1 of 4" in n for n in run.notes)
    result = backtest(y, 6, cuts, {}, 12, train_end=48, classical=("theta",))
    assert "failed at 1 of 4" in result.verdict and "did not converge at 1 of 4" in result.verdict


def test_a_series_too_short_for_a_season_falls_back_with_a_note():
    y = seasonal(22)  # under 2 seasons of 12 + 2
    spec = classical.select("ets", y, 12)
    assert spec.kwargs["seasonal"] is None and any("shorter than 2 seasons" in n for n in spec.notes)
    theta = classical.select("theta", y, 12)
    assert not theta.kwargs["deseasonalize"] and theta.notes


def test_refit_every_filters_between_refits():
    y = seasonal(80)
    cuts = rolling_cutoffs(len(y), 4, 64)
    run = classical.run_classical("ets", y, 4, cuts, 12, refit_every=4)
    assert run.n_refits == int(np.ceil(len(cuts) / 4)) and run.failed == 0
    assert any(f"refit at {run.n_refits} of {len(cuts)}" in n for n in run.notes)


def test_log_transform_and_bad_names():
    y = seasonal(60)
    spec = classical.select("ets", y, 12, transform="log")
    assert spec.label.endswith("on logs") and spec.kwargs["error"] == "add"
    assert np.all(classical.classical_forecast("ets", y, 3, 12, transform="log") > 0)
    with pytest.raises(DataError, match="positive series"):
        classical.select("ets", y - 100, 12, transform="log")
    with pytest.raises(ValueError, match="Valid names: ets, theta, arima"):
        classical.select("prophet", y, 12)
    with pytest.raises(ValueError, match="Unknown classical models"):
        backtest(y, 3, [50], {}, 12, train_end=50, classical=("prophet",))


def test_sarimax_on_differenced_data_forecasts_the_levels_and_fits_are_remembered():
    rng = np.random.default_rng(3)
    y = np.cumsum(0.5 + rng.normal(0, 1, 150)) + 5 * np.sin(np.arange(150) * 2 * np.pi / 12)
    spec = classical.select("arima", y[:138], 12)
    assert spec.kwargs.get("simple_differencing") and spec.kwargs["order"][1] + spec.kwargs["seasonal_order"][1] > 0
    # the same form on the undifferenced state space: the same level forecasts
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    result, _ = classical._fit(spec, y[:138])
    kwargs = {**spec.kwargs, "simple_differencing": False}
    full = SARIMAX(y[:138], concentrate_scale=True, **kwargs).filter(result.params).forecast(6)
    np.testing.assert_allclose(classical._forecast(spec, result, 6), full, rtol=0, atol=0.05 * np.std(np.diff(y)))
    assert classical._fit(spec, y[:138])[0] is result  # a fresh fit on the same data is remembered
    assert classical.select("arima", y[:138], 12).label == spec.label
    np.testing.assert_allclose(classical._undifference(np.array([1.0, 2.0]), np.array([0.0, 1.0, 3.0]), 1, 0, 0),
                               [4.0, 6.0])


def test_ets_reports_its_own_interval_at_every_cut_off():
    y = seasonal(80)
    run = classical.run_classical("ets", y, 4, rolling_cutoffs(len(y), 4, 64, max_cutoffs=3), 12)
    assert run.half_widths.shape == (3, 4) and np.all(run.half_widths > 0)
    assert run.half_widths[:, -1].mean() >= run.half_widths[:, 0].mean() * 0.99  # wider (or as wide) further out
    assert len(classical.fitted("ets", y, 4, 12)["half_width_80"]) == 4
    assert classical.run_classical("theta", y, 4, [70], 12).half_widths is None
