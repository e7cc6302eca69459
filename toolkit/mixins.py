"""``ClassifierMixin``: ``predict`` / ``predict_proba`` / ``top_k`` of the classifier tasks and of
their TFLite runner (below :mod:`toolkit.base`, so the runner needs no Task)."""

from __future__ import annotations

from typing import Any

import numpy as np


class ClassifierMixin:
    """``predict`` / ``predict_proba`` / ``top_k`` on top of ``_prepare`` and ``_probabilities``.

    Shared by the Keras tasks and the TFLite runner, so either can serve the demo.
    """

    class_names_: list[str]

    def _prepare(self, x: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities, shape (N, n_classes); one sample gives N = 1."""
        return self._probabilities(self._prepare(x))

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class names, shape (N,); one sample gives N = 1."""
        probs = self.predict_proba(x)
        return np.asarray(self.class_names_, dtype=object)[np.argmax(probs, axis=-1)]

    def _target_index(self, target: int | str | None, probs: np.ndarray) -> int:
        """The class to explain: a class name or index, by default the most probable one."""
        if target is None:
            return int(np.argmax(probs))
        if isinstance(target, str) and target in self.class_names_:
            return self.class_names_.index(target)
        if isinstance(target, (int, np.integer)) and 0 <= int(target) < len(self.class_names_):
            return int(target)
        from .errors import DataError

        raise DataError(f"Unknown target class {target!r}. Expected one of {self.class_names_} or an index.")

    def top_k(self, x: Any, k: int = 5) -> list[list[dict]]:
        """For each sample, the k most probable labels: ``[{"label": ..., "probability": ...}]``."""
        probs = self.predict_proba(x)
        k = max(1, min(int(k), probs.shape[-1]))
        order = np.argsort(-probs, axis=-1)[:, :k]
        return [
            [{"label": self.class_names_[i], "probability": float(p[i])} for i in row] for row, p in zip(order, probs)
        ]
