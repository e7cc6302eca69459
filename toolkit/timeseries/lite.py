"""Time-series ``.tflite`` files run by LiteRT (on :class:`~toolkit.edge.runner.LiteRTSession`),
with the tasks' own predict / score / detect on raw windows and no Keras or TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..edge.runner import LiteRTSession
from ..errors import DataError, ModelFormatError
from ..storage import read_card
from .anomaly import AnomalyScoring


class TFLiteForecaster:
    """A forecaster's ``.tflite`` file with the task's ``predict`` / ``predict_quantiles`` on raw windows."""

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        self.session = LiteRTSession(path, num_threads, "Export it with Forecaster.export.")
        self.window, self.n_features = self.session.input_shape()

    def predict_quantiles(self, windows: Any) -> np.ndarray:
        """p10 / p50 / p90, shape (N, horizon, 3), for one raw window (window, F) or a batch."""
        x = np.asarray(windows, dtype=np.float32)
        x = x.reshape(-1, self.window, self.n_features) if x.ndim < 3 else x
        if x.shape[1:] != (self.window, self.n_features):
            raise DataError(f"Expected windows of shape ({self.window}, {self.n_features}). Received {np.shape(windows)}.")
        return self.session.run_batched(x)

    def predict(self, windows: Any) -> np.ndarray:
        """Median forecasts, shape (N, horizon)."""
        return self.predict_quantiles(windows)[..., 1]

    def latency_ms(self, window: Any, runs: int = 100, warmup: int = 10) -> float:
        """Median wall time of one window through the file, in ms."""
        return self.session.latency_ms(np.asarray(window, np.float32)[:1], runs=runs, warmup=warmup)


class TFLiteAnomalyDetector(AnomalyScoring):
    """An exported anomaly ``.tflite`` with the same score / predict / detect / evaluate, run by
    LiteRT; the threshold and columns come from ``card.json`` beside the file (or ``card``)."""

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        path = Path(path)
        if card is None and (path.parent / "card.json").is_file():
            card = read_card(path.parent)
        if not card or "threshold" not in card or "columns" not in card.get("input", {}):
            raise ModelFormatError(f"{path.parent / 'card.json'} is missing or not an anomaly detector's card. "
                                   "Export the model with AnomalyDetector.export.")
        self.session = LiteRTSession(path, num_threads, "Export it with AnomalyDetector.export.")
        self.window = int(self.session.input_shape()[0])
        self.threshold_ = float(card["threshold"])
        self.columns_ = list(card["input"]["columns"])
        self.time_column_ = card["input"].get("time_column")

    def window_errors(self, windows: np.ndarray) -> np.ndarray:
        return self.session.run(np.asarray(windows, np.float32))

    def latency_ms(self, windows: Any, runs: int = 100, warmup: int = 10) -> float:
        """Median wall time of one window through the file, in ms."""
        return self.session.latency_ms(np.asarray(windows, np.float32)[:1], runs=runs, warmup=warmup)
