"""The command line for time series: train timeseries / anomaly on CSVs, evaluate, forecast,
predict --data, export, explain, and one clean ``error:`` line (exit status 2) for bad input.

The models are tiny (two epochs) so the checks are about the command line, not accuracy.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import SHIPPED_DIGITS, one_error_line, quiet_main, run
from toolkit.cli import main

HORIZON = 7
LAST_DATE = pd.Timestamp("2024-07-18")  # the 200th day from 2024-01-01


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """sales.csv (200 daily rows, weekly pattern, price and promo), machine.csv (clean sensor,
    no labels), machine_test.csv (with anomalies and is_anomaly) and some broken CSVs."""
    from toolkit.timeseries.anomaly import synthetic_sensor

    root = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(0)
    n = 200
    dates = pd.date_range("2024-01-01", periods=n, freq="D")
    promo = (rng.random(n) < 0.15).astype(int)
    price = np.round(10 + rng.normal(0, 0.5, n), 2)
    units = 100 + 20 * np.sin(2 * np.pi * np.arange(n) / 7) + 15 * promo - 3 * (price - 10) + rng.normal(0, 3, n)
    sales = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "units": np.round(units, 1), "price": price,
                          "promo": promo})
    sales.to_csv(root / "sales.csv", index=False)
    bad = sales.astype({"units": object})
    bad.loc[4, "units"] = "abc"  # data row 5: line 6 of the file
    bad.to_csv(root / "bad.csv", index=False)
    sales.head(15).to_csv(root / "short.csv", index=False)  # < window 14 + horizon 7
    sales.head(40).to_csv(root / "short40.csv", index=False)  # enough for one window, not for training
    synthetic_sensor(600, seed=0, anomalies=False).drop(columns=["is_anomaly"]).to_csv(root / "machine.csv",
                                                                                       index=False)
    synthetic_sensor(600, seed=1).to_csv(root / "machine_test.csv", index=False)
    return root


@pytest.fixture(scope="module")
def forecaster(files, tmp_path_factory):
    """``toolkit train timeseries`` on sales.csv: (model folder, the command's JSON output)."""
    out = tmp_path_factory.mktemp("cli-ts") / "m"
    code, stdout = quiet_main("train", "timeseries", "--data", files / "sales.csv", "--time-column", "date",
                               "--target", "units", "--features", "price,promo", "--horizon", HORIZON,
                               "--model", "lstm", "--epochs", "2", "--classical", "theta", "--out", out)
    assert code == 0
    return out, json.loads(stdout)


@pytest.fixture(scope="module")
def detector(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-anomaly") / "detector"
    code, stdout = quiet_main("train", "anomaly", "--data", files / "machine.csv", "--time-column", "ts",
                               "--target", "temperature", "--epochs", "2", "--window", "16", "--out", out)
    assert code == 0
    return out, json.loads(stdout)


# ---------------------------------------------------------------------------- help


@pytest.mark.parametrize("argv", [["train", "timeseries"], ["train", "anomaly"], ["forecast"]], ids="-".join)
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0 and "usage: toolkit" in capsys.readouterr().out


# ---------------------------------------------------------------------------- forecaster


def test_train_timeseries_on_a_csv(forecaster):
    directory, result = forecaster
    assert result["out"] == str(directory) and result["epochs"] <= 2
    metrics = result["metrics"]
    # the network: the LSTM + N-BEATS blend, or one of them when it is clearly better on validation
    assert metrics["network"]["model"] == metrics["pick"]["network"] in ("lstm", "nbeats", "lstm+nbeats")
    assert metrics["horizon"] == HORIZON and metrics["n_cutoffs"] > 0
    # the default picks by a validation backtest on the training part, and says what and why
    assert result["pick"] == metrics["pick"] and metrics["model"] == metrics["pick"]["label"]
    assert metrics["pick"]["reason"] and metrics["verdict"].startswith(f"Picked {metrics['model']}: ")
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive", "drift"} and metrics["verdict"]
    assert set(metrics["classical"]) == {"theta"} and metrics["classical"]["theta"]["spec"] == "Theta(period=7)"
    assert "Best of all" in metrics["verdict"] and metrics["ratio_to_best_classical"] > 0
    card = json.loads((directory / "card.json").read_text())
    assert card["task"] == "forecaster" and card["columns"] == ["units", "price", "promo"]
    assert card["target"] == "units" and card["features"] == ["price", "promo"] and card["horizon"] == HORIZON
    assert card["data"]["time_column"] == "date" and card["frequency"] == "D"
    assert card["command"].startswith("toolkit train timeseries --data ") and "--features price,promo" in card["command"]
    assert card["metrics"] == json.loads(json.dumps(metrics))
    for name in ("model.keras", "background.npy", "last_window.npy"):
        assert (directory / name).is_file(), name


def test_evaluate_gives_the_model_and_every_baseline(capsys, forecaster, files, tmp_path):
    directory, _ = forecaster
    code, out, _ = run(capsys, "evaluate", directory, "--data", files / "sales.csv", "--out", tmp_path / "eval")
    report = json.loads(out)
    assert code == 0 and report["network"]["model"] in ("lstm", "nbeats", "lstm+nbeats")
    assert report["verdict"].startswith("Picked ")
    assert set(report["baselines"]) == set(report["mase_ratio"]) == {"naive", "seasonal_naive", "drift"}
    for row in (report, *report["baselines"].values()):
        assert {"mase", "smape", "mae", "rmse"} <= set(row)
    assert isinstance(report["beats_every_baseline"], bool) and isinstance(report["verdict"], str)
    assert report["classical"]["theta"]["mase"] > 0 and report["classical"]["theta"]["fit_seconds"] >= 0
    assert 0 <= report["coverage_80"] <= 1 and report["season"] == 7
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == report
    code, out, _ = run(capsys, "evaluate", directory)  # the card's source: the same file
    assert code == 0 and json.loads(out)["mase"] == pytest.approx(report["mase"])


def test_forecast_writes_a_csv_after_the_last_date(capsys, forecaster, files, tmp_path):
    directory, _ = forecaster
    code, out, _ = run(capsys, "forecast", directory, "--data", files / "sales.csv", "--horizon", HORIZON,
                       "--out", tmp_path / "forecast.csv")
    assert code == 0 and json.loads(out) == {"out": str(tmp_path / "forecast.csv"), "rows": HORIZON}
    table = pd.read_csv(tmp_path / "forecast.csv")
    assert list(table.columns) == ["time", "p10", "p50", "p90"] and len(table) == HORIZON
    assert list(pd.to_datetime(table["time"])) == list(pd.date_range(LAST_DATE + pd.Timedelta(days=1),
                                                                     periods=HORIZON, freq="D"))
    assert (table["p10"] <= table["p50"]).all() and (table["p50"] <= table["p90"]).all()
    code, out, _ = run(capsys, "forecast", directory, "--data", files / "sales.csv", "--horizon", 3,
                       "--out", tmp_path / "three.csv")
    assert code == 0 and json.loads(out)["rows"] == 3
    assert np.allclose(pd.read_csv(tmp_path / "three.csv")[["p10", "p50", "p90"]], table[["p10", "p50", "p90"]][:3])


def test_forecast_without_data_starts_after_the_cards_last_time(capsys, forecaster, tmp_path):
    directory, _ = forecaster
    code, out, _ = run(capsys, "forecast", directory, "--out", tmp_path / "f.csv")
    card = json.loads((directory / "card.json").read_text())
    times = pd.to_datetime(pd.read_csv(tmp_path / "f.csv")["time"])
    assert code == 0 and len(times) == HORIZON and times[0] == pd.Timestamp(card["last_time"]) + pd.Timedelta(days=1)


def test_forecast_prints_json_records_without_out(capsys, forecaster, files):
    directory, _ = forecaster
    code, out, err = run(capsys, "forecast", directory, "--data", files / "sales.csv", "--horizon", 3)
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3 and set(rows[0]) == {"time", "p10", "p50", "p90"}
    assert pd.Timestamp(rows[0]["time"]) == LAST_DATE + pd.Timedelta(days=1)


def test_forecast_beyond_the_models_horizon_is_an_error(capsys, forecaster, files):
    directory, _ = forecaster
    code, out, err = run(capsys, "forecast", directory, "--data", files / "sales.csv", "--horizon", HORIZON + 1)
    assert one_error_line(code, err) and f"up to {HORIZON} steps" in err and not out
    with pytest.raises(SystemExit) as stopped:  # refused by the parser, before the model is read
        run(capsys, "forecast", directory, "--data", files / "sales.csv", "--horizon", 0)
    assert stopped.value.code == 2 and "--horizon: expected a whole number >= 1" in capsys.readouterr().err


def test_predict_data_on_a_forecaster_gives_its_forecast(capsys, forecaster, files, tmp_path):
    """Current behaviour: ``predict --data`` on a forecaster is ``forecast --data``."""
    directory, _ = forecaster
    code, out, _ = run(capsys, "predict", directory, "--data", files / "sales.csv", "--out", tmp_path / "p.csv")
    assert code == 0 and json.loads(out)["rows"] == HORIZON
    run(capsys, "forecast", directory, "--data", files / "sales.csv", "--out", tmp_path / "f.csv")
    assert (tmp_path / "p.csv").read_text() == (tmp_path / "f.csv").read_text()


def test_predict_data_on_a_forecaster_prints_json(capsys, forecaster, files):
    directory, _ = forecaster
    code, out, _ = run(capsys, "predict", directory, "--data", files / "sales.csv")
    assert code == 0 and len(json.loads(out)) == HORIZON


def test_export_float32_matches_keras(capsys, forecaster):
    directory, _ = forecaster
    code, out, _ = run(capsys, "export", directory, "--quantization", "float32")
    entry = json.loads(out)[0]
    assert code == 0 and entry["file"] == "model_float32.tflite" and (directory / "model_float32.tflite").is_file()
    assert entry["max_relative_difference"] < 1e-3 and entry["n_test_windows"] > 0 and ".tflite" in entry["contains"]
    assert entry["input"]["columns"] == ["units", "price", "promo"] and entry["output"]["shape"] == [1, HORIZON, 3]
    card = json.loads((directory / "card.json").read_text())
    assert [e["file"] for e in card["tflite"]] == ["model_float32.tflite"]
    assert card["tflite"][0]["max_relative_difference"] < 1e-3


@pytest.mark.parametrize("method", [None, "lime"])
def test_explain_writes_a_png(capsys, forecaster, files, tmp_path, method):
    directory, _ = forecaster
    extra = [] if method is None else ["--method", method, "--budget", "200"]
    code, out, _ = run(capsys, "explain", directory, "--data", files / "sales.csv", "--out", tmp_path / "why.png",
                       *extra)
    summary = json.loads(out)
    assert code == 0 and summary["method"] == (method or "shap")
    assert summary["feature_names"] == ["units", "price", "promo"]
    assert (tmp_path / "why.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_timeseries_on_builtin_sunspots(capsys, tmp_path):
    # --pick network (the shipped sunspots model's `make models` line): one network, not the validation pick's
    # four; the pick itself is checked by test_train_timeseries_on_a_csv
    code, out, err = run(capsys, "train", "timeseries", "--data", "sunspots", "--horizon", 10, "--epochs", 2,
                         "--classical", "none", "--pick", "network", "--out", tmp_path / "my_forecaster")
    result = json.loads(out)
    assert code == 0 and result["metrics"]["horizon"] == 10 and result["season"] == 11
    card = json.loads((tmp_path / "my_forecaster" / "card.json").read_text())
    assert card["columns"] == ["sunspots"] and card["data"]["source"] == "sunspots"


# ---------------------------------------------------------------------------- anomaly detector


def test_train_anomaly_on_a_csv(detector):
    directory, result = detector
    assert result["out"] == str(directory) and result["threshold"] > 0
    assert result["metrics"]["train_n_points"] == 600
    card = json.loads((directory / "card.json").read_text())
    assert card["task"] == "anomaly_detector" and card["input"]["columns"] == ["temperature"]
    assert card["input"]["time_column"] == "ts" and card["input"]["shape"] == [16, 1]
    assert card["command"].startswith("toolkit train anomaly --data ")


def test_predict_writes_scores_per_point(capsys, detector, files, tmp_path):
    directory, _ = detector
    code, out, _ = run(capsys, "predict", directory, "--data", files / "machine_test.csv", "--out",
                       tmp_path / "scores.csv")
    summary = json.loads(out)
    assert code == 0 and summary["out"] == str(tmp_path / "scores.csv") and summary["n_points"] == 600
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns) == ["ts", "temperature", "score", "anomaly"] and len(scores) == 600
    assert scores["anomaly"].dtype == bool and int(scores["anomaly"].sum()) == summary["n_flagged"]
    assert ((scores["score"] > summary["threshold"]) == scores["anomaly"]).all()
    source = pd.read_csv(files / "machine_test.csv")
    assert list(scores["ts"]) == list(source["ts"])


def test_predict_prints_flagged_points_without_out(capsys, detector, files):
    directory, _ = detector
    code, out, _ = run(capsys, "predict", directory, "--data", files / "machine_test.csv")
    summary = json.loads(out)
    assert code == 0 and summary["n_points"] == 600 and len(summary["flagged"]) == summary["n_flagged"]


def test_evaluate_detector_with_labels(capsys, detector, files):
    directory, _ = detector
    code, out, _ = run(capsys, "evaluate", directory, "--data", files / "machine_test.csv")
    report = json.loads(out)
    assert code == 0 and report["n_points"] == 600
    assert {"precision", "recall", "f1", "event_recall"} <= set(report)
    assert all(0 <= report[k] <= 1 for k in ("precision", "recall", "f1"))
    assert report["n_anomalies"] == int(pd.read_csv(files / "machine_test.csv")["is_anomaly"].sum())


def test_detector_errors(capsys, detector, files, tmp_path):
    directory, _ = detector
    code, _, err = run(capsys, "forecast", directory, "--data", files / "machine.csv")
    assert one_error_line(code, err) and "anomaly" in err
    code, _, err = run(capsys, "explain", directory, "--data", files / "machine.csv", "--out", tmp_path / "x.png")
    assert one_error_line(code, err)
    code, _, err = run(capsys, "evaluate", directory, "--data", files / "sales.csv")
    assert one_error_line(code, err) and "temperature" in err


def test_detector_error_names_the_file(capsys, detector, files):
    directory, _ = detector
    code, _, err = run(capsys, "evaluate", directory, "--data", files / "sales.csv")
    assert one_error_line(code, err) and "sales.csv" in err and "'dataframe'" not in err


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, messages", [
    (["--data", "missing.csv"], ["missing.csv", "not found"]),
    (["--data", "{files}/bad.csv"], ["line 6", "'abc'", "units"]),
    (["--data", "{files}/short.csv", "--window", "14"], ["has 15 rows; at least 49 are needed"]),
    (["--data", "{files}/sales.csv", "--target", "sold"], ["'sold'", "Available columns"]),
    (["--data", "{files}/sales.csv", "--features", "price,discount"], ["'discount'"]),
    (["--data", "{files}/sales.csv", "--time-column", "when"], ["'when'"]),
], ids=["missing", "not-a-number", "too-short", "unknown-target", "unknown-feature", "unknown-time-column"])
def test_train_timeseries_errors_are_one_line(capsys, files, tmp_path, argv, messages):
    argv = [a.format(files=files) for a in argv]
    defaults = {"--time-column": "date", "--target": "units"}
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    code, out, err = run(capsys, "train", "timeseries", *argv, "--horizon", HORIZON, "--epochs", 1,
                         "--out", tmp_path / "x")
    assert one_error_line(code, err) and not out, err
    for message in messages:
        assert message in err, (message, err)
    assert not (tmp_path / "x").exists()


def test_too_short_message_counts_the_files_rows(capsys, files, tmp_path):
    code, _, err = run(capsys, "train", "timeseries", "--data", files / "short40.csv", "--time-column", "date",
                       "--target", "units", "--horizon", HORIZON, "--window", 14, "--epochs", 1, "--out", tmp_path / "x")
    assert one_error_line(code, err) and re.search(r"\b40 (points|rows|values)", err), err


def test_train_anomaly_bad_value_names_the_line(capsys, files, tmp_path):
    code, _, err = run(capsys, "train", "anomaly", "--data", files / "bad.csv", "--time-column", "date",
                       "--target", "units", "--out", tmp_path / "x")
    assert one_error_line(code, err) and "line 6" in err and "'abc'" in err, err


def test_train_anomaly_errors_are_one_line(capsys, files, tmp_path):
    code, _, err = run(capsys, "train", "anomaly", "--data", "missing.csv", "--out", tmp_path / "x")
    assert one_error_line(code, err) and "missing.csv" in err
    code, _, err = run(capsys, "train", "anomaly", "--data", files / "short.csv", "--time-column", "date",
                       "--target", "units", "--window", 16, "--out", tmp_path / "x")
    assert one_error_line(code, err) and "window=16" in err
    code, _, err = run(capsys, "train", "anomaly", "--data", files / "machine.csv", "--target", "pressure",
                       "--out", tmp_path / "x")
    assert one_error_line(code, err) and "pressure" in err


@pytest.mark.parametrize("task", ["timeseries", "anomaly"])
def test_unknown_model_is_an_argparse_error(capsys, files, tmp_path, task):
    with pytest.raises(SystemExit) as info:
        main(["train", task, "--data", str(files / "sales.csv"), "--model", "arima", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice: 'arima'" in err and "Traceback" not in err


def test_time_series_verbs_on_a_vision_model(capsys, files):
    if not (SHIPPED_DIGITS / "card.json").is_file():
        pytest.skip("saved_models/vision/digits_cnn is missing; run `make models`")
    code, _, err = run(capsys, "forecast", SHIPPED_DIGITS, "--data", files / "sales.csv")
    assert one_error_line(code, err) and "'vision'" in err and "toolkit train timeseries" in err
    code, _, err = run(capsys, "forecast", SHIPPED_DIGITS)
    assert one_error_line(code, err) and "'vision'" in err
    code, _, err = run(capsys, "predict", SHIPPED_DIGITS, "--data", files / "sales.csv")
    assert one_error_line(code, err) and "--image" in err


def test_forecast_with_bad_history(capsys, forecaster, files, tmp_path):
    directory, _ = forecaster
    pd.read_csv(files / "sales.csv").head(4).to_csv(tmp_path / "tiny.csv", index=False)
    code, _, err = run(capsys, "forecast", directory, "--data", tmp_path / "tiny.csv")
    assert one_error_line(code, err) and "window" in err
    pd.read_csv(files / "sales.csv")[["date", "units"]].to_csv(tmp_path / "units.csv", index=False)
    code, _, err = run(capsys, "forecast", directory, "--data", tmp_path / "units.csv")
    assert one_error_line(code, err) and "'price'" in err
    code, _, err = run(capsys, "forecast", directory, "--data", tmp_path / "missing.csv")
    assert one_error_line(code, err) and "missing.csv" in err
