"""Keras callbacks the toolkit shares (imported lazily: importing this module loads Keras)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

__all__ = ["HistoryBackup", "TimeBudget"]


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


class HistoryBackup(keras.callbacks.Callback):
    """Keep a ``fit``'s per-epoch logs in a JSON file, so a training resumed after a kill (by
    ``keras.callbacks.BackupAndRestore``) reports every epoch, not only those after the resume.

    Each finished epoch is written atomically to ``path`` as ``{"epochs": [...], "logs": {...}}``.
    On a resumed run, :meth:`merged` joins the epochs saved before the interruption (those before
    the first epoch this run trained) with this run's ``History.history``; the file is removed by
    whoever removes the backup folder.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.previous = self._read()
        self.epochs: list[int] = []

    def _read(self) -> dict:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            epochs, logs = [int(e) for e in saved["epochs"]], dict(saved["logs"])
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: start afresh
            return {"epochs": [], "logs": {}}
        if any(len(v) != len(epochs) for v in logs.values()):
            return {"epochs": [], "logs": {}}
        return {"epochs": epochs, "logs": logs}

    def on_train_begin(self, logs=None):
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        from .storage import write_json

        self.epochs.append(int(epoch))
        keep = [i for i, e in enumerate(self.previous["epochs"]) if e < epoch]  # drop a killed run's later epochs
        record = {"epochs": [self.previous["epochs"][i] for i in keep] + [int(epoch)], "logs": {}}
        names = set(self.previous["logs"]) | set(logs or {})
        for name in names:
            before = [self.previous["logs"].get(name, [None] * len(self.previous["epochs"]))[i] for i in keep]
            value = (logs or {}).get(name)
            record["logs"][name] = before + [None if value is None else float(value)]
        self.previous = record
        write_json(self.path, record)

    def merged(self, history: dict) -> dict:
        """``history`` (this run's ``History.history``) with the epochs trained before a resume
        in front: one list per metric covering every epoch."""
        first = self.epochs[0] if self.epochs else None
        before = [i for i, e in enumerate(self.previous["epochs"]) if first is None or e < first]
        if not before:
            return {k: list(v) for k, v in history.items()}
        out = {}
        for name in history:  # a metric missing before the resume reads NaN there
            old = self.previous["logs"].get(name) or [float("nan")] * len(self.previous["epochs"])
            out[name] = [float("nan") if old[i] is None else old[i] for i in before] + list(history[name])
        return out
