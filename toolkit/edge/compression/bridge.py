"""The Keras 3 -> tf_keras twin that TFMOT works on, and the way back.

1. **Twin.** :func:`to_tf_keras` walks the Keras 3 model's graph and builds the same
   architecture with tf_keras layer by layer (configs translated, nested functional backbones
   flattened), copies the weights and checks that both give the same outputs.
2. **Back to Keras 3.** :func:`to_keras3` copies pruned and clustered (float) weights into a
   Keras 3 clone of the model, which saves, loads and serves like any toolkit model.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np

from ...errors import ModelFormatError
from .tfmot import libraries

#: Keras layer classes the bridge translates (tf_keras has a twin of the same name).
SUPPORTED_LAYERS = (
    "InputLayer", "Resizing", "Rescaling", "Concatenate", "Add", "Conv1D", "Conv2D", "DepthwiseConv2D",
    "BatchNormalization", "ReLU", "Activation", "Softmax", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "Flatten", "Reshape", "Dense", "Dropout", "GaussianNoise", "ZeroPadding2D",
    "Embedding", "GRU", "LSTM", "SimpleRNN", "Bidirectional",
)
PARITY_TOLERANCE = 1e-5
_BASE_LAYER_KEYS = {"name", "trainable", "dtype", "activity_regularizer"}
_MISSING = object()

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

    if not isinstance(layer, keras.layers.Layer):
        raise _unsupported(layer, "it is a raw Keras operation, not a layer; wrap it in a supported layer.")
    twin_class = _twin_class(tfk, layer)
    config = _translate_config(layer, twin_class)
    config["name"] = _unique(layer.name, names)
    if with_bias:
        config["use_bias"] = True
    if type(layer).__name__ == "Bidirectional":
        config["layer"] = _serialized_twin(tfk, layer.forward_layer)
        config["backward_layer"] = _serialized_twin(tfk, layer.backward_layer)
    try:
        return twin_class.from_config(config)
    except (TypeError, ValueError) as exc:  # e.g. an activation tf_keras does not have (hard_silu)
        raise _unsupported(layer, f"tf_keras cannot rebuild it ({str(exc).splitlines()[-1].strip()}).") from exc


def _twin_class(tfk, layer):
    """The tf_keras class of the same name as a supported Keras 3 layer's."""
    kind = type(layer).__name__
    if kind not in SUPPORTED_LAYERS or not type(layer).__module__.startswith("keras."):
        raise _unsupported(layer, "it has no tf_keras twin here.")
    return getattr(tfk.layers, kind)


def _serialized_twin(tfk, layer) -> dict:
    return {"class_name": type(layer).__name__, "config": _translate_config(layer, _twin_class(tfk, layer))}


def _init_parameters(cls):
    """The parameters of every ``__init__`` along ``cls``'s MRO, base classes first."""
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None:
            yield from inspect.signature(init).parameters.values()


def _accepted_keys(twin_class) -> set[str]:
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return _BASE_LAYER_KEYS | {p.name for p in _init_parameters(twin_class) if p.kind in keyword and p.name != "self"}


def _keras3_defaults(layer) -> dict:
    return {p.name: p.default for p in _init_parameters(type(layer)) if p.default is not p.empty}


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
