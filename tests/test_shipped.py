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
