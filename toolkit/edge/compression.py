"""Pruning, weight clustering and quantization-aware training for the toolkit's Keras 3 models.

tensorflow-model-optimization (TFMOT) 0.8 only accepts tf_keras (Keras 2) models, and the
toolkit's models are Keras 3. This module is the bridge, and the only module that imports
``tensorflow_model_optimization`` or ``tf_keras`` (inside functions, on first use):

1. **Twin.** :func:`to_tf_keras` walks the Keras 3 model's graph and builds the same
   architecture with tf_keras layer by layer (configs translated, nested functional backbones
   flattened), copies the weights and checks that both give the same outputs.
2. **Techniques.** Magnitude pruning (polynomial decay to a target sparsity, fine-tuned, then
   stripped), weight clustering (k-means++ or linear centroids, stripped), quantization-aware
   training, and the collaborative ones that keep earlier gains: sparsity-preserving clustering,
   pruning-preserving QAT (PQAT), cluster-preserving QAT (CQAT) and both (PCQAT).
3. **TFLite.** The result converts with the presets of :mod:`toolkit.edge.export` (builtin ops
   only; ``int8`` is full integer with int8 input and output, calibrated on training samples),
   and the file itself is read back to confirm the sparsity and the number of distinct values
   per output channel.
4. **Back to Keras 3.** Pruned and clustered weights are float: they are copied into a Keras 3
   clone of the model, which saves, loads and serves like any toolkit model.

Importing TFMOT sets ``TF_USE_LEGACY_KERAS=1`` for the whole process, and TensorFlow's lazy
``tf.keras`` aliases read that variable the first time they are touched. :func:`libraries` pins
them to Keras 3 first and restores the variable, so Keras 3 code in the same process is not
affected (tests/test_compression.py proves it against a fresh process).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import inspect
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ExportError, ModelFormatError
from ..storage import atomic_write_bytes

#: Keras layer classes the bridge translates (tf_keras has a twin of the same name).
SUPPORTED_LAYERS = (
    "InputLayer", "Resizing", "Rescaling", "Concatenate", "Add", "Conv1D", "Conv2D", "DepthwiseConv2D",
    "BatchNormalization", "ReLU", "Activation", "Softmax", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "Flatten", "Reshape", "Dense", "Dropout", "GaussianNoise", "ZeroPadding2D",
    "Embedding", "GRU", "LSTM", "SimpleRNN", "Bidirectional",
)
CLUSTER_INITS = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR"}
PARITY_TOLERANCE = 1e-5
_BASE_LAYER_KEYS = {"name", "trainable", "dtype", "activity_regularizer"}
_MISSING = object()

_LIBRARIES: tuple | None = None


# ============================================================================ the libraries


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


# ============================================================================ the bridge


@dataclasses.dataclass
class Twin:
    """A Keras 3 model's tf_keras twin and how their layers correspond.

    ``links`` holds, per twin layer with weights, the Keras 3 layer's path (names from the outer
    model in, for layers of nested backbones) and the path of the BatchNormalization folded into
    it (or None). TFMOT's strip functions keep layer names, so the links hold after compression.
    """

    model: Any
    links: list[tuple[tuple[str, ...], str, tuple[str, ...] | None]]


def to_tf_keras(model, check: np.ndarray | None = None, fold_batchnorm: bool = False) -> Twin:
    """The tf_keras twin of a Keras 3 functional model, with the same weights.

    Nested functional models (backbones) are flattened into the twin. With ``fold_batchnorm``,
    a BatchNormalization that is the only consumer of a convolution or dense layer is folded
    into it (scaled kernel and a bias), as TFLite does at conversion anyway: pruning and
    clustering then act on the weights the phone stores, so a clustered kernel keeps its shared
    values through int8 quantization. ``check`` (a batch of inputs) is run through both models;
    outputs must agree to ``PARITY_TOLERANCE``. A layer the bridge cannot translate raises
    :class:`ModelFormatError` naming it.
    """
    tfk, _ = libraries()
    graph = _functional(model)
    twins: dict[int, Any] = {}
    folds = _fold_pairs(graph) if fold_batchnorm else {}
    folded = {id(bn) for bn in folds.values()}
    links: list[tuple[Any, Any, tuple, Any]] = []  # (keras 3 layer, twin, path, folded BatchNorm and its path)
    names: set[str] = set()

    def operation_fn(op, frozen: bool = False, prefix: tuple = ()):
        if _functional_or_none(op) is not None:
            inner = _functional(op)

            def run_nested(*args, **kwargs):
                # A nested model called with training=False runs in inference mode: its
                # BatchNorm twins are frozen (tf_keras runs frozen BatchNorm in inference mode).
                nested_frozen = frozen or kwargs.get("training") is False or not op.trainable
                path = (*prefix, op.name)
                return inner._run_through_graph(args[0], lambda o: operation_fn(o, nested_frozen, path))

            return run_nested
        if id(op) in folded:
            return lambda *args, **kwargs: args[0]  # folded into the layer before it
        if type(op).__name__ in _MASK_OPS:
            # Keras 3 computes Embedding(mask_zero=True) masks as graph ops and passes them on;
            # tf_keras propagates them itself (the parity check confirms it), so these are dropped.
            return lambda *args, **kwargs: args[0]
        if id(op) not in twins:
            bn = folds.get(id(op))
            twin = _twin_layer(tfk, op, names, with_bias=bn is not None)
            if frozen and type(op).__name__ == "BatchNormalization" or not op.trainable:
                twin.trainable = False
            twins[id(op)] = twin
            links.append((op, twin, (*prefix, op.name), bn and (bn, (*prefix, bn.name))))
        twin = twins[id(op)]

        def call(*args, **kwargs):
            return twin(*args)  # training is decided by the caller; masks propagate by themselves

        return call

    inputs = [
        tfk.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=_unique(_input_name(t), names)) for t in graph.inputs
    ]
    outputs = graph._run_through_graph(inputs if len(inputs) > 1 else inputs[0], operation_fn)
    twin_model = tfk.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    for layer, twin, _, fold in links:
        weights = _folded_weights(layer, fold[0]) if fold else layer.get_weights()
        if weights:
            try:
                twin.set_weights(weights)
            except ValueError as exc:
                raise ModelFormatError(
                    f"Could not copy the weights of layer {layer.name!r} ({type(layer).__name__}) into its tf_keras "
                    f"twin: {exc}"
                ) from exc
    result = Twin(twin_model, [(path, twin.name, fold and fold[1]) for _, twin, path, fold in links if twin.weights])
    if check is not None:
        check_parity(model, twin_model, check)
    return result


def to_keras3(model, compressed, links) -> Any:
    """A Keras 3 clone of ``model`` holding the weights of ``compressed``, a stripped (pruned or
    clustered) tf_keras model made from :func:`to_tf_keras`'s twin (``links``: ``Twin.links``).
    A folded BatchNormalization becomes the identity plus the folded bias."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for path, twin_name, bn_path in links:
        try:
            weights = compressed.get_layer(twin_name).get_weights()
        except ValueError as exc:
            raise ModelFormatError(f"The compressed model lost layer {twin_name!r}: {exc}") from exc
        layer = _layer_at(clone, path)
        if bn_path is None:
            layer.set_weights(weights)
            continue
        kernel, bias = weights
        bn = _layer_at(clone, bn_path)
        shift = np.zeros_like(bias)
        if layer.use_bias:
            layer.set_weights([kernel, bias])
        else:
            layer.set_weights([kernel])
            shift = bias
        # BatchNorm(y) = gamma (y - mean) / sqrt(var + eps) + beta = y + shift
        identity = {"gamma": np.ones_like(bias), "beta": np.zeros_like(bias), "moving_mean": -shift,
                    "moving_variance": np.full_like(bias, 1.0 - bn.epsilon)}
        bn.set_weights([identity[_weight_name(w)] for w in bn.weights])
    return clone


def _layer_at(model, path: tuple[str, ...]):
    layer = model
    for name in path:
        layer = layer.get_layer(name)
    return layer


def _weight_name(variable) -> str:
    return variable.path.rsplit("/", 1)[-1] if hasattr(variable, "path") else variable.name.split(":")[0]


_FOLDABLE = ("Conv1D", "Conv2D", "DepthwiseConv2D", "Dense")
_MASK_OPS = ("NotEqual",)


def _fold_pairs(graph) -> dict[int, Any]:
    """{id(layer): BatchNormalization} for each conv/dense layer (linear, called once) whose output
    only a last-axis BatchNormalization reads, in ``graph`` and its nested models."""
    pairs: dict[int, Any] = {}
    consumers: dict[int, int] = {}
    nodes = [node for depth in graph._nodes_by_depth.values() for node in depth]
    for node in nodes:
        for tensor in node.input_tensors:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    for node in nodes:
        op = node.operation
        if _functional_or_none(op) is not None:
            pairs.update(_fold_pairs(_functional(op)))
            continue
        if type(op).__name__ != "BatchNormalization" or len(node.input_tensors) != 1:
            continue
        source = node.input_tensors[0]
        producer = source._keras_history.operation
        axis = op.axis if isinstance(op.axis, int) else op.axis[0] if len(op.axis) == 1 else None
        if (
            type(producer).__name__ in _FOLDABLE
            and getattr(producer, "activation", None) is not None
            and producer.activation.__name__ == "linear"
            and len(producer._inbound_nodes) == 1
            and consumers.get(id(source)) == 1
            and axis in (-1, len(source.shape) - 1)
            and op.trainable == producer.trainable
        ):
            pairs[id(producer)] = op
    return pairs


def _folded_weights(layer, bn) -> list[np.ndarray]:
    """Kernel and bias of ``layer`` followed by ``bn`` (inference mode) as one layer."""
    weights = {_weight_name(w): np.asarray(w.numpy() if hasattr(w, "numpy") else w) for w in bn.weights}
    mean, variance = weights["moving_mean"], weights["moving_variance"]
    gamma = weights.get("gamma", np.ones_like(mean))
    beta = weights.get("beta", np.zeros_like(mean))
    scale = gamma / np.sqrt(variance + bn.epsilon)
    kernel = np.asarray(layer.kernel if not hasattr(layer, "depthwise_kernel") else layer.depthwise_kernel)
    bias = np.asarray(layer.bias) if layer.use_bias else np.zeros_like(mean)
    if type(layer).__name__ == "DepthwiseConv2D":  # (h, w, in, multiplier): output channel in * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale
    return [kernel.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]


def check_parity(model, twin, x: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> float:
    """Largest difference between the Keras 3 model's and its twin's outputs on ``x``."""
    ours = np.asarray(model(x, training=False))
    theirs = np.asarray(twin(x, training=False))
    diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    if not diff <= tolerance:
        raise ModelFormatError(
            f"The tf_keras twin of {model.name!r} does not reproduce it: outputs differ by up to {diff:.2e} "
            f"(tolerance {tolerance:.0e}). A layer translated differently; compression would not be faithful."
        )
    return diff


def _functional_or_none(op):
    from keras.src.ops.function import Function

    if isinstance(op, Function):
        return op
    return getattr(op, "_functional", None)  # a Sequential wraps a Functional


def _functional(model):
    graph = _functional_or_none(model)
    if graph is None or not hasattr(graph, "_run_through_graph"):
        raise ModelFormatError(
            f"The compression bridge needs a functional or Sequential Keras model. Received "
            f"{type(model).__name__} {getattr(model, 'name', '')!r} (a subclassed model has no graph to translate)."
        )
    return graph


def _input_name(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    return getattr(history[0], "name", None) if history else "input"


def _unique(name: str, names: set[str]) -> str:
    candidate, i = name, 1
    while candidate in names:
        candidate, i = f"{name}_{i}", i + 1
    names.add(candidate)
    return candidate


def _unsupported(layer, why: str) -> ModelFormatError:
    kind = type(layer)
    return ModelFormatError(
        f"The compression bridge cannot translate layer {layer.name!r} ({kind.__module__}.{kind.__name__}): {why} "
        f"Supported layers: {', '.join(SUPPORTED_LAYERS)}."
    )


def _twin_layer(tfk, layer, names: set[str], with_bias: bool = False):
    import keras

    kind = type(layer).__name__
    if not isinstance(layer, keras.layers.Layer):
        raise _unsupported(layer, "it is a raw Keras operation, not a layer; wrap it in a supported layer.")
    if kind not in SUPPORTED_LAYERS or not type(layer).__module__.startswith("keras."):
        raise _unsupported(layer, "it has no tf_keras twin here.")
    twin_class = getattr(tfk.layers, kind)
    config = _translate_config(layer, twin_class)
    config["name"] = _unique(layer.name, names)
    if with_bias:
        config["use_bias"] = True
    if kind == "Bidirectional":
        config["layer"] = _serialized_twin(tfk, layer.forward_layer)
        config["backward_layer"] = _serialized_twin(tfk, layer.backward_layer)
    try:
        return twin_class.from_config(config)
    except (TypeError, ValueError) as exc:  # e.g. an activation tf_keras does not have (hard_silu)
        raise _unsupported(layer, f"tf_keras cannot rebuild it ({str(exc).splitlines()[-1].strip()}).") from exc


def _serialized_twin(tfk, layer) -> dict:
    kind = type(layer).__name__
    if kind not in SUPPORTED_LAYERS or not type(layer).__module__.startswith("keras."):
        raise _unsupported(layer, "it has no tf_keras twin here.")
    return {"class_name": kind, "config": _translate_config(layer, getattr(tfk.layers, kind))}


def _accepted_keys(twin_class) -> set[str]:
    keys = set(_BASE_LAYER_KEYS)
    for cls in twin_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                keys.add(p.name)
    return keys


def _keras3_defaults(layer) -> dict:
    defaults = {}
    for cls in reversed(type(layer).__mro__):
        init = cls.__dict__.get("__init__")
        if init is not None:
            for p in inspect.signature(init).parameters.values():
                if p.default is not p.empty:
                    defaults[p.name] = p.default
    return defaults


def _translate_config(layer, twin_class) -> dict:
    """A Keras 3 layer config as its tf_keras twin takes it; options tf_keras lacks are dropped
    only while they are at their Keras 3 default (else the layer is reported as unsupported)."""
    config = layer.get_config()
    accepted = _accepted_keys(twin_class)
    defaults = _keras3_defaults(layer)
    out: dict = {}
    for key, value in config.items():
        if key in ("layer", "backward_layer"):
            continue  # Bidirectional: translated by the caller
        if key == "dtype":
            out[key] = _dtype_name(value)
        elif key.endswith("_initializer"):
            continue  # the weights are copied: initializers play no part
        elif key not in accepted:
            if value == defaults.get(key, _MISSING) or (key == "data_format" and value == "channels_last"):
                continue  # an option tf_keras lacks, left unused
            raise _unsupported(layer, f"its option {key}={value!r} has no tf_keras equivalent.")
        else:
            out[key] = _plain(value)
    return out


def _dtype_name(value) -> str:
    if isinstance(value, dict):
        return value.get("config", {}).get("name", "float32")
    return value if isinstance(value, str) else "float32"


def _plain(value):
    """Keras 3 serialized objects ({"module", "class_name", "config", ...}) as tf_keras reads them."""
    if isinstance(value, dict) and "class_name" in value:
        return {"class_name": value["class_name"], "config": _plain(value.get("config", {}))}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ============================================================================ techniques


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """What :func:`compress` does, in this order: prune, cluster, quantization-aware training.

    prune: target sparsity of the prunable kernels (convolution, dense, embedding), in (0, 1),
        reached by polynomial decay over the first 2/3 of the fine-tuning steps, then held.
    cluster: distinct values (centroids) per kernel, >= 2. BatchNorm is first folded into the
        layer before it, so the shared values are those of the file's kernels; after pruning the
        zeros stay zero (sparsity-preserving clustering).
    qat: 8-bit quantization-aware training; pruning-preserving (PQAT) after pruning,
        cluster-preserving (CQAT) after clustering, both (PCQAT) after both. Makes an int8 file.
    quantization: the .tflite preset (``float32``, ``float16``, ``dynamic``, ``int8``); default:
        ``int8`` where the model takes float inputs (vision), ``dynamic`` for token ids (text).
    epochs, learning_rate, batch_size: fine-tuning of each technique (Adam); QAT uses the smaller
        ``qat_learning_rate`` (it only has to adapt to quantization noise).
    cluster_init: initial centroids, ``"linear"`` (evenly spaced; measured on digits: accuracy as
        good as ``"kmeans++"``'s and a 14% smaller gzipped int8 file) or ``"kmeans++"``.
    per_channel: int8 weight scales per output channel (True) or per tensor (False; a clustered
        kernel then keeps exactly its shared values, and sparse kernels compress better). ``None``:
        per tensor when its predictions agree with the float model on the training samples as
        well as per channel's do, else per channel.
    """

    prune: float | None = None
    cluster: int | None = None
    qat: bool = False
    quantization: str | None = None
    epochs: int = 6
    learning_rate: float = 3e-4
    qat_learning_rate: float = 3e-5
    batch_size: int = 32
    cluster_init: str = "linear"
    per_channel: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from .export import check_quantization

        if self.prune is not None and not (isinstance(self.prune, (int, float)) and 0 < float(self.prune) < 1):
            raise ValueError(f"prune is a target sparsity in (0, 1), e.g. 0.8. Received {self.prune!r}.")
        if self.cluster is not None and (not isinstance(self.cluster, (int, np.integer)) or self.cluster < 2):
            raise ValueError(f"cluster is a number of clusters >= 2, e.g. 16. Received {self.cluster!r}.")
        if self.quantization is not None:
            check_quantization(self.quantization)
        if self.qat and self.quantization not in (None, "int8"):
            raise ValueError(f"qat=True makes an int8 file. Received quantization={self.quantization!r}.")
        if self.cluster_init not in CLUSTER_INITS:
            raise ValueError(f"Unknown cluster_init {self.cluster_init!r}. Valid names: {list(CLUSTER_INITS)}.")
        for name in ("epochs", "batch_size", "learning_rate", "qat_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0. Received {getattr(self, name)!r}.")
        if not (self.prune or self.cluster or self.qat):
            raise ValueError("Choose at least one technique: prune=<sparsity>, cluster=<clusters> or qat=True. "
                             "For plain quantization use task.export(quantization=...).")

    @property
    def name(self) -> str:
        """The variant's name: techniques then preset, e.g. ``pruned_clustered_qat_int8``."""
        parts = [p for p, on in (("pruned", self.prune), ("clustered", self.cluster), ("qat", self.qat)) if on]
        return "_".join(parts + [self.quantization or "int8"])

    @property
    def file(self) -> str:
        return f"model_{self.name}.tflite"

    def techniques(self) -> dict:
        return {"prune": self.prune, "cluster": self.cluster, "qat": self.qat, "quantization": self.quantization}


@dataclasses.dataclass
class TrainingData:
    """Fine-tuning data in the model's input format: ``x`` (raw pixels, token ids) and labels
    ``y``, with an optional augmentation (a Keras layer) applied to training batches."""

    x: np.ndarray
    y: np.ndarray
    augment: Any = None

    def steps(self, batch_size: int) -> int:
        return max(1, -(-len(self.x) // batch_size))

    def dataset(self, batch_size: int, seed: int):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.x, self.y))
        ds = ds.shuffle(len(self.x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
        if self.augment is not None:
            augment = self.augment
            ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)


def prune(model, train: TrainingData, config: CompressionConfig):
    """Magnitude pruning of a tf_keras model: sparsity rises from 0 to ``config.prune``
    (PolynomialDecay) over the first 2/3 of the fine-tuning steps, then holds; the model comes
    back stripped of the pruning wrappers."""
    tfk, tfmot = libraries()
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    sparsity = tfmot.sparsity.keras
    steps_per_epoch = train.steps(config.batch_size)
    total = config.epochs * steps_per_epoch
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(config.prune), begin_step=0,
        end_step=max(1, (2 * total) // 3), frequency=max(1, steps_per_epoch // 4),
    )

    def wrap(layer):
        if _kernels(layer) and PruneRegistry.supports(layer):
            return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = _clone(tfk, model, wrap)
    _fine_tune(pruned, train, config.epochs, config.learning_rate, config, [sparsity.UpdatePruningStep()])
    return sparsity.strip_pruning(pruned)


def cluster(model, train: TrainingData, config: CompressionConfig, preserve_sparsity: bool = False):
    """Weight clustering of a tf_keras model: each kernel keeps ``config.cluster`` distinct values
    (centroids fine-tuned with the rest); with ``preserve_sparsity`` zeros stay zero. Stripped."""
    tfk, tfmot = libraries()
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import ClusteringRegistry
    from tensorflow_model_optimization.python.core.clustering.keras.experimental import cluster as experimental

    clustering = tfmot.clustering.keras
    init = getattr(clustering.CentroidInitialization, CLUSTER_INITS[config.cluster_init])
    clusters = int(config.cluster)

    def wrap(layer):
        kernels = _kernels(layer)
        if not kernels or not ClusteringRegistry.supports(layer) or min(int(np.prod(k.shape)) for k in kernels) <= clusters:
            return layer  # too few weights to share out
        return experimental.cluster_weights(layer, number_of_clusters=clusters, cluster_centroids_init=init,
                                            preserve_sparsity=preserve_sparsity)

    clustered = _clone(tfk, model, wrap)
    _fine_tune(clustered, train, config.epochs, config.learning_rate, config, [])
    return clustering.strip_clustering(clustered)


def quantization_aware(model, train: TrainingData, config: CompressionConfig):
    """8-bit quantization-aware training of a tf_keras model, preserving what earlier steps made:
    zeros (PQAT), shared values (CQAT) or both (PCQAT). Layers without weights that TFMOT's 8-bit
    scheme does not list (Resizing, Rescaling, ...) stay float and unannotated; the converter
    calibrates them on the representative samples. Returns the trained QAT model."""
    tfk, tfmot = libraries()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (  # noqa: E501
        Default8BitQuantizeRegistry,
    )

    quantize = tfmot.quantization.keras
    default = Default8BitQuantizeRegistry()
    unsupported = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
                   if layer.weights and not default.supports(layer) and type(layer).__name__ != "BatchNormalization"]
    if unsupported:
        raise ExportError(
            f"Quantization-aware training cannot quantize {', '.join(unsupported)}: among layers with weights, "
            "TFMOT's 8-bit scheme quantizes Conv2D, DepthwiseConv2D, Dense and BatchNormalization after a "
            "convolution. Compress without qat (pruning and clustering work on these layers)."
        )
    annotated = _clone(tfk, model, lambda layer: quantize.quantize_annotate_layer(layer)
                       if default.supports(layer) or type(layer).__name__ == "BatchNormalization" else layer)
    combine = tfmot.experimental.combine
    if config.cluster:
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=bool(config.prune))
    elif config.prune:
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = quantize.default_8bit.Default8BitQuantizeScheme()
    registry = scheme.get_quantize_registry()
    # The collaborative registries claim every layer without weights, then fail on Resizing and
    # Rescaling: let them claim only what the default 8-bit registry quantizes.
    claims = registry.supports
    registry.supports = lambda layer: default.supports(layer) and claims(layer)
    scheme.get_quantize_registry = lambda: registry
    with quantize.quantize_scope():
        trained = quantize.quantize_apply(annotated, scheme)
    _fine_tune(trained, train, config.epochs, config.qat_learning_rate, config, [])
    return trained


def _kernels(layer) -> list:
    return [w for w in layer.trainable_weights if "kernel" in w.name or "embeddings" in w.name]


def _clone(tfk, model, clone_function):
    """``model`` rebuilt with ``clone_function`` applied to fresh copies of its layers (TFMOT's
    wrappers train the layers they wrap: the model passed in keeps its weights)."""
    copy = tfk.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return tfk.models.clone_model(copy, clone_function=clone_function)


def _fine_tune(model, train: TrainingData, epochs: int, learning_rate: float, config: CompressionConfig,
               callbacks: list) -> None:
    tfk, _ = libraries()
    tfk.utils.set_random_seed(config.seed)
    model.compile(optimizer=tfk.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # Clustered kernels are computed from centroids and indices, so TensorFlow notes once per epoch
    # that the original kernel variables get no gradient (clustering and cluster-preserving QAT):
    # expected, and silenced; other warnings pass.
    logger = logging.getLogger("tensorflow")
    no_gradient_note = _DropMessages("Gradients do not exist for variables")
    logger.addFilter(no_gradient_note)
    try:
        model.fit(train.dataset(config.batch_size, config.seed), epochs=epochs, callbacks=callbacks, verbose=0)
    finally:
        logger.removeFilter(no_gradient_note)


class _DropMessages(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefix)


# ============================================================================ TFLite


def convert_twin(model, quantization: str, representative: np.ndarray | None = None,
                 per_channel: bool = True) -> bytes:
    """A tf_keras (or TFMOT) model to TFLite bytes with the presets of :mod:`toolkit.edge.export`
    (builtin ops only). ``per_channel=False`` gives int8 kernels one scale per tensor."""
    import tensorflow as tf

    from .export import conversion_error, converter_settings

    settings = converter_settings(quantization, representative)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    for key, value in settings.items():
        if key == "target_spec":
            for spec_key, spec_value in value.items():
                setattr(converter.target_spec, spec_key, spec_value)
        else:
            setattr(converter, key, value)
    if not per_channel:
        converter._experimental_disable_per_channel = True  # no public switch in TF 2.21
    try:
        with warnings.catch_warnings():  # QAT models carry their own input ranges
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return converter.convert()
    except Exception as exc:  # the converter raises ConverterError and friends
        raise conversion_error(exc, allow_flex=False) from exc


def weight_stats(path: str | os.PathLike) -> dict:
    """The .tflite file's kernels as the LiteRT interpreter reads them: how many, the share of
    zeros, and the most distinct values in one output channel and in one kernel. Kernels are the
    constant tensors of rank >= 2 with >= 64 values (biases and quantization scales are left out)."""
    from .runner import open_interpreter

    interpreter = open_interpreter(Path(path))
    produced = {int(i) for op in interpreter._get_ops_details() for i in op["outputs"]}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    zeros = total = kernels = per_channel = per_kernel = 0
    for detail in interpreter.get_tensor_details():
        shape = detail["shape"]
        if detail["index"] in produced or detail["index"] in inputs or len(shape) < 2 or int(np.prod(shape)) < 64:
            continue
        try:
            values = interpreter.get_tensor(detail["index"])
        except ValueError:  # pragma: no cover - a tensor without data
            continue
        if values.dtype not in (np.int8, np.float32, np.float16):
            continue
        kernels += 1
        zeros += int(np.count_nonzero(values == 0))
        total += values.size
        per_kernel = max(per_kernel, len(np.unique(values)))
        per_channel = max(per_channel, max(len(np.unique(row)) for row in values.reshape(values.shape[0], -1)))
    return {"kernels": kernels, "sparsity": round(zeros / total, 4) if total else 0.0,
            "max_values_per_channel": per_channel, "max_values_per_kernel": per_kernel}


def gzip_size(path: str | os.PathLike) -> int:
    """Bytes of the file gzipped (level 9): what a download or an app package carries."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


# ============================================================================ the pipeline


class Pipeline:
    """One Keras 3 model and its data, compressed in stages that later variants reuse (the
    pruned model is the start of pruned + clustered). Every stage goes Keras 3 -> tf_keras twin
    (checked) -> TFMOT -> stripped -> Keras 3, so each stage's float weights are a Keras 3 model."""

    def __init__(self, model, train: TrainingData, representative: np.ndarray, check: np.ndarray | None = None):
        self.model = model
        self.train = train
        self.representative = representative
        self.check = representative[:64] if check is None else check  # the twins' output check
        self._keras: dict = {(None, None): model}
        self._twins: dict = {}
        self._reference: np.ndarray | None = None

    def keras_model(self, config: CompressionConfig):
        """The Keras 3 model after ``config``'s pruning and clustering (float weights)."""
        key = (config.prune, config.cluster)
        if key not in self._keras:
            if config.cluster:
                start = self.keras_model(dataclasses.replace(config, cluster=None, qat=False)) if config.prune \
                    else self.model
                twin = to_tf_keras(start, self.check, fold_batchnorm=True)
                done = cluster(twin.model, self.train, config, preserve_sparsity=bool(config.prune))
            else:
                start = self.model
                twin = to_tf_keras(start, self.check)
                done = prune(twin.model, self.train, config)
            self._keras[key] = to_keras3(start, done, twin.links)
            self._twins[key] = done
        return self._keras[key]

    def tflite(self, config: CompressionConfig) -> tuple[bytes, bool | None]:
        """The variant's .tflite bytes and whether its int8 scales are per channel (None: not int8).
        Per tensor is chosen (``per_channel=None``) when it agrees with the float model on the
        training samples to within 0.2 points of per channel."""
        keras_model = self.keras_model(config)
        key = (config.prune, config.cluster)
        quantization = config.quantization or "int8"
        if config.qat:
            # Unfolded: TFMOT's 8-bit scheme quantizes a convolution's kernel when BatchNorm follows
            # it, but not when a ReLU does (its LayerReLUQuantize transform). After clustering the
            # BatchNorms are identities (folded into the kernels): frozen, they stay so.
            twin = to_tf_keras(keras_model, self.check)
            if config.cluster:
                for layer in twin.model.layers:
                    if type(layer).__name__ == "BatchNormalization":
                        layer.trainable = False
            model = quantization_aware(twin.model, self.train, config)
            return convert_twin(model, quantization, self.representative), True
        model = self._twins[key]  # prune and/or cluster: keras_model() made it
        if quantization != "int8":
            return convert_twin(model, quantization, self.representative), None
        if config.per_channel is not None:
            return convert_twin(model, quantization, self.representative, config.per_channel), config.per_channel
        per_channel = convert_twin(model, quantization, self.representative, True)
        per_tensor = convert_twin(model, quantization, self.representative, False)
        if self._agreement(per_tensor) >= self._agreement(per_channel) - 0.002:
            return per_tensor, False
        return per_channel, True

    def _agreement(self, data: bytes) -> float:
        """Top-1 agreement of a .tflite with the float Keras model on the representative samples."""
        import tempfile

        from .runner import TFLiteModel

        if self._reference is None:
            self._reference = np.asarray(self.model(self.representative, training=False)).argmax(-1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.tflite"
            path.write_bytes(data)
            predictions = TFLiteModel(path, card={}).run(self.representative).argmax(-1)
        return float(np.mean(predictions == self._reference))


# ============================================================================ tasks


class _ImageTask:
    """What compression needs of an ImageClassifier: the model, data in its input format."""

    quantization = "int8"

    def __init__(self, task, data: Any):
        from ..data.images import BUILTIN_IMAGE_SETS, Splits, load_digits, load_splits, resolve_image_data

        height, width, channels = task.input_shape_
        if data is None:
            data = task.reload_data()
        if isinstance(data, str) and data in BUILTIN_IMAGE_SETS:
            data = load_digits()
        elif isinstance(data, (str, os.PathLike)):
            data = load_splits(data, (height, width), test_size=0.2, seed=42)
        if not isinstance(data, Splits):
            raise DataError(
                "Compression fine-tunes on training images and checks every file on test images. Pass data= "
                f"'digits', a folder with one subfolder per class, or Splits (train and test). Received "
                f"{'nothing, and the card names no data to reload' if data is None else type(data).__name__}."
            )
        train = resolve_image_data(data.train, "train", (height, width), channels, task.class_names_)
        self.task, self.data = task, data
        self.model = task.model_
        augment = task.augment_ if task.augment_ not in (None, "none") else None
        self.train = TrainingData(train.x.astype(np.float32), train.y.astype(np.int64),
                                  task._augmenter(augment) if augment else None)
        self.representative = self.train.x
        test = task._resolve_eval(data.test)
        self.test_inputs, self.test_y = test.x, test.y

    @functools.cached_property
    def keras_probs(self) -> np.ndarray:
        """The float Keras model's probabilities on the test inputs (every file is compared with them)."""
        return self.task.predict_proba(self.test_inputs)

    def keras_task(self, model):
        """A copy of the task serving ``model`` (same architecture, compressed weights)."""
        return _task_copy(self.task, model)

    def prepare_folder(self, directory: Path) -> None:
        """Files a .tflite of this task needs beside it."""


class _TextTask(_ImageTask):
    """A from-scratch TextClassifier: its token-id core (unrolled, as phones run it)."""

    quantization = "dynamic"

    def __init__(self, task, data: Any):
        from ..data.text import TextSplits, load_text, text_splits

        if not task.config.from_scratch:
            raise ExportError(
                f"Compression supports the from-scratch text encoders (bigru, cnn); {task.config.encoder!r} is a "
                "pretrained KerasHub encoder whose layers have no tf_keras twin. Export it with "
                "quantization='dynamic' (int8 weights) instead."
            )
        if data is None:
            data = task.reload_data()
        elif isinstance(data, (str, os.PathLike)):
            spec = task.data_spec_ or {}
            data = text_splits(load_text(data, text_column=spec.get("text_column"),
                                         label_column=spec.get("label_column"),
                                         label_names=spec.get("label_names")), 0.2, 42)
        if not isinstance(data, TextSplits):
            raise DataError(
                "Compression fine-tunes on training texts and checks every file on test texts. Pass data= a text "
                "file or folder (split 80/20 like `toolkit train nlp`) or TextSplits. Received "
                f"{'nothing, and the card names no data to reload' if data is None else type(data).__name__}."
            )
        tokenizer = task._word_tokenizer()
        self.task, self.data = task, data
        self.model = task._ids_model()
        train = task._resolve_eval(data.train)
        self.train = TrainingData(tokenizer.encode(train.texts).astype(np.int32), train.y.astype(np.int64))
        self.representative = self.train.x
        test = task._resolve_eval(data.test)
        self.test_inputs, self.test_y = test.texts, test.y

    def keras_task(self, model):
        core = f"text_core_{self.task.config.encoder}"
        full = _copy_keras_model(self.task.model_)
        full.get_layer(core).set_weights(model.get_weights())
        return _task_copy(self.task, full)

    def prepare_folder(self, directory: Path) -> None:
        self.task._write_vocab(directory)


_TASKS = {"vision": _ImageTask, "nlp": _TextTask}
_UNSUPPORTED = {
    "timeseries": "the forecaster's in-model scaling and quantile head are toolkit layers (WindowScaler, "
                  "QuantileHead) without tf_keras twins, and it is trained on a pinball loss, not classes",
    "anomaly": "the autoencoder's standardization and reconstruction-error layers are toolkit layers "
               "(AnomalyStandardize, ReconstructionError) without tf_keras twins, and it is not a classifier",
    "seq2seq": "the date translator's attention decoder runs a step loop outside one Keras graph",
}


def _task_adapter(task, data: Any):
    kind = _TASKS.get(task.task_name)
    if kind is None:
        why = _UNSUPPORTED.get(task.task_name, "it is not a classifier this module knows")
        raise ExportError(
            f"Compression does not support {type(task).__name__} models: {why}. Supported: image classifiers "
            "(small_cnn, lenet5, mobilenet_v2, ...) and from-scratch text classifiers (bigru, cnn). Export with "
            "quantization='float16' or 'dynamic' instead."
        )
    task._check_fitted()
    return kind(task, data)


def _task_copy(task, model):
    import copy

    clone = copy.copy(task)
    clone.model_, clone._serve = model, None
    clone.tflite_, clone.compression_, clone.directory_ = [], None, None
    clone.metrics_ = dict(task.metrics_)
    return clone


def _copy_keras_model(model):
    """An independent copy (a .keras round trip: preprocessing layers keep their vocabularies)."""
    import tempfile

    import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "copy.keras"
        model.save(path)
        return keras.saving.load_model(path, safe_mode=True)


# ============================================================================ compress


@dataclasses.dataclass
class CompressionResult:
    """One compressed variant: its .tflite file and card entry, and the Keras 3 model holding
    the compressed float weights (pruned/clustered; the original weights after QAT alone)."""

    config: CompressionConfig
    path: Path
    entry: dict
    model: Any
    seconds: float

    @property
    def metrics(self) -> dict:
        keys = ("test_accuracy", "agreement_with_keras", "size_bytes", "gzip_bytes", "latency_ms_p50", "sparsity",
                "max_values_per_channel", "max_values_per_kernel")
        return {k: self.entry[k] for k in keys if k in self.entry}


def compress(task, data: Any = None, prune: float | None = None, cluster: int | None = None, qat: bool = False,
             out: str | os.PathLike | None = None, command: str | None = None, **options: Any) -> CompressionResult:
    """Prune, cluster and/or quantization-aware train a fitted task, and write the .tflite.

    ``data``: training data to fine-tune on and test data to check on (default: the data the
    model was trained on, from its card). ``options``: the other :class:`CompressionConfig`
    fields (``quantization``, ``epochs``, ``learning_rate``, ``cluster_init``, ...).

    Without ``out`` the file (``model_<variant>.tflite``) goes into the task's own folder and its
    card. With ``out`` a new model folder is written: the Keras model with the compressed float
    weights (it loads, serves and explains like any toolkit model), the .tflite and the card, whose
    ``command`` is ``command`` (the CLI passes its own; default: the equivalent CLI command).
    """
    config = CompressionConfig(prune=prune, cluster=cluster, qat=qat, **options)
    adapter = _task_adapter(task, data)
    config = _resolve(config, adapter)
    directory = _own_folder(task) if out is None else None  # before minutes of fine-tuning
    start = time.perf_counter()
    pipeline = Pipeline(adapter.model, adapter.train, adapter.representative)
    keras_model = pipeline.keras_model(config)
    if out is None:
        owner = task
    else:
        owner = adapter.keras_task(keras_model)
        owner.command_ = command or _command(task, config, out)
        owner.metrics_ = {"test_" + k: v for k, v in owner.report(adapter.data.test).metrics.items() if "/" not in k}
        directory = owner.save(out)
    adapter.prepare_folder(directory)
    path, entry = _write_variant(pipeline, adapter, config, directory)
    entry["compression"]["source"] = str(task.directory_) if task.directory_ else None
    seconds = round(time.perf_counter() - start, 1)
    section = dict(owner.compression_ or {})
    rows = [r for r in section.get("variants", []) if r["variant"] != config.name]
    owner.compression_ = {**section, "variants": rows + [_row(config.name, entry, seconds)], **_section_facts(adapter)}
    owner._record_export(directory, entry)  # the file's entry in the card's tflite list; writes the card
    return CompressionResult(config, path, entry, keras_model, seconds)


def _resolve(config: CompressionConfig, adapter) -> CompressionConfig:
    quantization = config.quantization or ("int8" if config.qat else adapter.quantization)
    if quantization == "int8" and adapter.quantization != "int8":
        raise ExportError(
            f"{type(adapter.task).__name__} files take token ids: full-integer int8 (and so QAT) would quantize "
            "the ids themselves. Use quantization='dynamic' (int8 weights) or 'float16' with prune/cluster."
        )
    return dataclasses.replace(config, quantization=quantization)


def _own_folder(task) -> Path:
    if task.directory_ is None:
        raise ExportError("Pass out=<folder> for the compressed model, or save() the model first.")
    return Path(task.directory_)


def _command(task, config: CompressionConfig, out) -> str:
    parts = ["toolkit compress", str(task.directory_ or "<model>")]
    if config.prune:
        parts.append(f"--prune {config.prune}")
    if config.cluster:
        parts.append(f"--cluster {config.cluster}")
    if config.qat:
        parts.append("--qat")
    return " ".join(parts + [f"--out {out}"])


def _write_variant(pipeline: "Pipeline", adapter, config: CompressionConfig, directory: Path) -> tuple[Path, dict]:
    """Write the variant's .tflite into ``directory``; its card entry (measured, with the techniques)."""
    tflite, per_channel = pipeline.tflite(config)
    path = atomic_write_bytes(directory / config.file, tflite)
    entry = _measure(adapter, path, config.quantization)
    entry["compression"] = {**config.techniques(), "per_channel": per_channel, "epochs": config.epochs,
                            "cluster_init": config.cluster_init if config.cluster else None}
    return path, entry


def _measure(adapter, path: Path, quantization: str) -> dict:
    """The card entry of a .tflite file: what export records, plus its gzipped size and weights."""
    from .export import tflite_entry
    from .runner import TFLiteModel, classifier_checks

    task = adapter.task
    entry = tflite_entry(path, quantization)
    runner = TFLiteModel(path, card={**task._card_extra(), "task": task.task_name})
    entry.update(runner.quantization)
    entry["latency_ms_p50"] = round(runner.latency_ms(runner._prepare(adapter.test_inputs[:1])), 4)
    entry.update(classifier_checks(adapter.keras_probs, runner.predict_proba(adapter.test_inputs), adapter.test_y))
    return {**entry, **_file_facts(path)}


def _file_facts(path: Path) -> dict:
    return {"gzip_bytes": gzip_size(path), **{k: v for k, v in weight_stats(path).items() if k != "kernels"}}


# ============================================================================ the report

REPORT_PRESETS = ("float32", "float16", "dynamic", "int8")
_COLUMNS = (
    ("variant", "variant", "{}"), ("file", "file", "`{}`"), ("test_accuracy", "test accuracy", "{:.4f}"),
    ("size_bytes", "size", "{}"), ("gzip_bytes", "gzipped", "{}"), ("gzip_vs_float32", "gzipped vs float32",
                                                                    "{:.3f}x"),
    ("latency_ms_p50", "latency p50", "{:.3f} ms"), ("agreement_with_keras", "agreement with float", "{:.4f}"),
    ("sparsity", "zeros", "{:.0%}"), ("max_values_per_channel", "values per channel (max)", "{}"),
)


@dataclasses.dataclass
class CompressionReport:
    """Every variant of one model side by side (the ``compression`` section of its card)."""

    section: dict

    @property
    def variants(self) -> list[dict]:
        return self.section["variants"]

    def to_dict(self) -> dict:
        return dict(self.section)

    def markdown(self) -> str:
        return report_markdown(self.section)


def compression_report(task, data: Any = None, prune: float = 0.8, cluster: int = 16, **options: Any
                       ) -> CompressionReport:
    """Every variant of a saved task side by side, written into its folder and card: the plain
    presets (float32, float16, dynamic, int8 PTQ) and the compressed ones (int8 QAT, pruned +
    int8, clustered + int8, pruned + clustered + QAT int8; text models: pruned / clustered /
    both with dynamic-range weights). Each with test accuracy, size, gzipped size, one-sample
    LiteRT latency, agreement with the float Keras model, share of zeros and values per channel."""
    chosen = CompressionConfig(prune=prune, cluster=cluster, **options)  # checks the settings first
    adapter = _task_adapter(task, data)
    directory = _own_folder(task)
    start = time.perf_counter()
    pipeline = Pipeline(adapter.model, adapter.train, adapter.representative)
    rows = []
    for quantization in REPORT_PRESETS:
        if quantization == "int8" and adapter.quantization != "int8":
            continue
        began = time.perf_counter()
        path = task.export(directory, quantization=quantization, data=adapter.data)
        entry = next(e for e in task.tflite_ if e["file"] == path.name)
        entry.update(_file_facts(path))
        rows.append(_row(quantization, entry, time.perf_counter() - began))
    adapter.prepare_folder(directory)
    for techniques in _report_techniques(adapter, prune, cluster):
        began = time.perf_counter()
        config = _resolve(CompressionConfig(**techniques, **options), adapter)
        path, entry = _write_variant(pipeline, adapter, config, directory)
        task._record_export(directory, entry)
        rows.append(_row(config.name, entry, time.perf_counter() - began))
    settings = {k: v for k, v in dataclasses.asdict(chosen).items() if k not in ("qat", "quantization")}
    section = {"variants": rows, "seconds": round(time.perf_counter() - start, 1), "settings": settings,
               **_section_facts(adapter)}
    task.compression_ = section
    task.write_card(directory)
    return CompressionReport(section)


def _report_techniques(adapter, prune: float, cluster: int) -> list[dict]:
    if adapter.quantization == "int8":
        return [{"qat": True}, {"prune": prune}, {"cluster": cluster}, {"prune": prune, "cluster": cluster, "qat": True}]
    return [{"prune": prune}, {"cluster": cluster}, {"prune": prune, "cluster": cluster}]


def _row(variant: str, entry: dict, seconds: float) -> dict:
    keys = ("file", "quantization", "test_accuracy", "agreement_with_keras", "size_bytes", "gzip_bytes",
            "latency_ms_p50", "sparsity", "max_values_per_channel", "max_values_per_kernel", "n_test")
    row = {"variant": variant, **{k: entry[k] for k in keys if k in entry}}
    row["techniques"] = entry.get("compression", {"quantization": entry.get("quantization")})
    row["seconds"] = round(seconds, 1)
    return row


def _section_facts(adapter) -> dict:
    return {"keras_test_accuracy": float(np.mean(adapter.keras_probs.argmax(-1) == adapter.test_y)),
            "n_test": int(len(adapter.test_y)), "data": getattr(adapter.data, "spec", None),
            "note": "agreement: top-1 agreement with the float Keras model on the test split; zeros and values per "
                    "channel: read from the file's kernels with the LiteRT interpreter"}


def report_markdown(section: dict) -> str:
    """The ``compression`` section of a card as a Markdown table (what `toolkit compress --report` prints)."""
    rows = section.get("variants") or []
    base = next((r for r in rows if r["variant"] == "float32"), None)
    lines = ["| " + " | ".join(title for _, title, _ in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        values = dict(row)
        if base and base.get("gzip_bytes") and row.get("gzip_bytes"):
            values["gzip_vs_float32"] = row["gzip_bytes"] / base["gzip_bytes"]
        cells = []
        for key, _, fmt in _COLUMNS:
            value = values.get(key)
            if value is None:
                cells.append("n/a")
            elif key in ("size_bytes", "gzip_bytes"):
                cells.append(f"{value / 1024:.0f} KiB")
            else:
                cells.append(fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    head = []
    if "keras_test_accuracy" in section:
        head.append(f"Float Keras model: test accuracy {section['keras_test_accuracy']:.4f} on "
                    f"{section.get('n_test', '?')} test samples.")
    if section.get("seconds") is not None:
        head.append(f"Report made in {section['seconds']:.0f} s.")
    return (" ".join(head) + "\n\n" if head else "") + "\n".join(lines) + "\n"
