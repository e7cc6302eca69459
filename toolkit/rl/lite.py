"""A policy's ``.tflite`` file run by LiteRT: the agent's ``predict`` and ``action_values`` on raw
observations, without Keras or TensorFlow."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..edge.runner import LiteRTSession
from ..errors import DataError, ModelFormatError


class TFLitePolicy:
    """A policy ``.tflite`` file with the agent's ``predict`` and ``action_values`` on raw
    observations (a file with an int8 input or output, such as an A2C int8 policy, is quantized and
    dequantized with its scale and zero point; a DQN's int8 file takes and gives float32).
    ``runner`` is its :class:`~toolkit.edge.runner.LiteRTSession`."""

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        self.runner = LiteRTSession(path, num_threads)
        self.card = card or {}
        shape = self.runner.input_shape()
        if len(shape) != 1:
            raise ModelFormatError(f"{path} takes inputs of shape {shape}, not one observation vector: "
                                   "not a policy file.")
        self.n_features = shape[0]

    def _observations(self, obs: Any) -> tuple[np.ndarray, bool]:
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        x = x[None] if single else x
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise DataError(f"Expected observations of shape ({self.n_features},) or (N, {self.n_features}). "
                            f"Received shape {np.shape(obs)}.")
        return x, single

    def action_values(self, obs: Any) -> np.ndarray:
        """Q-values or action probabilities, (N, A) for a batch, (A,) for one observation."""
        x, single = self._observations(obs)
        out = self.runner.run_batched(x).astype(np.float32)
        return out[0] if single else out

    def predict(self, obs: Any) -> np.ndarray:
        """argmax actions: a 0-d array for one observation, (N,) for a batch."""
        return np.argmax(self.action_values(obs), axis=-1)

    def on_input_grid(self, obs: Any) -> np.ndarray:
        """Observations as the file sees them: rounded to its int8 input grid (the file's scale and
        zero point); float inputs are returned unchanged."""
        return self.runner.on_input_grid(obs)

    def latency_ms(self, obs: Any, runs: int = 100, warmup: int = 10) -> float:
        """Median wall time of one observation through the file (set input, invoke, read output), in ms."""
        x, _ = self._observations(obs)
        return self.runner.latency_ms(x[:1], runs=runs, warmup=warmup)
