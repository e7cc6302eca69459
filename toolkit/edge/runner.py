"""Run ``.tflite`` files with the LiteRT interpreter, the runtime phones use."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ClassifierMixin, task_class
from ..errors import ModelFormatError
from ..storage import read_card


def median_ms(fn, runs: int = 100, warmup: int = 10) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def classifier_checks(keras_probs: np.ndarray, lite_probs: np.ndarray, y: np.ndarray) -> dict:
    """What a classifier's card records of a TFLite file, from its and the Keras model's
    probabilities on the test samples (labels ``y``)."""
    keras_pred, lite_pred = keras_probs.argmax(-1), lite_probs.argmax(-1)
    return {
        "test_accuracy": float(np.mean(lite_pred == y)),
        "agreement_with_keras": float(np.mean(lite_pred == keras_pred)),
        "max_abs_probability_diff": float(np.max(np.abs(lite_probs - keras_probs))),
        "n_test": int(len(y)),
    }


def open_interpreter(path: Path, num_threads: int | None = None, how: str = "Export it with `toolkit export`."):
    """A LiteRT interpreter with its tensors allocated, or a ModelFormatError saying what is wrong."""
    from ai_edge_litert.interpreter import Interpreter

    if not path.is_file():
        raise ModelFormatError(f"TFLite file not found: {str(path)!r}. {how}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"{path} is not a valid TFLite model: {exc}") from exc
    return interpreter


class TFLiteModel(ClassifierMixin):
    """A ``.tflite`` file with the same ``predict`` / ``predict_proba`` / ``top_k`` as its task.

    Inputs are raw, like the Keras task's (images of any size, for vision); int8 files are
    quantized and dequantized here with the scale and zero point stored in the file.
    """

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        self.path = Path(path)
        self.interpreter = open_interpreter(self.path, num_threads)
        if card is None and (self.path.parent / "card.json").is_file():
            card = read_card(self.path.parent)
        self.card = card or {}
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.class_names_ = list(self.card.get("labels") or [])
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ facts
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"][1:])

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._input["dtype"]).name

    @property
    def quantization(self) -> dict:
        def params(detail):
            scale, zero = detail["quantization"]
            return {"dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

        return {"input": params(self._input), "output": params(self._output)}

    # ------------------------------------------------------------------ running
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a prepared batch (floats, or token ids); returns float outputs (dequantized).

        Thread-safe: an interpreter holds one set of tensors, so calls take turns.
        """
        with self._lock:
            return self._run(np.asarray(batch))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = batch.shape[0]
        self.interpreter.set_tensor(self._input["index"], self._quantize(batch))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._output["index"]))

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero = self._input["quantization"]
            info = np.iinfo(dtype)
            return np.clip(np.round(x.astype(np.float32) / scale + zero), info.min, info.max).astype(dtype)
        return x.astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero = self._output["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def latency_ms(self, sample: np.ndarray, runs: int = 100, warmup: int = 10) -> float:
        """Median wall time of one-sample inference (set input, invoke, read output), in ms."""
        one = np.asarray(sample)[:1]
        return median_ms(lambda: self.run(one), runs, warmup)

    # ------------------------------------------------------------------ ClassifierMixin
    def _prepare(self, x: Any) -> np.ndarray:
        if self.card.get("task"):
            return task_class(self.card["task"]).prepare_input(x, self.card, directory=self.path.parent)
        return np.asarray(x, dtype=np.float32)

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 1:
            return self.run(batch)
        # One resize for the whole batch, in chunks to bound memory.
        return np.concatenate([self.run(batch[i : i + 256]) for i in range(0, len(batch), 256)])
