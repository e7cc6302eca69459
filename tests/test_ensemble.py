"""The default forecaster (pick="auto"): a validation backtest on the training part picks the
network, a classical model or their ensemble; seasonality from the index's frequency."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from toolkit.data.series import load_series, split_series
from toolkit.timeseries import Forecaster, detect_seasonality
from toolkit.timeseries.baselines import natural_season
from toolkit.timeseries.ensemble import INTERVAL_MODEL, MARGIN, NEURAL_MARGIN, Pick, combine, half_widths


def monthly(n=150, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 20 + 0.05 * t + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"date": pd.date_range("2000-01-01", periods=n, freq="MS"), "y": y})


def test_natural_season_of_pandas_frequencies():
    assert natural_season("MS") == 12 and natural_season("QS-JAN") == 4 and natural_season("W-SUN") == 52
    assert natural_season("D") == 7 and natural_season("h") == 24
    assert natural_season("YS-JAN") is None and natural_season(None) is None


def test_monthly_and_quarterly_series_get_their_natural_season():
    elnino, cpi = load_series("elnino"), load_series("cpi")
    assert detect_seasonality(elnino.target) == 48  # the highest ACF peak: what the index fixes
    assert detect_seasonality(elnino.target, frequency=elnino.frequency) == 12
    assert detect_seasonality(cpi.target, frequency=cpi.frequency) is None  # seasonally adjusted
    assert detect_seasonality(load_series("co2").target, frequency="MS") == 12
    sunspots = load_series("sunspots")  # yearly: cycles are still searched
    assert detect_seasonality(sunspots.target, frequency=sunspots.frequency) in (10, 11)
    # a monthly series without a yearly season: none, even when the ACF peaks elsewhere
    t = np.arange(240)
    cycle = np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 0.1, 240)
    assert detect_seasonality(cycle) == 7 and detect_seasonality(cycle, frequency="MS") is None


def test_combine_weights_the_members_and_adds_the_conformal_half_widths():
    pick = Pick("ensemble", {"lstm": 0.25, "ets": 0.75}, "lstm", {}, 3, "test", half_width=[1.0, 2.0])
    network = np.zeros((2, 2, 3), np.float32)
    network[..., 1] = 4.0
    out = combine(pick, network, {"ets": np.full((2, 2), 8.0)})
    np.testing.assert_allclose(out[..., 1], 7.0)
    np.testing.assert_allclose(out[0, :, 0], [6.0, 5.0])
    np.testing.assert_allclose(out[0, :, 2], [8.0, 9.0])
    only = Pick("lstm", {"lstm": 1.0}, "lstm", {}, 3, "test")
    assert combine(only, network, {}) is network


def test_half_widths_average_the_conformal_and_the_model_interval():
    pick = Pick("ensemble", {"lstm": 0.5, "ets": 0.5}, "lstm", {}, 3, "test", half_width=[1.5, 3.0],
                conformal=[1.0, 2.0], interval_model="ets")
    np.testing.assert_allclose(half_widths(pick), [1.5, 3.0])  # at the recorded end
    model = np.array([[3.0, 4.0], [np.nan, 6.0]])  # no model interval at one cut-off and step: conformal there
    np.testing.assert_allclose(half_widths(pick, model), [[2.0, 3.0], [1.0, 4.0]])
    plain = Pick("lstm", {"lstm": 1.0}, "lstm", {}, 3, "test", half_width=[1.0, 2.0], conformal=[1.0, 2.0])
    np.testing.assert_allclose(half_widths(plain, model), [1.0, 2.0])  # conformal alone without a model
    out = combine(pick, np.zeros((2, 2, 3)), {"ets": np.zeros((2, 2))}, half_widths(pick, model))
    np.testing.assert_allclose(out[..., 2] - out[..., 1], [[2.0, 3.0], [1.0, 4.0]])


@pytest.fixture(scope="module")
def picked():
    series = load_series(monthly())
    train, _ = split_series(series, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one epoch: the network is barely trained, so a classical model or an ensemble must win
        fc = Forecaster(pick="auto", horizon=3, epochs=1, units=4, classical=("ets", "theta")).fit(train)
    return fc, series


def test_auto_picks_by_a_validation_backtest_on_the_training_part(picked):
    fc, series = picked
    pick, v = fc.pick_, fc.pick_.validation
    assert set(v) >= {"lstm", "nbeats", "lstm+nbeats", "ets", "theta", "ensemble", "ensemble_top2", "ensemble_top3"}

    def prefer(combined, alone, margin):  # the best combined one unless one alone beats it by more than margin
        best_combined, best_alone = min(combined, key=v.get), min(alone, key=v.get)
        return best_alone if v[best_alone] < (1 - margin) * v[best_combined] else best_combined

    # the network member: the lstm+nbeats blend unless one network beats it clearly
    assert pick.network == prefer(["lstm+nbeats"], ["lstm", "nbeats"], MARGIN) == fc.config.model
    singles = (pick.network, "ets", "theta")
    ranked = sorted(singles, key=v.get)
    members = {**{k: {k} for k in singles}, "ensemble": set(singles),
               **{f"ensemble_top{k}": set(ranked[:k]) for k in (2, 3)}}
    combos = [k for k in v if k.startswith("ensemble")]
    best = prefer(combos, singles, MARGIN)
    if pick.network in members[best]:  # with the network only when it beats the best classical model clearly
        plain = min(("ets", "theta"), key=v.get)
        best = best if v[best] < (1 - NEURAL_MARGIN) * v[plain] else plain
    assert pick.name == best and set(pick.weights) == members[best]
    assert pick.name not in ("lstm", "nbeats", "lstm+nbeats") and pick.classical and len(pick.half_width) == 3
    assert abs(sum(pick.weights.values()) - 1) < 1e-6
    assert "validation backtest" in pick.reason and "test part unseen" in pick.reason
    for name in pick.classical:  # what the card tells a phone
        member = pick.members[name]
        assert len(member["forecast"]) == 3 and member["spec"]
    # the interval: the mean of the conformal half-width and ETS's own at the end of the training part
    assert pick.interval_model == INTERVAL_MODEL and len(pick.model_half_width) == 3
    np.testing.assert_allclose(pick.half_width, (np.array(pick.conformal) + pick.model_half_width) / 2)
    assert any("80% interval" in note for note in pick.notes)
    assert "phone" in pick.phone() and ".tflite" in pick.phone()


def test_auto_forecast_evaluate_and_card(picked, tmp_path):
    fc, series = picked
    frame = fc.forecast()
    network = fc.predict(fc.last_window_)[0]
    expected = sum(w * (network if k == fc.pick_.network else np.asarray(fc.pick_.members[k]["forecast"]))
                   for k, w in fc.pick_.weights.items())
    np.testing.assert_allclose(frame["p50"], expected, rtol=1e-5)
    assert (frame["p10"] < frame["p50"]).all() and (frame["p50"] < frame["p90"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = fc.evaluate(series, max_cutoffs=4)
    assert metrics["n_cutoffs"] == 4 and metrics["verdict"].startswith("Picked ")
    assert metrics["pick"]["label"] == metrics["model"] and metrics["network"]["model"] == fc.pick_.network
    assert metrics["network"]["mase"] != metrics["mase"]
    assert 0 <= metrics["coverage_80"] <= 1
    fc.save(tmp_path / "auto")
    card = json.loads((tmp_path / "auto" / "card.json").read_text())
    assert card["pick"]["weights"] == fc.pick_.weights and card["pick"]["phone"]
    from toolkit import load

    again = load(tmp_path / "auto")
    np.testing.assert_allclose(again.forecast()["p50"], frame["p50"], rtol=1e-5)


def test_network_pick_keeps_the_plain_forecaster():
    series = load_series(monthly(n=60))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = Forecaster(horizon=3, epochs=1, units=4, classical=()).fit(series)
    assert fc.pick_ is None and fc.config.pick == "network"
