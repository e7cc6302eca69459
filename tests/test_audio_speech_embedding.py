"""The pretrained speech embedding port (toolkit/audio/speech_embedding.py)."""

import importlib.util

import numpy as np
import pytest

from toolkit.audio import speech_embedding as se

HAVE_WEIGHTS = importlib.util.find_spec("openwakeword") is not None and importlib.util.find_spec("onnx") is not None


@pytest.mark.skipif(importlib.util.find_spec("openwakeword") is not None, reason="openwakeword is installed")
def test_missing_weights_package_says_what_to_install():
    with pytest.raises(ImportError, match="pip install --no-deps openwakeword==0.4.0"):
        se.onnx_path()


def test_short_or_odd_rate_input_is_refused_clearly():
    with pytest.raises(ValueError, match="8000 or 16000"):
        se.build_embedding_features(11025, 16000)
    with pytest.raises(ValueError, match="at least"):
        se.build_embedding_features(8000, 4000)


@pytest.mark.skipif(not HAVE_WEIGHTS, reason="needs `pip install --no-deps openwakeword==0.4.0` and onnx")
def test_features_match_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    wave = (np.sin(np.arange(24000) * 0.05) * rng.uniform(0.2, 1, 24000) * 8000).astype("float32")[None]
    mel = ort.InferenceSession(se.onnx_path("melspectrogram.onnx"), providers=["CPUExecutionProvider"])
    spec = mel.run(None, {"input": wave})[0].squeeze() / 10 + 2
    np.testing.assert_allclose(np.asarray(se.build_mel_frontend()(wave))[0], spec, atol=1e-3)
    emb = ort.InferenceSession(se.onnx_path(), providers=["CPUExecutionProvider"])
    window = spec[None, :76, :, None].astype("float32")
    expected = emb.run(None, {"input_1": window})[0].reshape(1, -1)
    np.testing.assert_allclose(np.asarray(se.build_speech_embedding()(window)), expected, atol=1e-3)
