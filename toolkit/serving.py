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
