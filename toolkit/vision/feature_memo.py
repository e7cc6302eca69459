"""Pooled features of the unchanged ImageNet backbone, remembered per image within a process.

A classifier whose backbone is the frozen ImageNet one of a pip package (``stores_head_only``)
computes the same pooled features for the same pixels whatever its head: training (the cached
features), calibration (validation, reference and the generated out-of-distribution images),
the test report, the export's checks and Make your own's held-out measurement all pass the same
images through it. :func:`frozen_features` computes each image's features once per process and
serves them again from memory (keyed by the backbone, the input shape and a hash of the pixels);
only the head then runs per task. Augmented copies are never remembered (they are random).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..serving import RowMemo

#: rows kept (1280 float32 features each: 5 KB; 20,000 rows about 100 MB), least recently used dropped
MAX_ROWS = 20_000
_MEMO = RowMemo(MAX_ROWS)


def _key(prefix: tuple, image: np.ndarray) -> tuple:
    return (*prefix, hashlib.sha1(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest())


def clear() -> None:
    """Forget every remembered row (tests; memory)."""
    _MEMO.clear()


def size() -> int:
    return len(_MEMO)


def uses_memo(task: Any) -> bool:
    """Whether ``task``'s features come from the unchanged ImageNet backbone of a package (and so
    may be remembered across tasks)."""
    model = getattr(task, "model_", None)
    return (model is not None and task.stores_head_only()
            and "pool" in {layer.name for layer in model.layers})


def frozen_features(task: Any, batch: np.ndarray, chunk: int = 64) -> np.ndarray:
    """The "pool" features (N, D) of ``batch`` through ``task``'s frozen ImageNet backbone,
    computing only the images not seen before in this process."""
    from ..serving import run_in_chunks

    batch = np.asarray(batch, np.float32)
    fn, fingerprint = extractor(task)
    served = served_features(task)
    if served is not None:  # the same float32 weights run by LiteRT (a served model): kept apart
        fn, fingerprint = served, f"{fingerprint}-{served.runtime}"
    prefix = (task.config.backbone, fingerprint, tuple(batch.shape[1:]))
    keys = [_key(prefix, image) for image in batch]
    rows = _MEMO.rows(keys, lambda missing: run_in_chunks(fn, batch[missing], chunk))
    if not len(keys):
        return np.zeros((0, task.model_.get_layer("pool").output.shape[-1]), np.float32)
    return np.stack(rows).astype(np.float32)


def served_features(task: Any) -> Any:
    """The LiteRT runner of ``task``'s backbone set by :func:`.litert_backbone.serve_with_litert`
    (a served model), or None: TensorFlow computes its features."""
    served = getattr(task, "_served_features", None)
    return served[1] if served is not None and served[0] is getattr(task, "model_", None) else None


def extractor(task: Any) -> tuple[Any, str]:
    """(``task``'s pixels -> pooled features traced once, a hash of its backbone's weights), kept
    on the task per model: a copy with other backbone weights (compressed, fine-tuned) never
    shares remembered rows."""
    cached = getattr(task, "_feature_fn", None)
    if cached is not None and cached[0] is task.model_:
        return cached[1], cached[2]
    import keras
    import tensorflow as tf

    from ..serving import traced

    model = task.model_
    digest = hashlib.sha1()
    for weight in model.get_layer("backbone").get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    features = keras.Model(model.inputs, model.get_layer("pool").output, name="features")
    fn = traced(features, tf.TensorSpec((None, *task.input_shape_), tf.float32))
    task._feature_fn = (model, fn, digest.hexdigest())
    return fn, task._feature_fn[2]


def head_probabilities(task: Any, features: np.ndarray) -> np.ndarray:
    """``task``'s head (the layers after "pool") on pooled features, traced once per task."""
    cached = getattr(task, "_head_fn", None)
    if cached is None or cached[0] is not task.model_:
        import tensorflow as tf

        from ..serving import traced

        head = head_model(task.model_)
        cached = (task.model_, traced(head, tf.TensorSpec((None, features.shape[-1]), tf.float32)))
        task._head_fn = cached
    from ..serving import run_in_chunks

    return run_in_chunks(cached[1], features, 1024)


def reused_backbone_writer(task: Any, model: Any, quantization: str, calibration: np.ndarray | None,
                           allow_flex: bool = False):
    """An ``ExportPlan.write`` that writes ``task``'s head into a conversion of its frozen ImageNet
    backbone made once per process (:mod:`toolkit.edge.head_swap`), or None where that does not
    apply (another backbone, a fine-tuned one, a head of more than one Dense layer, a quantization
    other than int8/dynamic, no calibration images)."""
    import keras

    from ..data.ood import ood_images
    from ..edge.head_swap import writer

    if quantization not in ("int8", "dynamic") or not uses_memo(task) or calibration is None:
        return None
    names = [layer.name for layer in task.model_.layers]
    after = task.model_.layers[names.index("pool") + 1:]
    if [layer.name for layer in after if not isinstance(layer, keras.layers.Dropout)] != ["predictions"]:
        return None
    kernel, bias = (np.asarray(w) for w in task.model_.get_layer("predictions").get_weights())
    _, fingerprint = extractor(task)
    outputs = tuple(sorted(model.output.keys())) if isinstance(model.output, dict) else ("probabilities",)
    key = ("image", task.config.backbone, fingerprint, tuple(task.input_shape_), outputs, quantization, allow_flex)

    def generic_photos() -> np.ndarray:  # crops of scikit-image's photos: nobody's examples
        side = int(max(task.input_shape_[:2]))
        return task.prepare(ood_images(n=100, seed=0, size=side, digits=False)["photos"])

    features = frozen_features(task, calibration) if quantization == "int8" else None
    return writer(key, model, quantization, kernel, bias, generic_photos, features, allow_flex)


def head_model(model):
    """The layers after the backbone's pooling as their own model (features -> probabilities),
    sharing the layers (and so the weights) of ``model``."""
    import keras

    names = [layer.name for layer in model.layers]
    pool = model.get_layer("pool")
    features = keras.Input(tuple(pool.output.shape[1:]), name="features")
    x = features
    for layer in model.layers[names.index("pool") + 1:]:
        x = layer(x)
    return keras.Model(features, x, name="head")
