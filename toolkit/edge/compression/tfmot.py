"""The only door to tensorflow-model-optimization (TFMOT) and tf_keras: :func:`libraries`.

TFMOT 0.8 only accepts tf_keras (Keras 2) models, and importing it sets ``TF_USE_LEGACY_KERAS=1``
for the whole process; TensorFlow's lazy ``tf.keras`` aliases read that variable the first time
they are touched. :func:`libraries` pins them to Keras 3 first and restores the variable, so
Keras 3 code in the same process is not affected (tests/test_compression.py proves it against a
fresh process). Nothing is imported until the first call.
"""

from __future__ import annotations

import os

from ...errors import ExportError

_LIBRARIES: tuple | None = None


def libraries():
    """``(tf_keras, tfmot)``, imported once without changing what Keras 3 code in this process sees."""
    global _LIBRARIES
    if _LIBRARIES is not None:
        return _LIBRARIES
    import tensorflow as tf

    # TFMOT's import sets TF_USE_LEGACY_KERAS=1, and tf.keras, tf.compat.v1.keras and
    # tf.compat.v2.keras resolve (once, lazily) by that variable: resolve them now, as Keras 3.
    for alias in (lambda: tf.keras, lambda: tf.compat.v1.keras, lambda: tf.compat.v2.keras):
        try:
            alias().layers  # noqa: B018  (touching an attribute resolves the lazy alias)
        except (AttributeError, ImportError):  # pragma: no cover - an alias this TensorFlow lacks
            pass
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as exc:
        raise ExportError(
            f"Model compression needs tf-keras and tensorflow-model-optimization ({exc}). Install them: "
            "pip install 'tf-keras==2.21.*' 'tensorflow-model-optimization>=0.8.1,<0.9'."
        ) from exc
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    from tensorflow_model_optimization.python.core.keras import compat
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    if compat.keras is not tf_keras:  # pragma: no cover - TFMOT bound to another Keras
        raise ExportError(f"tensorflow-model-optimization is bound to {compat.keras.__name__}, not tf_keras.")
    # TFMOT lists RNN cells through tf.compat.v1/v2.keras, which stay Keras 3 here: add tf_keras's own.
    for cell in (tf_keras.layers.GRUCell, tf_keras.layers.LSTMCell, tf_keras.layers.SimpleRNNCell):
        PruneRegistry._RNN_CELLS_WEIGHTS_MAP.setdefault(cell, ["kernel", "recurrent_kernel"])
    _LIBRARIES = (tf_keras, tfmot)
    return _LIBRARIES


def libraries_loaded() -> bool:
    """Whether :func:`libraries` has imported tf_keras and TFMOT in this process."""
    return _LIBRARIES is not None
