"""A policy network's forward pass in numpy: its Dense layers' weights read from the Keras model
or straight from a ``.keras`` archive (no Keras or TensorFlow), so ``toolkit play`` starts fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelFormatError


def dense_stack(model, names: list[str]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(kernel, bias, activation name) of the named Dense layers, for :func:`forward`."""
    out = []
    for name in names:
        layer = model.get_layer(name)
        kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
        out.append((kernel, bias, layer.activation.__name__))
    return out


def archived_dense_stack(path: Path, names: list[str]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """:func:`dense_stack` read straight from a ``.keras`` archive (its config.json and
    model.weights.h5) with h5py, without loading Keras: the same float32 weights."""
    import io
    import json
    import zipfile

    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            layers = json.loads(archive.read("config.json"))["config"]["layers"]
            weights = archive.read("model.weights.h5")
        # Keras 3 stores a model's layers in their order under layers/<class in snake case>, the
        # following ones of the same class as <...>_1, _2, ...
        dense = [layer["config"] for layer in layers if layer["class_name"] == "Dense"]
        groups = {c["name"]: (f"dense_{i}" if i else "dense", c) for i, c in enumerate(dense)}
        stack = []
        with h5py.File(io.BytesIO(weights), "r") as h5:
            for name in names:
                group, config = groups[name]
                kernel, bias = (np.asarray(h5[f"layers/{group}/vars/{k}"], np.float32) for k in (0, 1))
                if kernel.shape[1:] != (config["units"],) or bias.shape != (config["units"],):
                    raise ValueError(f"layer {name!r} has weights of shapes {kernel.shape} and {bias.shape}, "
                                     f"not {config['units']} units")
                stack.append((kernel, bias, config["activation"]))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelFormatError(f"Could not read the policy network from {path}: {exc}. Re-save the agent.") from exc
    return stack


def forward(stack, x: np.ndarray) -> np.ndarray:
    """An MLP's forward pass in numpy (float32): a few microseconds for one observation."""
    for kernel, bias, activation in stack:
        x = x @ kernel + bias
        if activation == "relu":
            np.maximum(x, 0, out=x)
        elif activation == "tanh":
            np.tanh(x, out=x)
        elif activation != "linear":
            raise ValueError(f"Unsupported activation {activation!r} in the numpy forward pass.")
    return x


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
