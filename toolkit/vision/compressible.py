"""How an image classifier takes part in compression (``toolkit.edge.compression``): its model,
training images with its augmentation, and test images."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.images import (
    BUILTIN_IMAGE_SETS,
    Splits,
    load_digits,
    load_splits,
    resolve_image_data,
)
from ..errors import DataError


class ImageCompression:
    """The :class:`toolkit.edge.compression.Compressible` protocol of ImageClassifier."""

    def compression_inputs(self, data: Any = None):
        """What compression needs: this model, its training images (raw pixels, with the model's
        augmentation) and test images; files default to int8 (the model takes float pixels).
        ``data``: 'digits', a folder with one subfolder per class, or Splits; default: the card's."""
        from ..edge.compression.protocol import CompressionInputs, TrainingData

        self._check_fitted()
        height, width, channels = self.input_shape_
        if data is None:
            data = self.reload_data()
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
        train = resolve_image_data(data.train, "train", (height, width), channels, self.class_names_)
        augment = self.augment_ if self.augment_ not in (None, "none") else None
        x = train.x.astype(np.float32)
        test = self._resolve_eval(data.test)
        return CompressionInputs(self.model_, TrainingData(x, train.y.astype(np.int64),
                                                           self._augmenter(augment) if augment else None),
                                 representative=x, test_inputs=test.x, test_y=test.y, data=data, quantization="int8")

    def with_compressed_weights(self, model) -> Any:
        """A copy of this classifier serving ``model`` (same architecture, compressed weights)."""
        from ..edge.compression.protocol import compressed_copy

        clone = compressed_copy(self, model)
        clone._serve = None
        return clone

    def write_runtime_files(self, directory: str | os.PathLike) -> None:
        """Nothing: an image classifier's .tflite takes raw pixels and needs no file beside it."""
