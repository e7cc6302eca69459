"""How a from-scratch text classifier takes part in compression (``toolkit.edge.compression``):
its token-id core, training texts as token ids, test texts and the vocabulary file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.text import TextSplits, load_text, text_splits
from ..errors import DataError, ExportError


class TextCompression:
    """The :class:`toolkit.edge.compression.Compressible` protocol of TextClassifier."""

    def compression_inputs(self, data: Any = None):
        """What compression needs: the token-id core (unrolled, as phones run it), training texts
        as token ids and test texts; files default to dynamic-range int8 weights (the file takes
        token ids, which full-integer int8 would quantize). ``data``: a text file or folder (split
        80/20 like `toolkit train nlp`) or TextSplits; default: the card's."""
        from ..edge.compression.protocol import CompressionInputs, TrainingData

        self._check_fitted()
        if not self.config.from_scratch:
            raise ExportError(
                f"Compression supports the from-scratch text encoders (bigru, cnn); {self.config.encoder!r} is a "
                "pretrained KerasHub encoder whose layers have no tf_keras twin. Export it with "
                "quantization='dynamic' (int8 weights) instead."
            )
        if data is None:
            data = self.reload_data()
        elif isinstance(data, (str, os.PathLike)):
            spec = self.data_spec_ or {}
            data = text_splits(load_text(data, text_column=spec.get("text_column"),
                                         label_column=spec.get("label_column"),
                                         label_names=spec.get("label_names")), 0.2, 42)
        if not isinstance(data, TextSplits):
            raise DataError(
                "Compression fine-tunes on training texts and checks every file on test texts. Pass data= a text "
                "file or folder (split 80/20 like `toolkit train nlp`) or TextSplits. Received "
                f"{'nothing, and the card names no data to reload' if data is None else type(data).__name__}."
            )
        train = self._resolve_eval(data.train)
        ids = self._word_tokenizer().encode(train.texts).astype(np.int32)
        test = self._resolve_eval(data.test)
        return CompressionInputs(
            self._ids_model(), TrainingData(ids, train.y.astype(np.int64)), representative=ids,
            test_inputs=test.texts, test_y=test.y, data=data, quantization="dynamic",
            int8_refusal=f"{type(self).__name__} files take token ids: full-integer int8 (and so QAT) would "
                         "quantize the ids themselves. Use quantization='dynamic' (int8 weights) or 'float16' with "
                         "prune/cluster.",
        )

    def with_compressed_weights(self, model) -> Any:
        """A copy of this classifier whose token-id core holds ``model``'s weights (the vectorizer stays)."""
        from ..edge.compression.protocol import compressed_copy, copy_keras_model

        full = copy_keras_model(self.model_)
        full.get_layer(f"text_core_{self.config.encoder}").set_weights(model.get_weights())
        clone = compressed_copy(self, full)
        clone._serve = None
        return clone

    def write_runtime_files(self, directory: str | os.PathLike) -> None:
        """vocab.txt: the .tflite takes token ids made with it."""
        self._write_vocab(Path(directory))
