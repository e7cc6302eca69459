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
    int8 = TFLiteModel(shipped_digits / files["int8"]["file"])
    assert np.mean(int8.predict(test.x) == clf.predict(test.x)) == files["int8"]["agreement_with_keras"]


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
