"""A text classifier's phone file from a conversion of its frozen encoder made once per process.

A text classifier on a frozen pretrained encoder (MiniLM) is the encoder and a new Dense head;
converting the whole (23 MB) model from token ids costs tens of seconds on two cores and its
encoder part is the same for every head. :func:`reused_encoder_writer` gives ``Task.export`` an
``ExportPlan.write`` that converts the encoder with a head once per process and writes each
model's own head into a copy of that file (:mod:`toolkit.edge.head_swap`); the export's checks
then run on the file as on any other.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def reused_encoder_writer(task: Any, model: Any, quantization: str) -> Callable | None:
    """An ``ExportPlan.write`` for ``task`` (its ids model ``model``), or None where the encoder
    is not a frozen pretrained one with a one-Dense head, or the quantization is not dynamic/int8-weights
    ("dynamic"; full-integer int8 quantizes token ids and is not reused)."""
    import keras

    from ..edge.head_swap import writer

    if quantization != "dynamic" or task.config.from_scratch or task._in_model_encoder:
        return None
    head = task.model_
    if [layer.name for layer in head.layers if not isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout))] \
            != ["predictions"]:
        return None
    kernel, bias = (np.asarray(w) for w in head.get_layer("predictions").get_weights())
    key = ("text", str(task.config.encoder), int(task.sequence_length_), tuple(task._input_names()), quantization)
    return writer(key, model, quantization, kernel, bias)
