"""Plain functions a demo tab calls with what a microphone or an upload gives: samples and their rate.

``predict_waveform`` works with an :class:`~toolkit.audio.AudioClassifier` or its ``.tflite`` file
opened with ``AudioClassifier.open_tflite`` (same top-k, the latency beside it);
``spectrogram_figure`` and ``explanation_image`` return RGB arrays.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .explain import spectrogram_image


def predict_waveform(model: Any, waveform: np.ndarray, sample_rate: int, k: int = 3) -> dict:
    """Top-``k`` labels of one recording (samples of any dtype, mono or (frames, channels), any
    rate) and how far to trust them, as ``assess`` gives them: ``{"top_k": [{"label",
    "probability"}...], "label", "probability", "not_sure", "why", ..., "ms"}``; ``ms`` is the
    model call alone (the recording is prepared first). Bad audio raises DataError."""
    batch = model.prepare((np.asarray(waveform), int(sample_rate)))
    start = time.perf_counter()
    probs, features = model.probabilities_and_features(batch)
    ms = (time.perf_counter() - start) * 1000
    (answer,) = model.assess_batch(batch, probs, k, features)
    return {**answer, "ms": round(ms, 3)}


def spectrogram_figure(model: Any, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """RGB picture of the prepared waveform and the log-mel spectrogram the (Keras) model computes."""
    batch = model.prepare((np.asarray(waveform), int(sample_rate)))
    cfg = model.config
    return spectrogram_image(model.spectrogram(batch), waveform=batch[0], sample_rate=cfg.sample_rate,
                             hop_length=cfg.frame_hop, title="what the model hears")


def explanation_image(model: Any, waveform: np.ndarray, sample_rate: int, method: str | None = None,
                      target: Any = None) -> tuple[np.ndarray, dict]:
    """(RGB picture of the explanation drawn over the spectrogram, its summary) for one recording."""
    explanation = model.explain((np.asarray(waveform), int(sample_rate)), method=method, target=target)
    return explanation.image, explanation.summary()
