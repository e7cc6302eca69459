"""The time-series tab: handlers called directly, and the launched app over HTTP.

Tiny models are trained here (a dense sunspots forecaster, two epochs; an LSTM anomaly detector,
one epoch), so the checks are about the tab's behaviour, not the models' accuracy.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import REPO

gr = pytest.importorskip("gradio")

from apps import timeseries as ts  # noqa: E402
from apps import timeseries_service  # noqa: E402

HORIZON = 5


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from toolkit.data.series import load_series
    from toolkit.timeseries.anomaly import AnomalyDetector, synthetic_sensor
    from toolkit.timeseries.forecaster import Forecaster

    root = tmp_path_factory.mktemp("timeseries")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quick = dict(model="dense", horizon=HORIZON, epochs=2, classical=("theta",))
        sunspots = Forecaster(**quick).fit(load_series("sunspots"))
        co2 = Forecaster(**quick).fit(load_series("co2"))  # monthly means
        detector = AnomalyDetector(epochs=1, units=8, window=24).fit(synthetic_sensor(600, seed=0, anomalies=False))
    return ({"sunspots": sunspots.save(root / "sunspots_dense"), "co2": co2.save(root / "co2_dense")},
            detector.save(root / "sensor_lstm"))


@pytest.fixture(scope="module")
def service(model_dirs):
    forecaster_dirs, anomaly_dir = model_dirs
    service = ts.TimeSeriesService(forecaster_dirs, anomaly_dir)
    service.quick_epochs = 3  # the quick models of these tests: seconds, not the page's 20 s
    service.warm_up()
    return service


def _csv(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _legend(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, apps.timeseries; print('tensorflow' in sys.modules, 'gradio' in sys.modules, " \
           "'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


# ---------------------------------------------------------------------- forecasts


def _image(plot) -> np.ndarray:
    import io

    from PIL import Image

    png = ts.plot_png(plot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _p50_pixels(image: np.ndarray) -> int:
    """Pixels of the p50 line's colour (the band is a lighter blend of it)."""
    return int(np.all(np.abs(image.astype(int) - (31, 119, 180)) <= 12, axis=-1).sum())


def test_builtin_forecast(service):
    plot, table, note = ts.forecast(service, "sunspots", None, None, None, HORIZON, ts.AUTO)
    image = _image(plot)
    assert image.shape[1] == 612 and 200 < image.shape[0] < 300  # a small figure: 8.5 x 3.4 in at 72 dpi
    assert list(table["forecaster"]) == ["dense", "theta", "naive", "seasonal_naive", "drift"]
    assert f"Best of all: {table.loc[table['mase'].idxmin(), 'forecaster']} (MASE" in note
    assert {"mae", "rmse", "smape", "mase"} <= set(table.columns) and np.isfinite(table["mase"]).all()
    assert "sunspots model (dense)" in note and "ms for this request" in note and "on MASE" in note
    assert "(2013-01-01)" in note  # sunspots ends in 2008: step 5 is 2013
    # The shared part of the plot: the history and the legend, drawn once per (model, series).
    task, series, key, label, _ = service.resolve("sunspots")
    canvas = service.canvas(task, series, key, label)
    assert canvas.labels == ["history", "p10-p90 (80% interval)", "naive", "seasonal naive", "drift",
                             "forecast p50"]
    assert len(canvas.ax.lines) == 1 and len(canvas.ax.lines[0].get_xdata()) == ts.HISTORY_POINTS
    assert not canvas.ax.collections  # each request's forecast is drawn on a copy, then removed

    # One step (the benchmark's entry point): a shorter p50 line on the same picture.
    plot, table = ts.forecast_request(service, "sunspots", 1)
    one = _image(plot)
    assert len(table) == 5 and 0 < _p50_pixels(one) < _p50_pixels(image)
    changed = np.any(one != image, axis=-1)
    assert changed[:, : image.shape[1] * 3 // 4].sum() == 0  # the history part of the picture is the same


@pytest.mark.parametrize("horizon, message", [(HORIZON + 1, "forecasts up to 5 steps"), (0, "forecasts up to 5"),
                                              (2.5, "whole number"), ("soon", "whole number")])
def test_bad_horizon_gets_a_clear_message(service, horizon, message):
    with pytest.raises(gr.Error, match=message):
        ts.forecast(service, "sunspots", None, None, None, horizon, ts.AUTO)


def test_bad_choices_get_a_clear_message(service):
    with pytest.raises(gr.Error, match="Unknown series 'airline'"):
        ts.forecast(service, "airline", None, None, None, 3, ts.AUTO)
    with pytest.raises(gr.Error, match="Unknown model 'GPT'"):
        ts.forecast(service, "sunspots", None, None, None, 3, "GPT")
    with pytest.raises(gr.Error, match="No quick model"):
        ts.forecast(service, "co2", None, None, None, 3, ts.QUICK)
    with pytest.raises(gr.Error, match="No file received"):
        ts.forecast(service, ts.UPLOAD, None, None, None, 3, ts.AUTO)
    # A model applied to another series on purpose: it answers, and the note says what that means.
    _, _, note = ts.forecast(service, "co2", None, None, None, 3, "sunspots")
    assert "trained on ['sunspots']" in note and "expect poor forecasts" in note


def test_upload_matching_a_model(service, tmp_path):
    from toolkit.data.series import load_series

    data = load_series("sunspots")
    frame = pd.DataFrame({"date": [str(t.date()) for t in data.index], "sunspots": data.target})
    path = _csv(tmp_path / "my_sunspots.csv", frame.to_csv(index=False))
    times, targets, note = ts.read_columns(path)
    assert times["value"] == "date" and targets["choices"] == ["sunspots"] and targets["value"] == "sunspots"
    assert "date, sunspots" in note
    plot, table, note = ts.forecast(service, ts.UPLOAD, path, "date", "sunspots", 3, ts.AUTO)
    assert "sunspots model (dense)" in note and "(2011-01-01)" in note and len(table) == 5
    assert _p50_pixels(_image(plot)) > 0
    # Same numbers as the built-in series (same model, same history).
    _, builtin_table, builtin_note = ts.forecast(service, "sunspots", None, None, None, 3, ts.AUTO)
    numbers = re.compile(r"Step 3 \(2011-01-01\): p50 .*?\]")
    assert numbers.search(note).group() == numbers.search(builtin_note).group()
    pd.testing.assert_frame_equal(table, builtin_table)
    # No time column: the rows are steps, and the forecast continues the numbering.
    _, _, note = ts.forecast(service, ts.UPLOAD, path, ts.NO_TIME, "sunspots", 3, ts.AUTO)
    assert f"(step {len(data) + 2})" in note


def test_upload_at_another_frequency(service, tmp_path):
    from toolkit.data.series import load_series

    # Weekly co2: resampled to monthly means, as the co2 model was trained.
    weekly = load_series("co2", resample=False)
    frame = pd.DataFrame({"date": weekly.index.strftime("%Y-%m-%d"), "co2": weekly.target})
    path = _csv(tmp_path / "co2_weekly.csv", frame.to_csv(index=False))
    _, table, note = ts.forecast(service, ts.UPLOAD, path, "date", "co2", 2, ts.AUTO)
    assert "co2 model (dense)" in note and "Resampled to 'MS'" in note and "(2002-02-01)" in note
    _, builtin_table, _ = ts.forecast(service, "co2", None, None, None, 2, ts.AUTO)
    pd.testing.assert_frame_equal(table, builtin_table)  # the same monthly series
    # Monthly sunspots for a yearly model (trained without resampling): forecast, with a warning.
    monthly = pd.DataFrame({"date": pd.date_range("1900-01-01", periods=120, freq="MS").strftime("%Y-%m-%d"),
                            "sunspots": np.abs(np.sin(np.arange(120) / 20)) * 100})
    path = _csv(tmp_path / "monthly.csv", monthly.to_csv(index=False))
    _, _, note = ts.forecast(service, ts.UPLOAD, path, "date", "sunspots", 2, ts.AUTO)
    assert "trained on data at frequency 'YS-JAN'; this series' frequency is 'MS'" in note


def test_quick_model_on_an_upload(service, tmp_path):
    t = np.arange(160)
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=160, freq="D").strftime("%Y-%m-%d"),
                          "visitors": 100 + 20 * np.sin(2 * np.pi * t / 7) + 0.2 * t})
    path = _csv(tmp_path / "visitors.csv", frame.to_csv(index=False))
    with pytest.raises(gr.Error, match=r"No model here forecasts 'visitors' \(the models: sunspots \(sunspots\); "
                                       r"co2 \(co2\)\).*quick model"):
        ts.forecast(service, ts.UPLOAD, path, "day", "visitors", 3, ts.AUTO)
    note, model, horizon = ts.train_quick_model(service, ts.UPLOAD, path, "day", "visitors", "dense", 8)
    assert "quick **dense** model on 160 points" in note and "3 epochs" in note
    assert model["value"] == ts.QUICK and horizon["maximum"] == 8
    plot, table, note = ts.forecast(service, ts.UPLOAD, path, "day", "visitors", 8, ts.QUICK)
    assert "quick dense model (trained here)" in note and "not a shipped model" in note
    assert "(2024-06-16)" in note  # 160 days from 2024-01-01 end on 06-08: step 8 is 06-16
    # the quick model's backtest runs every classical model: ETS, Theta and ARIMA beside the baselines
    assert list(table["forecaster"])[:4] == ["dense", "ets", "theta", "arima"] and len(table) == 7 and _p50_pixels(_image(plot)) > 0
    with pytest.raises(gr.Error, match="forecasts up to 8 steps"):
        ts.forecast(service, ts.UPLOAD, path, "day", "visitors", 9, ts.QUICK)
    with pytest.raises(gr.Error, match="Unknown quick model 'xgboost'"):
        ts.train_quick_model(service, ts.UPLOAD, path, "day", "visitors", "xgboost", 8)
    with pytest.raises(gr.Error, match="quick-model horizon from 1 to 48"):
        ts.train_quick_model(service, ts.UPLOAD, path, "day", "visitors", "dense", 100)


BAD_UPLOADS = {
    # name: (file name, content, time column, target, message)
    "empty": ("empty.csv", b"", None, None, "'empty.csv' is empty"),
    "whitespace": ("blank.csv", b"  \n\n ", None, None, "'blank.csv' is empty"),
    "binary": ("garbage.csv", bytes(range(256)) * 8, None, None, "binary file"),
    "not-utf8": ("latin.csv", "date,value\n2020-01-01,1\n2020-01-02,caf\xe9\n".encode("latin-1"), None, None,
                 "not valid UTF-8"),
    "not-csv": ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100), None, None, "Expected a CSV file"),
    "header-only": ("header.csv", b"date,value\n", None, None, "header but no rows"),
    "no-numbers": ("words.csv", b"date,comment\n2020-01-01,good\n2020-01-02,bad\n", None, None,
                   "no numeric column"),
    "non-numeric-target": ("mixed.csv", b"date,value\n" + b"".join(b"2020-01-%02d,%d\n" % (d, d) for d in range(1, 28))
                           + b"2020-01-28,oops\n", "date", "value", "not a number at line 29"),
    "bad-dates": ("dates.csv", b"date,value\n" + b"2020-01-01,1\n" * 5 + b"yesterday-ish,2\n", "date", "value",
                  "Could not read the time"),
    "ragged": ("ragged.csv", b"date,value\n2020-01-01,1\n2020-01-02,2,3,4\n", None, None, "could not be parsed"),
    "too-short": ("short.csv", b"year,sunspots\n2001,5\n2002,7\n2003,9\n", "year", "sunspots",
                  "needs at least the last"),
}

ANOMALY_MESSAGES = {"too-short": "has 3 points; the detector reads windows of 24"}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_bad_uploads_get_a_clear_message(service, tmp_path, name):
    file_name, content, time_column, target, message = BAD_UPLOADS[name]
    path = _csv(tmp_path / file_name, content)
    with pytest.raises(gr.Error, match=message) as info:
        ts.forecast(service, ts.UPLOAD, path, time_column, target, 3, ts.AUTO)
    assert str(tmp_path) not in str(info.value)  # the file's name, not the server's path
    assert "Unexpected" not in str(info.value)
    with pytest.raises(gr.Error, match=ANOMALY_MESSAGES.get(name, message)):
        ts.detect_anomalies(service, ts.UPLOAD, path, time_column, target, 1)
    # The column choice after the upload shows the problem instead of failing.
    times, targets, note = ts.read_columns(path)
    if name not in ("non-numeric-target", "bad-dates", "too-short"):
        assert note.startswith("**Could not read the file:**") and targets["choices"] == []


def test_long_uploads_are_refused_and_bugs_are_messages(service, tmp_path, monkeypatch):
    path = _csv(tmp_path / "long.csv", "t,value\n" + "".join(f"{i},{i % 7}\n" for i in range(60)))
    monkeypatch.setattr(timeseries_service, "MAX_ROWS", 50)
    with pytest.raises(gr.Error, match="'long.csv' has 61 rows; the demo reads up to 50"):
        ts.forecast(service, ts.UPLOAD, path, None, None, 3, ts.AUTO)

    def broken(name):
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "builtin", broken)
    with pytest.raises(gr.Error, match=r"The input could not be processed\. Check it") as info:
        ts.forecast(service, "sunspots", None, None, None, 3, ts.AUTO)
    assert "RuntimeError" not in str(info.value)  # user words; the details go to the server log


def test_too_short_for_a_quick_model(service, tmp_path):
    path = _csv(tmp_path / "tiny.csv", "t,value\n" + "".join(f"{2000 + i},{i % 3}\n" for i in range(12)))
    with pytest.raises(gr.Error, match="has 12 training points; at least"):
        ts.train_quick_model(service, ts.UPLOAD, path, "t", "value", "dense", 6)


# ---------------------------------------------------------------------- explanations, backtest


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_explain_forecast(service, method):
    image, note = ts.explain_forecast(service, "sunspots", None, None, None, ts.AUTO, method, 2)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    assert method.upper() in note and "p50 at step 2" in note and "the strongest: t-" in note


def test_explain_and_backtest_bad_input(service):
    with pytest.raises(gr.Error, match="step from 1 to 5"):
        ts.explain_forecast(service, "sunspots", None, None, None, ts.AUTO, "shap", 6)
    with pytest.raises(gr.Error, match="Unknown explanation method 'gradcam'"):
        ts.explain_forecast(service, "sunspots", None, None, None, ts.AUTO, "gradcam", 1)
    table, note = ts.backtest_table(service, "sunspots", None, None, None, ts.AUTO)
    assert len(table) == 5 and "rolling cut-offs" in note and "interval held" in note


# ---------------------------------------------------------------------- anomalies


def test_anomalies_in_the_synthetic_sensor(service):
    from toolkit.timeseries.anomaly import anomaly_metrics

    figure, note, flagged = ts.detect_anomalies(service, ts.SENSOR, None, None, None, 3)
    assert len(figure.axes) == 2 and "flagged" in _legend(figure) and "labelled anomaly" in _legend(figure)
    assert any(t.startswith("threshold") for t in _legend(figure))
    frame = service.sensor(3)
    detector = service.detector()
    flags = detector.predict(frame)
    expected = anomaly_metrics(flags, frame["is_anomaly"].to_numpy(bool))
    assert f"F1 {expected['f1']:.3f}" in note and f"precision {expected['precision']:.3f}" in note
    assert f"{int(flags.sum())} of 2,000 points flagged" in note
    assert list(flagged.columns) == ["ts", "temperature", "score"] and len(flagged) == min(int(flags.sum()), 200)
    with pytest.raises(gr.Error, match="whole number"):
        ts.detect_anomalies(service, ts.SENSOR, None, None, None, "one")


def test_anomalies_in_an_upload(service, tmp_path):
    from toolkit.timeseries.anomaly import synthetic_sensor

    frame = synthetic_sensor(400, seed=5).rename(columns={"temperature": "reading"})
    labelled = _csv(tmp_path / "sensor.csv", frame.to_csv(index=False))
    times, targets, _ = ts.read_columns(labelled)
    assert times["value"] == "ts" and targets["choices"] == ["reading"]  # the label column is not a choice
    figure, note, _ = ts.detect_anomalies(service, ts.UPLOAD, labelled, "ts", "reading", None)
    assert "precision" in note and "F1" in note and "reads 'reading' in its place" in note
    plain = _csv(tmp_path / "plain.csv", frame.drop(columns="is_anomaly").to_csv(index=False))
    _, note, _ = ts.detect_anomalies(service, ts.UPLOAD, plain, None, None, None)
    assert "No label column" in note and "F1" not in note
    short = _csv(tmp_path / "short.csv", frame.head(10).to_csv(index=False))
    with pytest.raises(gr.Error, match="has 10 points; the detector reads windows of 24"):
        ts.detect_anomalies(service, ts.UPLOAD, short, None, None, None)


# ---------------------------------------------------------------------- missing models, the page


def test_missing_models_are_reported_not_raised(tmp_path):
    service = ts.TimeSeriesService({"sunspots": tmp_path / "none"}, tmp_path / "nothing")
    service.warm_up()  # nothing to load, nothing raised
    assert "make models" in ts.missing_models(service) and "Model not available" in ts.model_facts(service)
    with pytest.raises(gr.Error, match="not available.*make models"):
        ts.forecast(service, "sunspots", None, None, None, 3, ts.AUTO)
    with pytest.raises(gr.Error, match="not available.*make models"):
        ts.detect_anomalies(service, ts.SENSOR, None, None, None, 1)
    assert isinstance(ts.build_demo(service=service), gr.Blocks)


def test_facts(service):
    facts = ts.model_facts(service)
    assert "`dense` forecaster of ['sunspots']" in facts and "Anomaly detector" in facts
    assert ts.missing_models(service) == ""


def _call(http, base: str, api: str, data: list):
    """One request as the browser makes it: ("complete" or "error", the payload)."""
    from benchmarks.common import rest_event

    return rest_event(http, base, api, data)


def test_launched_app_over_http(service, tmp_path):
    import httpx

    demo = ts.build_demo(service=service)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                max_file_size="10mb", allowed_paths=[])
    base = demo.local_url.rstrip("/")
    try:
        api = demo.get_api_info()["named_endpoints"] if hasattr(demo, "get_api_info") else {}
        for name in ("/forecast", "/backtest", "/explain_forecast", "/train_quick_model", "/detect_anomalies"):
            assert not api or name in api, name
        with httpx.Client(timeout=60) as http:
            args = ["sunspots", None, None, None, HORIZON, ts.AUTO]
            event, (plot, table, note) = _call(http, base, "forecast", args)
            assert event == "complete" and plot["type"] == "matplotlib"
            assert plot["plot"].startswith("data:image/png;base64,") and "sunspots model" in note
            assert table["headers"] == ["forecaster", "mae", "rmse", "smape", "mase"] and len(table["data"]) == 5
            event, message = _call(http, base, "forecast", ["sunspots", None, None, None, 40, ts.AUTO])
            assert event == "error" and "forecasts up to 5 steps" in json.dumps(message)
            # An uploaded file of garbage: a message, and the server keeps serving.
            garbage = tmp_path / "garbage.csv"
            garbage.write_bytes(bytes(range(256)) * 40)
            with garbage.open("rb") as handle:
                uploaded = http.post(f"{base}/gradio_api/upload", files={"files": ("garbage.csv", handle)}).json()
            file_data = {"path": uploaded[0], "orig_name": "garbage.csv", "meta": {"_type": "gradio.FileData"}}
            event, message = _call(http, base, "forecast", [ts.UPLOAD, file_data, None, None, 3, ts.AUTO])
            assert event == "error" and "binary file" in json.dumps(message)
            event, (plot, note, flagged) = _call(http, base, "detect_anomalies", [ts.SENSOR, None, None, None, 1])
            assert event == "complete" and plot["plot"].startswith("data:image/png") and "F1" in note
            # ...and the server keeps serving (the latency target is measured by `make bench`).
            for _ in range(3):
                event, _ = _call(http, base, "forecast", args)
                assert event == "complete"
    finally:
        demo.close()


def test_a_series_unlike_the_training_data_is_said_so():
    rng = np.random.default_rng(0)
    scores = rng.random(200)
    few = scores > 0.97  # a few percent flagged: what a detector does on data it knows
    assert ts.unlike_training(few, scores, 0.97) == ""
    most = np.ones(144, bool)  # every point flagged (the 144 of 144)
    message = ts.unlike_training(most, np.full(144, 5.0), 0.5)
    assert "100% of the points are flagged" in message and "unlike" in message


def test_tables_show_four_significant_digits():
    import pandas as pd

    from apps.timeseries_service import significant

    table = significant(pd.DataFrame({"name": ["a"], "mae": [12.3456789123], "mase": [0.000123456789]}))
    assert table["mae"][0] == 12.35 and table["mase"][0] == 0.0001235 and table["name"][0] == "a"


def test_backtests_are_computed_once_and_stored_beside_the_model(model_dirs, monkeypatch):
    """A fresh server does not refit the classical models: the warm-up leaves a backtest that is
    not stored to its first use, which stores it in the model's folder; the next service (a
    restarted server) reads it back without running the backtest; another series or a changed
    model file is not answered from it."""
    from toolkit.timeseries.forecaster import Forecaster

    forecaster_dirs, anomaly_dir = model_dirs
    stored = forecaster_dirs["sunspots"] / timeseries_service.BACKTEST_FILE
    stored.unlink(missing_ok=True)
    runs = []
    original = Forecaster.backtest
    monkeypatch.setattr(Forecaster, "backtest", lambda self, *a, **k: runs.append(1) or original(self, *a, **k))
    first = ts.TimeSeriesService({"sunspots": forecaster_dirs["sunspots"]}, anomaly_dir)
    first.warm_up()
    assert runs == [] and not stored.exists()  # the warm-up left it to the first use
    table, verdict = ts.backtest_table(first, "sunspots")
    assert len(runs) == 1 and stored.is_file()
    again = ts.TimeSeriesService({"sunspots": forecaster_dirs["sunspots"]}, anomaly_dir)
    again.warm_up()  # the stored table is read here
    table2, verdict2 = ts.backtest_table(again, "sunspots")
    assert len(runs) == 1
    pd.testing.assert_frame_equal(table2, table, check_dtype=False)
    assert verdict2 == verdict
    task, series, key, _, _ = again.resolve("sunspots")
    part = series.slice(-100, None)
    assert timeseries_service.stored_backtest(task, timeseries_service.backtest_fingerprint(task, part)) is None
    stored.write_text("not json")  # a damaged file is ignored (and rewritten), never an error
    third = ts.TimeSeriesService({"sunspots": forecaster_dirs["sunspots"]}, anomaly_dir)
    ts.backtest_table(third, "sunspots")
    assert len(runs) == 2 and json.loads(stored.read_text())


def test_the_shipped_forecasters_store_their_backtests():
    """``make models`` stores the demo's backtest of each shipped forecaster on its own series,
    so ``toolkit serve`` starts without refitting the classical models."""
    service = ts.TimeSeriesService()
    for name in ("sunspots", "co2"):
        slot = service.slot(name)
        if not (slot.directory / "card.json").is_file():
            pytest.skip(f"no shipped {name} model")
        task, series, key, _, _ = service.resolve(name)
        assert service.backtest(task, series, key, compute=False) is not None, (
            f"{slot.directory / timeseries_service.BACKTEST_FILE} does not hold this model's backtest: run the "
            "`make models` line that stores it")
