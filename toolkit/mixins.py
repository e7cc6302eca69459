"""``ClassifierMixin`` and ``target_index``: ``predict`` / ``predict_proba`` / ``top_k`` of the classifier tasks and of
their TFLite runner (below :mod:`toolkit.base`, so the runner needs no Task)."""

from __future__ import annotations

from typing import Any

import numpy as np


def target_index(target: Any, names: list[str], default: Any = 0, what: str = "target class") -> int:
    """The index a target stands for: a name in ``names``, an index (an int, or digits from the
    command line), or ``None`` for ``default`` (an index, or a callable returning one).

    The one home of "label or index -> id" (classes to explain, labels to generate, actions).
    """
    if target is None:
        return int(default() if callable(default) else default)
    value = target.item() if isinstance(target, np.generic) else target
    if isinstance(value, str) and value in names:
        return list(names).index(value)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) < len(names):
        return int(value)
    from .errors import DataError

    raise DataError(f"Unknown {what} {target!r}. Expected one of {list(names)} or an index 0-{len(names) - 1}.")


class ClassifierMixin:
    """``predict`` / ``predict_proba`` / ``top_k`` on top of ``prepare`` and ``probabilities``.

    Shared by the Keras tasks and the TFLite runner, so either can serve the demo.
    """

    class_names_: list[str]

    def prepare(self, x: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def probabilities(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities, shape (N, n_classes); one sample gives N = 1."""
        return self.probabilities(self.prepare(x))

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class names, shape (N,); one sample gives N = 1."""
        probs = self.predict_proba(x)
        return np.asarray(self.class_names_, dtype=object)[np.argmax(probs, axis=-1)]

    def _target_index(self, target: int | str | None, probs: np.ndarray) -> int:
        """The class to explain: a class name or index, by default the most probable one."""
        return target_index(target, self.class_names_, lambda: np.argmax(probs))

    def top_k(self, x: Any, k: int = 5) -> list[list[dict]]:
        """For each sample, the k most probable labels: ``[{"label": ..., "probability": ...}]``."""
        probs = self.predict_proba(x)
        k = max(1, min(int(k), probs.shape[-1]))
        order = np.argsort(-probs, axis=-1)[:, :k]
        return [
            [{"label": self.class_names_[i], "probability": float(p[i])} for i in row] for row, p in zip(order, probs)
        ]
