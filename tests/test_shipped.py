"""The shipped digits model: complete, intact, and as accurate as its card says."""

from __future__ import annotations

import json

import numpy as np

from toolkit import TFLiteModel, load
from toolkit.storage import sha256_file


def test_shipped_digits_model(shipped_digits):
    card = json.loads((shipped_digits / "card.json").read_text())
    assert card["command"].startswith("toolkit train vision --data digits")
    assert card["input"]["shape"] == [8, 8, 1] and card["input"]["range"] == [0, 255]
    files = {e["quantization"]: e for e in card["tflite"]}
    assert {"float32", "int8"} <= set(files)
    for entry in files.values():
        assert sha256_file(shipped_digits / entry["file"]) == entry["sha256"]
    for path in shipped_digits.iterdir():
        assert path.stat().st_size < 5 * 1024 * 1024, path

    from toolkit.data import load_digits

    test = load_digits().test
    clf = load(shipped_digits)
    accuracy = float(np.mean(clf.predict(test.x) == np.array(clf.class_names_)[test.y]))
    assert accuracy == card["metrics"]["test_accuracy"]
    int8 = TFLiteModel(shipped_digits / "model_int8.tflite")
    entry = next(e for e in card["tflite"] if e["file"] == "model_int8.tflite")
    assert np.mean(int8.predict(test.x) == clf.predict(test.x)) == entry["agreement_with_keras"]


def test_shipped_digits_compression_report(shipped_digits):
    """`make models` ran `toolkit compress --report`: every variant is in the folder and the card,
    with the issue's numbers, and the report's Markdown beside them."""
    card = json.loads((shipped_digits / "card.json").read_text())
    section = card["compression"]
    rows = {row["variant"]: row for row in section["variants"]}
    assert list(rows) == ["float32", "float16", "dynamic", "int8", "qat_int8", "pruned_int8", "clustered_int8",
                          "pruned_clustered_qat_int8"]
    entries = {e["file"]: e for e in card["tflite"]}
    for row in rows.values():
        assert sha256_file(shipped_digits / row["file"]) == entries[row["file"]]["sha256"]
        assert row["test_accuracy"] == entries[row["file"]]["test_accuracy"]
    ratio = {name: rows[name]["gzip_bytes"] / rows["float32"]["gzip_bytes"] for name in rows}
    float_acc = rows["float32"]["test_accuracy"]
    assert ratio["pruned_int8"] <= 0.10 and rows["pruned_int8"]["test_accuracy"] >= float_acc - 0.015
    assert rows["qat_int8"]["test_accuracy"] >= max(rows["int8"]["test_accuracy"], float_acc - 0.005)
    assert ratio["clustered_int8"] <= 0.15 and rows["clustered_int8"]["test_accuracy"] >= float_acc - 0.015
    assert rows["pruned_int8"]["sparsity"] >= 0.79 and rows["clustered_int8"]["max_values_per_channel"] <= 16
    assert section["seconds"] <= 600
    from toolkit.edge.compression import report_markdown

    assert (shipped_digits / "compression.md").read_text() == report_markdown(section)


def _shipped(name: str):
    import pytest

    from conftest import REPO

    directory = REPO / "saved_models" / "nlp" / name
    if not (directory / "card.json").is_file():
        pytest.skip(f"{directory} is missing; run `make models`")
    return directory, json.loads((directory / "card.json").read_text())


def test_shipped_sentiment_models():
    from conftest import SHARED_DATA
    from toolkit.data.text import load_text, text_splits

    splits = text_splits(load_text(SHARED_DATA / "sentiment_sentences", label_names=["negative", "positive"]))
    for name, encoder in (("sentiment_bigru", "bigru"), ("sentiment_minilm", "minilm")):
        directory, card = _shipped(name)
        assert card["command"].startswith("toolkit train nlp") and card["encoder"]["name"] == encoder
        for path in directory.iterdir():
            assert path.stat().st_size < 5 * 1024 * 1024, path  # MiniLM: the head only
        for entry in card["tflite"]:
            assert sha256_file(directory / entry["file"]) == entry["sha256"]
        clf = load(directory)
        assert clf.evaluate(splits)["accuracy"] == card["metrics"]["test_accuracy"]
    directory, card = _shipped("sentiment_bigru")
    assert {e["quantization"] for e in card["tflite"]} == {"float32", "dynamic"}
    assert (directory / "vocab.txt").is_file()


def test_shipped_dates_model():
    directory, card = _shipped("dates_seq2seq")
    model = load(directory)
    assert model.translate(["Sunday, 22 November 2026", "11/22/26", "november 22nd, 2026", "22 Nov 2026"]) == [
        "2026-11-22"] * 4
    assert card["tflite"] and all(sha256_file(directory / e["file"]) == e["sha256"] for e in card["tflite"])


def _shipped_model(kind: str, name: str):
    """(folder, card) of ``saved_models/<kind>/<name>``, checked against its card; skips when missing."""
    import pytest

    from conftest import REPO

    directory = REPO / "saved_models" / kind / name
    if not (directory / "card.json").is_file():
        pytest.skip(f"{directory} is missing; run `make models`")
    card = json.loads((directory / "card.json").read_text())
    assert sha256_file(directory / card["model"]["file"]) == card["model"]["sha256"]
    for entry in card["tflite"]:
        assert sha256_file(directory / entry["file"]) == entry["sha256"], entry["file"]
    for path in directory.iterdir():
        assert path.stat().st_size < 5 * 1024 * 1024, path
    return directory, card


def _make_models_command(directory) -> str:
    """The ``toolkit train`` line of the Makefile's ``models`` recipe that writes ``directory``."""
    from conftest import REPO

    out = f"--out {directory.relative_to(REPO).as_posix()} "
    lines = [line for line in (REPO / "Makefile").read_text().splitlines() if "toolkit train" in line and out in line + " "]
    assert len(lines) == 1, lines
    return "toolkit" + lines[0].split("$(BIN)/toolkit", 1)[1].rstrip()


def _relative_difference(lite, keras_out) -> float:
    return float(np.max(np.abs(lite - keras_out)) / max(float(np.max(np.abs(keras_out))), 1e-12))


def test_shipped_forecasters():
    import pytest

    from toolkit.timeseries import Forecaster, TFLiteForecaster, make_windows

    for name, horizon in (("sunspots_lstm", 10), ("co2_lstm", 12)):
        directory, card = _shipped_model("timeseries", name)
        assert card["task"] == "forecaster" and card["horizon"] == horizon
        assert card["command"] == _make_models_command(directory)
        metrics = card["metrics"]
        assert metrics["beats_every_baseline"] is True and "beats every baseline" in metrics["verdict"]
        assert set(metrics["baselines"]) == {"naive", "seasonal_naive", "drift"}
        assert all(ratio < 1 for ratio in metrics["mase_ratio"].values())
        model = load(directory)
        assert isinstance(model, Forecaster) and model.window_ == card["window"]
        series = model.reload_data()
        # the network's MASE; classical=(): the card's classical rows (ETS, Theta, ARIMA refit along 53 / 95
        # cut-offs, 25 CPU-s) are not compared here and do not change the network's row
        assert model.evaluate(series, classical=())["mase"] == pytest.approx(metrics["mase"], rel=1e-4)
        x, _ = make_windows(series.values, model.window_, horizon)
        windows = x[np.linspace(0, len(x) - 1, 8).astype(int)]
        files = {e["quantization"]: e for e in card["tflite"]}
        assert files["float32"]["max_relative_difference"] < 1e-3
        lite = TFLiteForecaster(directory / files["float32"]["file"])
        assert (lite.window, lite.n_features) == (model.window_, len(model.columns_))
        assert _relative_difference(lite.predict_quantiles(windows), model.predict_quantiles(windows)) < 1e-3


def test_shipped_anomaly_detector():
    import pytest

    from toolkit.timeseries import AnomalyDetector, TFLiteAnomalyDetector, synthetic_sensor

    directory, card = _shipped_model("anomaly", "sensor_lstm")
    assert card["task"] == "anomaly_detector" and card["command"] == _make_models_command(directory)
    detector = load(directory)
    assert isinstance(detector, AnomalyDetector) and detector.threshold_ == card["threshold"]
    files = {e["quantization"]: e for e in card["tflite"]}
    entry = files["float32"]
    assert entry["relative_difference"] < 1e-3 and entry["flag_agreement"] >= 0.99
    lite = TFLiteAnomalyDetector(directory / entry["file"])
    assert lite.window == detector.window and lite.threshold_ == detector.threshold_
    series = synthetic_sensor(300, seed=1)
    assert _relative_difference(lite.score(series), detector.score(series)) < 1e-3
    assert np.mean(lite.predict(series) == detector.predict(series)) >= 0.99
    # The file's metrics on the generated test series, as its card records them.
    assert lite.evaluate(synthetic_sensor(2000, seed=1))["f1"] == pytest.approx(entry["metrics"]["f1"], abs=1e-6)
    assert entry["metrics"]["f1"] >= 0.8


def test_shipped_generative_models():
    import pytest

    from toolkit.generative import GAN, VAE, Denoiser, TFLiteImageModel, digits_splits

    test = digits_splits().test
    kinds = {"digits_vae": (VAE, "decoder"), "digits_cgan": (GAN, "generator"), "digits_denoiser": (Denoiser, "denoiser")}
    for name, (task_class, kind) in kinds.items():
        directory, card = _shipped_model("generative", name)
        assert card["command"] == _make_models_command(directory)
        assert card["image"]["shape"] == [16, 16, 1] and card["data"]["source"] == "digits"
        files = {e["quantization"]: e for e in card["tflite"]}
        assert set(files) == {"float32", "float16"} and all(e["kind"] == kind for e in files.values())
        assert files["float16"]["max_abs_pixel_error"] <= 0.02 and files["float32"]["max_abs_pixel_error"] <= 1e-4
        model = load(directory)
        assert isinstance(model, task_class)
        lite = TFLiteImageModel(directory / files["float16"]["file"])
        if kind == "denoiser":
            report = model.evaluate(test)
            assert report["psnr_gain_db"] == pytest.approx(card["metrics"]["test_psnr_gain_db"], abs=1e-4)
            assert report["psnr_gain_db"] >= 6
            noisy = model.add_noise(test.x[:50], seed=3)
            assert np.abs(lite.predict(noisy) - model.predict(noisy)).max() / 255 <= 0.02
        else:
            assert lite.input_names == (["label", "noise"] if kind == "generator" else ["z"])
            assert np.abs(lite.generate(20, seed=5) - model.generate(20, seed=5)).max() / 255 <= 0.02
    _, card = _shipped_model("generative", "digits_cgan")
    assert card["metrics"]["test_label_accuracy"] >= 0.9 and card["metrics"]["test_mode_collapse"] is False
    assert card["discriminator"]["file"] == "discriminator.keras"
    assert [spec["name"] for spec in card["input"]] == ["noise", "label"]
    _, card = _shipped_model("generative", "digits_vae")
    assert card["metrics"]["test_fid"] < 0.1 * card["metrics"]["test_fid_noise_baseline"]


def test_shipped_rl_agents():
    """The three shipped agents: their Makefile commands, the policy files, returns as recorded."""
    from toolkit.rl import Agent, TFLitePolicy
    from toolkit.rl.agent import archived_dense_stack, dense_stack

    for name, env, solved in (("cartpole_dqn", "CartPole-v1", 475), ("cartpole_a2c", "CartPole-v1", 475),
                              ("acrobot_dqn", "Acrobot-v1", -100)):
        directory, card = _shipped_model("rl", name)
        assert card["command"] == _make_models_command(directory) and card["env"]["id"] == env
        assert {e["file"] for e in card["tflite"]} == {"policy.tflite", "policy_int8.tflite", "policy_float16.tflite"}
        assert (directory / "learning_curve.png").is_file() and card["training"]["threshold_step"] is not None
        agent = load(directory)
        assert isinstance(agent, Agent) and agent.metrics_["mean_return"] >= solved
        assert agent.evaluate(n_episodes=5, baseline=False)["mean_return"] >= solved
        files = {e["quantization"]: e for e in card["tflite"]}
        for quantization in ("float32", "float16"):
            assert files[quantization]["agreement_with_keras"] >= 0.99 and files[quantization]["n_states"] == 10_000
        assert files["int8"]["return_ratio_to_keras"] >= 0.95 and files["int8"]["n_episodes"] == 100
        int8 = files["int8"]
        if int8["input"]["dtype"] == "int8":  # an int8 observation (A2C) rounds the states: Keras' own limit there
            assert int8["agreement_with_keras"] <= int8["keras_agreement_on_int8_input"] + 0.02
        else:  # a DQN: float observation, first layer and head float32, hidden layers int8
            assert set(int8["layers"].values()) == {"float32", "int8"} and "keras_agreement_on_int8_input" not in int8
        gap = int8["keras_top_two_gap"]  # most disagreements lie where Keras' top two outputs are close
        assert 0.5 * (1 - int8["agreement_with_keras"]) * int8["n_states"] <= gap["disagreements"][-1]
        states = agent.background_
        float_policy = TFLitePolicy(directory / "policy.tflite")
        assert np.mean(float_policy.predict(states) == agent.predict(states)) >= 0.99
        # `toolkit play` reads the same weights without Keras
        for ours, keras_layer in zip(archived_dense_stack(directory / "model.keras", agent._stack_names()),
                                     dense_stack(agent.model_, agent._stack_names())):
            assert all(np.array_equal(a, b) for a, b in zip(ours, keras_layer))
