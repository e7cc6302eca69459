"""Labels and a description inside the .tflite (TFLite metadata), read back by a reader."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from toolkit.edge import TFLiteModel
from toolkit.edge.metadata import (METADATA_NAME, associated_files, classifier_metadata, embed_metadata,
                                   read_metadata, write_classifier_metadata)
from toolkit.errors import ModelFormatError
from toolkit.storage import read_card, sha256_file


def test_every_classifier_export_carries_its_labels(saved_tiny_model, tiny_data):
    card = json.loads((saved_tiny_model / "card.json").read_text())
    labels = (saved_tiny_model / "labels.txt").read_text().splitlines()
    x, _ = tiny_data
    for entry in card["tflite"]:
        path = saved_tiny_model / entry["file"]
        assert entry["metadata"] is True
        assert entry["sha256"] == sha256_file(path) and entry["size_bytes"] == path.stat().st_size
        meta = read_metadata(path)
        assert meta["labels"] == labels == ["0", "1", "2"] and meta["files"] == ["labels.txt"]
        assert meta["name"] == "ImageClassifier" and meta["min_parser_version"] == "1.0.0"
        (image,), (scores,) = meta["inputs"], meta["outputs"]
        assert image["content"] == {"color_space": "GRAYSCALE", "size": [12, 12], "range": [0, 255]}
        assert image["normalization"] == {"mean": [0.0], "std": [1.0]}  # raw pixels: the model rescales
        assert image["stats"] == {"max": [255.0], "min": [0.0]}
        assert scores["associated_files"][0]["name"] == "labels.txt" and scores["associated_files"][0]["type"] == 2
        assert TFLiteModel(path).predict(x[:5]).shape == (5,)  # LiteRT still runs it


@pytest.fixture()
def shipped_copy(shipped_digits, tmp_path):
    shutil.copy(shipped_digits / "model_int8.tflite", tmp_path / "model.tflite")
    return tmp_path / "model.tflite"


def test_metadata_round_trips_and_outputs_do_not_change(shipped_copy, shipped_digits):
    from toolkit.data import load_digits

    assert read_metadata(shipped_copy) is None  # the shipped files predate it
    card = read_card(shipped_digits)
    x = load_digits().test.x[:50]
    before = TFLiteModel(shipped_copy, card=card).probabilities(x)
    facts = write_classifier_metadata(shipped_copy, card)
    again = write_classifier_metadata(shipped_copy, card)  # rewriting replaces, never stacks
    assert facts == again and facts["size_bytes"] == shipped_copy.stat().st_size
    meta = read_metadata(shipped_copy)
    assert meta["labels"] == (shipped_digits / "labels.txt").read_text().splitlines()
    assert meta["version"] == card["versions"]["toolkit"]
    assert meta["inputs"][0]["description"] == card["input"]["description"]
    np.testing.assert_array_equal(TFLiteModel(shipped_copy, card=card).probabilities(x), before)


def test_the_layout_is_the_official_one(shipped_copy, shipped_digits):
    """TFLITE_METADATA names a model buffer holding an M001 flatbuffer; the labels are a zip at the end."""
    from ai_edge_litert import schema_py_generated as schema

    write_classifier_metadata(shipped_copy, read_card(shipped_digits))
    data = shipped_copy.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    assert names.count(METADATA_NAME.encode()) == 1 and b"min_runtime_version" in names
    buffer = model.Buffers(model.Metadata(names.index(METADATA_NAME.encode())).Buffer()).DataAsNumpy().tobytes()
    assert buffer[4:8] == b"M001"
    assert associated_files(data)["labels.txt"].decode().split() == [str(d) for d in range(10)]


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ModelFormatError, match="class labels"):
        write_classifier_metadata(tmp_path / "x.tflite", {"labels": []})
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFormatError, match="TFLite flatbuffer"):
        embed_metadata(path, classifier_metadata({"labels": ["a"]}), {})
    assert path.read_bytes() == b"\x00" * 64  # nothing half-written
