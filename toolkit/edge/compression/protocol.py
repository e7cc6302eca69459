"""What a task offers to be compressed: the :class:`Compressible` protocol.

Compression knows no task by name. A task class that can be compressed implements three public
methods (image and text classifiers do):

- ``compression_inputs(data=None) -> CompressionInputs``: the Keras 3 model to compress (for
  text, the token-id core that phones run), fine-tuning data in that model's input format, the
  test split, and the default quantization preset;
- ``with_compressed_weights(model) -> task``: a copy of the task serving ``model``'s weights
  (it saves, loads, predicts and explains like any toolkit model);
- ``write_runtime_files(directory)``: what a ``.tflite`` of the task needs beside it (text:
  ``vocab.txt``; images: nothing).

A task class that cannot be compressed says why in its class attribute
``compression_refusal: ClassVar[str | None]`` (the :class:`toolkit.base.Task` default is None:
no reason given); the message of :func:`gather_inputs` quotes it.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...errors import ExportError
from .techniques import TrainingData

__all__ = ["Compressible", "CompressionInputs", "TrainingData", "compressed_copy", "copy_keras_model",
           "gather_inputs"]


@dataclasses.dataclass
class CompressionInputs:
    """What compression needs of a fitted task, in the format of the model it compresses.

    model: the Keras 3 model whose weights are compressed (text classifiers: the token-id core).
    train: fine-tuning samples (``x`` in ``model``'s input format, labels ``y``, augmentation).
    representative: int8 calibration samples in ``model``'s input format.
    test_inputs, test_y: the test split as ``task.predict_proba`` takes it (raw pixels, texts) and
        its labels; every file is checked on them.
    data: the train/test splits themselves (``task.export`` and ``task.report`` take them; their
        ``spec`` goes into the card).
    quantization: the default preset of a compressed file (``int8`` for float inputs).
    int8_refusal: why full-integer int8 (and so QAT) does not suit this model; None: it does.
    """

    model: Any
    train: TrainingData
    representative: np.ndarray
    test_inputs: Any
    test_y: np.ndarray
    data: Any
    quantization: str = "int8"
    int8_refusal: str | None = None


@runtime_checkable
class Compressible(Protocol):
    """A task class that compression can work on (see the module's documentation)."""

    def compression_inputs(self, data: Any = None) -> CompressionInputs:
        """The model, data and defaults to compress with; ``data`` as :func:`compress` takes it."""

    def with_compressed_weights(self, model: Any) -> Any:
        """A copy of the task that serves ``model`` (from ``compression_inputs().model``)."""

    def write_runtime_files(self, directory: Path) -> None:
        """Write what this task's ``.tflite`` files need beside them into ``directory``."""


def gather_inputs(task, data: Any = None) -> CompressionInputs:
    """``task.compression_inputs(data)``, or an ExportError saying why ``task`` cannot be compressed."""
    if not isinstance(task, Compressible):
        why = type(task).compression_refusal or "it is not a classifier this module knows"
        raise ExportError(
            f"Compression does not support {type(task).__name__} models: {why}. Supported: image classifiers "
            "(small_cnn, lenet5, mobilenet_v2, ...) and from-scratch text classifiers (bigru, cnn). Export with "
            "quantization='float16' or 'dynamic' instead."
        )
    return task.compression_inputs(data)


def compressed_copy(task, model):
    """A shallow copy of ``task`` holding ``model``, with no folder, exports or report of its own
    (for ``with_compressed_weights``; the task resets its own cached serving functions)."""
    clone = copy.copy(task)
    clone.model_ = model
    clone.tflite_, clone.compression_, clone.directory_ = [], None, None
    clone.metrics_ = dict(task.metrics_)
    return clone


def copy_keras_model(model):
    """An independent copy (a .keras round trip: preprocessing layers keep their vocabularies)."""
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "copy.keras"
        model.save(path)
        return keras.saving.load_model(path, safe_mode=True)
