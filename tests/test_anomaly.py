"""Anomaly detection: the generator, the robust autoencoder task, save/load, TFLite, bad inputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from toolkit.errors import DataError, NotFittedError, ToolkitError
from toolkit.timeseries.anomaly import (
    ANOMALY_KINDS,
    AnomalyDetector,
    AnomalyDetectorConfig,
    anomaly_metrics,
    load_anomaly_data,
    synthetic_sensor,
)
from toolkit.timeseries.lite import TFLiteAnomalyDetector

TINY = dict(window=16, units=8, latent=4, epochs=2, batch_size=32)


def _runs(labels):
    edges = np.diff(np.concatenate([[0], np.asarray(labels, np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


@pytest.fixture(scope="module")
def detector():
    """A tiny LSTM detector, two epochs on 400 clean points (accuracy is not the point here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AnomalyDetector(**TINY).fit(synthetic_sensor(400, seed=0, anomalies=False))


@pytest.fixture(scope="module")
def saved(detector, tmp_path_factory):
    return detector.save(tmp_path_factory.mktemp("anomaly") / "lstm")


# ---------------------------------------------------------------------------------- generator
def test_generator_is_seeded_and_labels_the_injected_points():
    a, b = synthetic_sensor(600, seed=3), synthetic_sensor(600, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not synthetic_sensor(600, seed=4)["temperature"].equals(a["temperature"])
    assert list(a.columns) == ["ts", "temperature", "is_anomaly"]
    assert (a["ts"].diff().dropna() == pd.Timedelta(hours=1)).all()
    clean = synthetic_sensor(600, seed=3, anomalies=False)
    assert clean["is_anomaly"].sum() == 0
    assert 60 < clean["temperature"].mean() < 80
    changed = a["temperature"].to_numpy() != clean["temperature"].to_numpy()
    np.testing.assert_array_equal(changed, a["is_anomaly"].to_numpy() == 1)  # labels exactly where injected
    assert len(_runs(a["is_anomaly"])) == 3  # max(3 kinds, 600 // 200) events


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_generator_kinds(kind):
    frame = synthetic_sensor(2000, seed=5, kinds=(kind,))
    y, labels = frame["temperature"].to_numpy(), frame["is_anomaly"].to_numpy()
    clean = synthetic_sensor(2000, seed=5, anomalies=False)["temperature"].to_numpy()
    sigma = clean.std()
    runs = _runs(labels)
    assert len(runs) == 10
    for start, stop in runs:
        delta = y[start:stop] - clean[start:stop]
        if kind == "spike":
            assert stop - start == 1 and 4 * sigma - 1e-3 <= abs(delta[0]) <= 6 * sigma + 1e-3
        else:
            assert 20 <= stop - start <= 60
        if kind == "level_shift":
            assert np.ptp(delta) < 1e-3 and 3 * sigma - 1e-3 <= abs(delta[0]) <= 4 * sigma + 1e-3
        if kind == "flat":
            assert np.ptp(y[start:stop]) == 0 and y[start] == y[start - 1]


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="level_shift"):
        synthetic_sensor(500, kinds=("spike", "dropout"))
    with pytest.raises(ValueError, match="n must be"):
        synthetic_sensor(10)


# ---------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(model="gru"), r"\['lstm', 'conv1d'\]"), (dict(model="conv1d", window=30), "multiple of 4"),
     (dict(threshold_quantile=1.5), "threshold_quantile"), (dict(window=2.5), "window"),
     (dict(learning_rate=0), "learning_rate"), (dict(corruption=-0.1), "corruption")],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AnomalyDetectorConfig(**kwargs)


# ---------------------------------------------------------------------------------- task
def test_not_fitted():
    with pytest.raises(NotFittedError):
        AnomalyDetector().predict(np.zeros(100))


def test_fit_sets_threshold_from_training_scores(detector):
    train = synthetic_sensor(400, seed=0, anomalies=False)
    scores = detector.score(train)
    assert scores.shape == (400,) and np.isfinite(scores).all() and (scores >= 0).all()
    assert detector.threshold_ == pytest.approx(2.0 * np.quantile(scores, 0.99), rel=1e-5)
    assert detector.columns_ == ["temperature"] and detector.time_column_ == "ts"
    assert detector.training_["epochs_run"] == 2 and detector.history_["val_loss"]


def test_predict_shapes(detector):
    test = synthetic_sensor(300, seed=1)
    values = test["temperature"].to_numpy()
    flags = detector.predict(test)
    assert flags.dtype == bool and flags.shape == (300,)
    np.testing.assert_array_equal(detector.predict(values), flags)  # 1-D array == the frame's column
    np.testing.assert_array_equal(detector.predict(values[:, None]), flags)
    np.testing.assert_array_equal(detector.predict(test["temperature"]), flags)  # pandas Series
    batch = np.stack([values[:100, None], values[100:200, None]])
    assert detector.predict(batch).shape == (2, 100)  # a batch of series
    np.testing.assert_allclose(detector.score(batch)[1], detector.score(values[100:200]), rtol=1e-6)
    assert detector.predict(values[:16, None]).shape == (16,)  # one window


def test_a_huge_spike_is_the_top_score(detector):
    values = synthetic_sensor(300, seed=2, anomalies=False)["temperature"].to_numpy().copy()
    values[150] += 40.0
    scores = detector.score(values)
    assert int(np.argmax(scores)) == 150 and scores[150] > detector.threshold_


def test_detect_and_evaluate(detector):
    test = synthetic_sensor(600, seed=1)
    frame = detector.detect(test)
    assert list(frame.columns) == ["ts", "temperature", "score", "anomaly"] and len(frame) == 600
    assert frame["ts"].equals(test["ts"])
    np.testing.assert_array_equal(frame["anomaly"].to_numpy(), detector.predict(test))
    metrics = detector.evaluate(test)
    for key in ("precision", "recall", "f1", "event_recall", "average_precision", "n_flagged", "threshold"):
        assert key in metrics
    assert metrics["n_events"] == 3 and metrics["n_anomalies"] == int(test["is_anomaly"].sum())
    assert metrics == detector.evaluate(test.drop(columns="is_anomaly"), labels=test["is_anomaly"].to_numpy())
    unlabelled = detector.evaluate(test["temperature"].to_numpy())
    assert set(unlabelled) == {"n_points", "n_flagged", "share_flagged", "threshold"}
    assert unlabelled["n_flagged"] == metrics["n_flagged"]
    steps = detector.detect(test["temperature"].to_numpy())  # no timestamps: steps in a "time" column
    assert list(steps.columns) == ["time", "temperature", "score", "anomaly"] and steps["time"].iloc[-1] == 599


def test_metrics_by_hand():
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 0, 0, 0], bool)
    flags = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0], bool)
    m = anomaly_metrics(flags, labels, scores=np.arange(10)[::-1])
    assert m["precision"] == 0.5 and m["recall"] == 0.25 and m["f1"] == pytest.approx(1 / 3)
    assert m["event_recall"] == 0.5 and m["n_events"] == 2 and m["n_anomalies"] == 4
    assert m["average_precision"] == pytest.approx(np.mean([1 / 2, 2 / 3, 3 / 4, 4 / 7]))
    assert anomaly_metrics(flags, np.zeros(10, bool)) == {"n_events": 0, "n_anomalies": 0}


def test_bad_inputs(detector):
    with pytest.raises(DataError, match="at least window=16 points"):
        detector.predict(np.ones(10))
    with pytest.raises(DataError, match="1 value column"):
        detector.predict(np.ones((50, 2)))
    with pytest.raises(DataError, match="temperature"):
        detector.predict(pd.DataFrame({"pressure": np.ones(50)}))
    with pytest.raises(DataError, match="inf"):
        detector.predict(np.r_[np.ones(49), np.inf])
    with pytest.raises(DataError, match="numeric"):
        detector.predict(np.array(["a"] * 50))
    with pytest.raises(DataError, match="one label per point"):
        detector.evaluate(np.ones(50) * 70, labels=np.zeros(10))
    gappy = synthetic_sensor(100, seed=1, anomalies=False)["temperature"].to_numpy().copy()
    gappy[[5, 40]] = np.nan
    with pytest.warns(UserWarning, match="Interpolated 2 missing"):
        assert np.isfinite(detector.score(gappy)).all()
    with pytest.raises(ToolkitError, match="detect"):
        detector.explain(gappy)


def test_fit_picks_columns_of_a_frame():
    frame = synthetic_sensor(300, seed=0, anomalies=False).rename(columns={"ts": "when"})
    frame["pressure"] = np.float32(2.0) + 0.01 * np.arange(300, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = AnomalyDetector(model="conv1d", **TINY).fit(frame, time_column="when", target="pressure")
    assert det.columns_ == ["pressure"] and det.time_column_ == "when"
    assert list(det.detect(frame).columns) == ["when", "pressure", "score", "anomaly"]


def test_csv_labels_follow_the_repaired_rows(tmp_path):
    frame = synthetic_sensor(300, seed=1)
    shuffled = frame.sample(frac=1.0, random_state=0)  # load_series sorts the rows by time again
    path = tmp_path / "machine.csv"
    shuffled.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="sorted"):
        series, labels = load_anomaly_data(path)
    assert series.columns == ["temperature"] and series.spec["source"] == str(path.resolve())
    np.testing.assert_allclose(series.values[:, 0], frame["temperature"], rtol=1e-6)
    np.testing.assert_array_equal(labels, frame["is_anomaly"].to_numpy() == 1)
    series, labels = load_anomaly_data("sensor_normal")
    assert len(series) == 2000 and series.spec["source"] == "sensor_normal" and not labels.any()


def test_fit_and_score_a_csv_path(tmp_path):
    path = tmp_path / "machine.csv"
    synthetic_sensor(300, seed=0, anomalies=False).drop(columns="is_anomaly").to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = AnomalyDetector(**TINY).fit(str(path), time_column="ts", target="temperature")
    assert det.columns_ == ["temperature"] and det.data_spec_["source"] == str(path.resolve())
    test = tmp_path / "test.csv"
    synthetic_sensor(300, seed=1).to_csv(test, index=False)
    table = det.detect(str(test))
    assert list(table.columns) == ["ts", "temperature", "score", "anomaly"]
    assert det.evaluate(str(test))["n_anomalies"] == int(synthetic_sensor(300, seed=1)["is_anomaly"].sum())
    assert list(det.load_data(str(test)).columns) == ["ts", "temperature", "is_anomaly"]
    assert det.reload_data()["temperature"].shape == (300,)


# ---------------------------------------------------------------------------------- save / load
def test_save_load_round_trip(detector, saved):
    card = json.loads((saved / "card.json").read_text())
    assert card["task"] == "anomaly_detector" and card["threshold"] == detector.threshold_
    assert card["input"]["columns"] == ["temperature"] and card["input"]["shape"] == [16, 1]
    assert card["normalization"]["std"][0] > 0
    loaded = AnomalyDetector.load(saved)
    test = synthetic_sensor(300, seed=1)
    np.testing.assert_allclose(loaded.score(test), detector.score(test), rtol=1e-6, atol=1e-7)
    assert loaded.threshold_ == detector.threshold_ and loaded.config == detector.config
    assert loaded.reload_data()["temperature"].equals(synthetic_sensor(400, seed=0, anomalies=False)["temperature"])


# ---------------------------------------------------------------------------------- TFLite
def _check_export(det, directory, data):
    path = det.export(directory, quantization="float32", data=data)
    entry = json.loads((directory / "card.json").read_text())["tflite"][-1]
    assert entry["file"] == path.name and entry["relative_difference"] < 1e-4
    assert entry["flag_agreement"] == 1.0 and entry["latency_ms_p50"] > 0 and entry["threshold"] == det.threshold_
    lite = TFLiteAnomalyDetector(path)
    assert not [op for op in lite.session.ops if "Flex" in op]
    np.testing.assert_allclose(lite.score(data), det.score(data), rtol=1e-4, atol=1e-6)
    assert np.mean(lite.predict(data) == det.predict(data)) >= 0.995
    return entry


def test_lstm_exports_with_builtin_ops(detector, saved):
    test = synthetic_sensor(300, seed=1)
    entry = _check_export(detector, saved, test)
    assert entry["input"]["shape"] == [1, 16, 1] and "f1" in entry["metrics"]
    assert [e["quantization"] for e in AnomalyDetector.load(saved).tflite_] == ["float32"]


def test_conv1d_multivariate_exports(tmp_path):
    rng = np.random.default_rng(0)
    frame = synthetic_sensor(400, seed=0, anomalies=False)
    frame["load"] = (50 + rng.normal(0, 1, 400)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = AnomalyDetector(model="conv1d", **TINY).fit(frame)
    assert det.columns_ == ["temperature", "load"]
    directory = det.save(tmp_path / "conv")
    entry = _check_export(det, directory, frame.iloc[:200])
    assert entry["input"]["shape"] == [1, 16, 2]


# ---------------------------------------------------------------------------------- the target
@pytest.mark.slow
@pytest.mark.parametrize("model", ["lstm", "conv1d"])
def test_f1_target_on_the_benchmark_series(model):
    det = AnomalyDetector(model=model).fit(synthetic_sensor(2000, seed=0, anomalies=False))
    assert det.evaluate(synthetic_sensor(2000, seed=1))["f1"] >= 0.8
