"""A frozen pretrained encoder's sentence features, remembered per sentence within a process.

A text classifier on a frozen encoder (MiniLM) is the encoder's mean-pooled features and a small
head; training, the TF-IDF peer's report, the export's checks and Make your own's held-out
measurement pass the same sentences through the encoder again and again, and each new classifier
traced the encoder anew (seconds on two cores). Here the encoder is traced once per process (per
encoder and sequence length) and each sentence's features are computed once; only the head runs
per classifier.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..serving import RowMemo

MAX_ROWS = 20_000  # 384 float32 each for MiniLM: about 30 MB
_MEMO = RowMemo(MAX_ROWS)
_ENCODERS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def clear() -> None:
    _MEMO.clear()
    with _LOCK:
        _ENCODERS.clear()


def size() -> int:
    return len(_MEMO)


def _encode_fn(task: Any, key: tuple):
    with _LOCK:
        fn = _ENCODERS.get(key)
    if fn is None:
        from ..serving import traced

        _, encoder = task._pretrained()  # its backbone is load_pretrained's cached, frozen one
        fn = traced(encoder, task._token_signature())
        with _LOCK:
            _ENCODERS[key] = fn
    return fn


def encoder_features(task: Any, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Frozen-encoder features (N, hidden) of ``texts``, computing only the sentences not seen
    before in this process (in length-trimmed batches)."""
    from ..serving import run_in_chunks

    key = (str(task.config.encoder), int(task.config.sequence_length))
    rows = [key + (text,) for text in texts]
    found = _MEMO.rows(rows, lambda missing: run_in_chunks(
        _encode_fn(task, key), [texts[i] for i in missing], batch_size, task._tokens_of))
    if not rows:
        return np.zeros((0, 0), np.float32)
    return np.stack(found).astype(np.float32)


def head_probabilities(task: Any, features: np.ndarray) -> np.ndarray:
    """The classifier's head (features -> probabilities) on encoder features."""
    return np.asarray(task.model_(features, training=False), np.float32)
