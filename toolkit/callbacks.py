"""Keras callbacks the toolkit shares (imported lazily: importing this module loads Keras)."""

from __future__ import annotations

import time

import keras
import numpy as np

__all__ = ["TimeBudget"]


class TimeBudget(keras.callbacks.Callback):
    """Stop training once ``seconds`` have passed and keep the best weights seen (by ``monitor``).

    After training, ``stopped`` says whether the budget ended it; ``best`` is the best
    ``monitor`` value seen (inf when it was never logged)."""

    def __init__(self, seconds: float, monitor: str = "val_loss"):
        super().__init__()
        self.seconds, self.monitor = float(seconds), monitor
        self.stopped, self.best, self.weights = False, np.inf, None
        self.start = time.perf_counter()

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.stopped, self.best, self.weights = False, np.inf, None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get(self.monitor, np.inf)
        if loss < self.best:
            self.best, self.weights = loss, self.model.get_weights()
        if time.perf_counter() - self.start > self.seconds:
            self.stopped = True
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped and self.weights is not None:
            self.model.set_weights(self.weights)
