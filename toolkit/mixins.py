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
    """``predict`` / ``predict_proba`` / ``top_k`` / ``assess`` on top of ``prepare`` and ``probabilities``.

    Shared by the Keras tasks and the TFLite runner, so either can serve the demo.
    """

    class_names_: list[str]
    #: a :class:`toolkit.calibration.Calibration` (temperature, "not sure" thresholds), or None
    calibration_: Any = None

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

    def assess(self, x: Any, k: int = 5) -> list[dict]:
        """For each sample, the answer and how far to trust it: ``label``, ``probability``,
        ``top_k`` (as :meth:`top_k`), ``not_sure`` (True when the input looks unlike the
        training images or the model is not confident), ``why`` (None when sure), ``in_domain``
        (None when the model has no pixel reference) and ``temperature``.

        Probabilities are temperature-scaled where the model is calibrated (``temperature`` is
        then not None; see ``calibrate``); without a calibration, ``not_sure`` is always False.
        """
        batch = self.prepare(x)
        probs, features = self.probabilities_and_features(batch)
        return self.assess_batch(batch, probs, k, features)

    def probabilities_and_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, pooled features or None) of a prepared batch, in one pass where the
        model has pooled features (the "not sure" feature distance reads them)."""
        return self.probabilities(batch), None

    def assess_batch(self, batch: np.ndarray, probs: np.ndarray, k: int = 5,
                     features: np.ndarray | None = None) -> list[dict]:
        """:meth:`assess` for a prepared batch and its (raw) probabilities, and its pooled
        features (from :meth:`probabilities_and_features`) when the calibration reads them; when
        they are not passed they are computed (a second pass) where the model can give them."""
        calibration = self.calibration_
        if calibration is not None:
            if features is None and calibration.uses_features:
                features = self.probabilities_and_features(batch)[1]
            flags, probs = calibration.assess(batch, probs, features), calibration.scaled(probs)
        else:
            flags = [{"in_domain": None, "not_sure": False, "why": None, "checked": []}] * len(probs)
        k = max(1, min(int(k), probs.shape[-1]))
        rows = []
        for p, flag in zip(probs, flags):
            top = [{"label": self.class_names_[i], "probability": float(p[i])} for i in np.argsort(-p)[:k]]
            rows.append({**top[0], "top_k": top, **flag,
                         "temperature": None if calibration is None else calibration.temperature})
        return rows

    def calibrate(self, validation_data: Any = None, ood: Any = None, **options: Any) -> dict:
        """Fit a temperature and the "not sure" thresholds on held-out data (tasks that can)."""
        from .errors import ToolkitError

        raise ToolkitError(f"{type(self).__name__} cannot calibrate: calibration covers image classifiers' Keras "
                           "models. Calibrate a saved one with `toolkit calibrate MODEL_DIR`.")
