"""Serving Keras models without ``model.predict``: one traced ``tf.function`` per model, run in chunks.

``model.predict`` costs about 50 ms a call (it builds a dataset and a step function each time);
``model(x, training=False)`` traced once for an input signature costs a few ms and never retraces
for another batch size. Every task serves its predictions through :func:`traced`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def traced(model: Any, *specs: Any, reduce_retracing: bool = False) -> Callable:
    """``model`` in inference mode as a ``tf.function`` traced once for these input specs.

    ``model`` is a Keras model or layer (called as ``model(x, training=False)``; several specs
    are passed to it as one list) or a plain function of the inputs, which is traced as it is.
    A spec may be a ``tf.TensorSpec`` or a dict of them (one argument of named inputs).
    """
    import keras
    import tensorflow as tf

    if not isinstance(model, keras.layers.Layer):
        fn = model
    elif len(specs) == 1:
        fn = lambda x: model(x, training=False)  # noqa: E731
    else:
        fn = lambda *xs: model(list(xs), training=False)  # noqa: E731
    return tf.function(fn, input_signature=list(specs), reduce_retracing=reduce_retracing)


def run_in_chunks(fn: Callable, x: Any, chunk: int = 256, prepare: Callable | None = None) -> np.ndarray:
    """``fn`` over ``x`` (an array or a list) ``chunk`` rows at a time, outputs joined as float32.

    ``prepare`` turns each chunk into ``fn``'s input first (e.g. texts into token ids)."""
    outputs = []
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk]
        outputs.append(np.asarray(fn(prepare(part) if prepare else part)))
    return np.concatenate(outputs).astype(np.float32)


class Memo:
    """Values made once per key within a process, the least recently used dropped past ``size``;
    thread-safe. ``get(key, make)`` is get-or-make (``make()`` runs outside the lock, so a slow make
    never blocks readers of other keys)."""

    def __init__(self, size: int):
        import collections
        import threading

        self.size = size
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return self.put(key, make())

    def peek(self, key: Any, default: Any = None) -> Any:
        """The value for ``key`` if remembered (marked as just used), else ``default``."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def values(self) -> list:
        with self._lock:
            return list(self._items.values())

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def forget(self, keep: Callable[[Any], bool] | None = None) -> None:
        """Drop every entry, or those whose key ``keep`` rejects."""
        with self._lock:
            for key in [k for k in self._items if keep is None or not keep(k)]:
                del self._items[key]


class RowMemo:
    """Computed rows (one feature vector per input) remembered by key within a process, the least
    recently used dropped past ``max_rows``; thread-safe. The feature memories of frozen backbones
    (``vision.feature_memo``, ``nlp.text_memo``) are two of these."""

    def __init__(self, max_rows: int):
        import collections
        import threading

        self.max_rows = max_rows
        self._rows: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def rows(self, keys: list, compute: Callable[[list[int]], Any]) -> list[np.ndarray]:
        """The rows for ``keys``; ``compute(indices)`` gives the rows of those not remembered."""
        with self._lock:
            found = {i: self._rows[k] for i, k in enumerate(keys) if k in self._rows}
            for i in found:
                self._rows.move_to_end(keys[i])
        missing = [i for i in range(len(keys)) if i not in found]
        if missing:
            fresh = compute(missing)
            with self._lock:
                for i, row in zip(missing, fresh):
                    found[i] = self._rows[keys[i]] = row
                while len(self._rows) > self.max_rows:
                    self._rows.popitem(last=False)
        return [found[i] for i in range(len(keys))]


def end_with_parent(poll_s: float = 1.0) -> None:
    """In a helper process (the explanation process, the training worker): end it as soon as the
    process that started it has gone, however that one ended (a killed server runs no clean-up).
    Call it first, before slow imports or warm-ups: the parent is read now, and a daemon thread
    checks every ``poll_s`` seconds whether this process has been handed to another parent."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()
