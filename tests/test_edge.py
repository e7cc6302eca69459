"""TFLite export: presets, builtin-ops check, the card, and the LiteRT runner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit import ImageClassifier, TFLiteModel
from toolkit.edge import convert
from toolkit.errors import ExportError
from toolkit.storage import sha256_file

REQUIRED_ENTRY = {"file", "quantization", "size_bytes", "sha256", "test_accuracy", "agreement_with_keras",
                  "latency_ms_p50"}


def test_card_records_every_export(saved_tiny_model, tiny_data):
    card = json.loads((saved_tiny_model / "card.json").read_text())
    assert {"task", "labels", "input", "metrics", "tflite", "versions", "command"} <= set(card)
    assert {"shape", "dtype", "range"} <= set(card["input"])
    assert card["metrics"]["test_accuracy"] > 0.5
    assert {"tensorflow", "keras", "toolkit"} <= set(card["versions"])
    entries = {e["quantization"]: e for e in card["tflite"]}
    assert set(entries) == {"float32", "int8"}
    for entry in entries.values():
        assert REQUIRED_ENTRY <= set(entry)
        path = saved_tiny_model / entry["file"]
        assert entry["sha256"] == sha256_file(path) and entry["size_bytes"] == path.stat().st_size
    assert entries["float32"]["agreement_with_keras"] == 1.0
    assert entries["int8"]["input"]["dtype"] == "int8" and entries["int8"]["output"]["dtype"] == "int8"
    assert entries["int8"]["agreement_with_keras"] >= 0.9
    assert entries["int8"]["size_bytes"] < 0.35 * entries["float32"]["size_bytes"]


def test_runner_has_the_task_api(saved_tiny_model, tiny_model, tiny_data):
    x, y = tiny_data
    for name in ("model_float32.tflite", "model_int8.tflite"):
        runner = TFLiteModel(saved_tiny_model / name)
        assert runner.input_shape == (12, 12, 1)
        assert (runner.predict(x) == tiny_model.predict(x)).mean() >= 0.9
        one = runner.top_k(np.full((30, 30, 3), 100, np.uint8), k=3)[0]
        assert [r["label"] for r in one] and sum(r["probability"] for r in one) == pytest.approx(1.0, abs=0.05)
    float_runner = TFLiteModel(saved_tiny_model / "model_float32.tflite")
    np.testing.assert_allclose(float_runner.predict_proba(x), tiny_model.predict_proba(x), atol=1e-5)


def test_unknown_preset_and_int8_without_data(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"Unknown quantization 'int4'.*float16"):
        tiny_model.export(tmp_path, quantization="int4")
    fresh = ImageClassifier.load(tiny_model.save(tmp_path / "m"))  # trained on arrays: nothing to reload
    with pytest.raises(ExportError, match="calibrate"):
        fresh.export(quantization="int8")
    with pytest.warns(UserWarning, match="No test data"):
        path = fresh.export(quantization="float16")
    assert path.name == "model_float16.tflite"
    entry = json.loads((tmp_path / "m" / "card.json").read_text())["tflite"][0]
    assert entry["quantization"] == "float16" and "test_accuracy" not in entry


def test_export_to_a_separate_folder_for_the_phone(tiny_model, tiny_data, tmp_path):
    path = tiny_model.export(tmp_path / "phone" / "digits.tflite", quantization="dynamic", data=tiny_data)
    card = json.loads((tmp_path / "phone" / "card.json").read_text())
    assert path.is_file() and (tmp_path / "phone" / "labels.txt").read_text().split() == ["0", "1", "2"]
    assert card["tflite"][0]["file"] == "digits.tflite" and card["model"]["file"] is None


def test_flex_ops_are_named_unless_allowed():
    import keras

    class Cumprod(keras.layers.Layer):
        def call(self, x):
            return keras.ops.cumprod(x, axis=-1)

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Cumprod()(inputs))
    with pytest.raises(ExportError, match=r"Flex.*\['Cumprod'\].*allow_flex=True"):
        convert(model)
    assert len(convert(model, allow_flex=True)) > 0


def test_runner_is_safe_to_share_between_threads(saved_tiny_model, tiny_data):
    from concurrent.futures import ThreadPoolExecutor

    x, _ = tiny_data
    runner = TFLiteModel(saved_tiny_model / "model_int8.tflite")
    expected = runner.predict_proba(x)
    jobs = [x[i : i + n] for i, n in [(0, 1), (5, 7), (20, 1), (30, 13), (50, 2)] * 8]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(runner.predict_proba, jobs))
    starts = [0, 5, 20, 30, 50] * 8
    for start, job, out in zip(starts, jobs, results):
        np.testing.assert_allclose(out, expected[start : start + len(job)], atol=1e-6)


def test_litert_session_names_quantizes_resizes_and_chunks(saved_tiny_model, tiny_data):
    from toolkit.edge import LiteRTSession
    from toolkit.errors import DataError

    x, _ = tiny_data
    session = LiteRTSession(saved_tiny_model / "model_int8.tflite")
    assert session.input_names == ["pixels"] and session.input_shape("pixels") == (12, 12, 1)
    assert session.input_dtype() == "int8" and session.quantization["input"]["scale"] > 0
    one_by_one = np.concatenate([session.run(x[i : i + 1]) for i in range(7)])
    np.testing.assert_allclose(session.run(pixels=x[:7]), one_by_one, atol=1e-6)  # by name, resized to 7
    np.testing.assert_allclose(session.run_batched(x, chunk=32), session.run(x), atol=1e-6)
    assert session.run(x[:3]).dtype == np.float32  # int8 outputs come back dequantized
    grid = session.on_input_grid(x[:5])
    assert 0 < np.abs(grid - x[:5]).max() <= session.quantization["input"]["scale"] / 2 + 1e-4
    assert session.latency_ms(x[:1], runs=3, warmup=1) > 0
    with pytest.raises(DataError, match=r"Expected the inputs \['pixels'\]"):
        session.run(image=x[:1])
    with pytest.raises(DataError, match="Expected 1 input"):
        session.run(x[:1], x[:1])


def test_refused_presets_say_why_and_which_are_offered(tiny_model, tmp_path):
    from toolkit.errors import QuantizationError
    from toolkit.nlp import TextClassifier

    with pytest.raises(QuantizationError, match=r"\['float32', 'float16', 'dynamic'\]; int8 is not offered: "):
        TextClassifier.check_quantization("int8")
    assert issubclass(QuantizationError, ExportError) and issubclass(QuantizationError, ValueError)
    assert type(tiny_model).check_quantization("int8") == "int8"


def test_a_failed_check_leaves_neither_file_nor_card_entry(tiny_model, tiny_data, tmp_path, monkeypatch):
    folder = tiny_model.save(tmp_path / "m")
    fresh = ImageClassifier.load(folder)

    def broken(runner, plan):
        raise ExportError("check failed")

    monkeypatch.setattr(fresh, "_export_checks", broken)
    with pytest.raises(ExportError, match="check failed"):
        fresh.export(quantization="float32", data=tiny_data)
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".tflite" or p.name.startswith(".staged")) == []
    assert json.loads((folder / "card.json").read_text()).get("tflite", []) == []
