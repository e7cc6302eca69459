"""Run ``.tflite`` files with the LiteRT interpreter, the runtime phones use.

:class:`LiteRTSession` is the one session every TFLite wrapper of the toolkit builds on: inputs
and outputs by name or position, quantize/dequantize with each tensor's scale and zero point,
batch resizing, a lock, batched runs in chunks and latency. :class:`TFLiteModel` is the wrapper
of the classifiers (and of any file whose card names its task)."""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import Calibration
from ..errors import DataError, ModelFormatError
from ..mixins import ClassifierMixin
from ..registry import task_class
from ..storage import read_card


#: the output names of a classifier file that also returns its pooled features
PROBABILITIES_OUTPUT, FEATURES_OUTPUT = "probabilities", "features"


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


def check_classifier_file(task: Any, runner: Any, inputs: Any, y: np.ndarray | None, prepared: bool = False) -> dict:
    """A classifier export's checks: the file's test accuracy and agreement with the task on
    ``inputs`` (raw samples with labels ``y``; with ``prepared``, the model's input batch as the
    task's ``evaluate`` scores it, fed to both as it is); the task's ``test_accuracy`` metric is
    filled in when missing. Without test data, a warning and no fields."""
    if inputs is None:
        warnings.warn(
            "No test data for this export: the card records size and latency but no accuracy or agreement. "
            "Pass data=... to check the file.",
            stacklevel=4,
        )
        return {}
    if prepared:  # preparing twice would not be the identity (audio: trimmed and centred again)
        keras_probs, lite_probs = task.probabilities(inputs), runner.probabilities(inputs)
    else:
        keras_probs, lite_probs = task.predict_proba(inputs), runner.predict_proba(inputs)
    task.metrics_.setdefault("test_accuracy", float(np.mean(keras_probs.argmax(-1) == y)))
    return classifier_checks(keras_probs, lite_probs, y)


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


def tensor_name(name: str) -> str:
    """A signature tensor's short name: ``serving_default_noise:0`` -> ``noise``."""
    return re.sub(r":\d+$", "", name).removeprefix("serving_default_")


def _params(detail: dict) -> dict:
    scale, zero = detail["quantization"]
    return {"dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}


def _quantized(detail: dict) -> bool:
    return np.dtype(detail["dtype"]) in (np.int8, np.uint8) and detail["quantization"][0] != 0


class LiteRTSession:
    """One ``.tflite`` file in a LiteRT interpreter, safe to share between threads.

    Inputs are given by position (``run(x)``, ``run(x1, x2)``) or by name (``run(noise=z,
    label=y)``; names are the signature's, e.g. ``noise`` for ``serving_default_noise:0``).
    Float arrays given to an int8/uint8 input are quantized with its scale and zero point, and
    such outputs are dequantized to float32; other outputs (e.g. int32 ids) keep their dtype.
    A batch of another size resizes the inputs' first dimension (once, until the size changes).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 how: str = "Export it with `toolkit export`."):
        self.path = Path(path)
        self.interpreter = open_interpreter(self.path, num_threads, how)
        self._lock = threading.Lock()
        self._read_details()

    def _read_details(self) -> None:
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    # ------------------------------------------------------------------ facts
    @property
    def input_names(self) -> list[str]:
        return [tensor_name(d["name"]) for d in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [tensor_name(d["name"]) for d in self.outputs]

    @property
    def signature_output_names(self) -> list[str]:
        """The outputs' names in the file's signature (e.g. ``probabilities``, ``features``), in
        the order of :attr:`outputs`; the tensor's short name where the file has no signature."""
        signatures = self.interpreter._get_full_signature_list() or {}
        by_index = {int(i): name for sig in signatures.values() for name, i in (sig.get("outputs") or {}).items()}
        return [by_index.get(int(d["index"]), tensor_name(d["name"])) for d in self.outputs]

    def input(self, key: int | str = 0) -> dict:
        """The details (index, shape, dtype, quantization) of an input, by position or name."""
        return self._detail(self.inputs, self.input_names, key, "input")

    def output(self, key: int | str = 0) -> dict:
        return self._detail(self.outputs, self.output_names, key, "output")

    @staticmethod
    def _detail(details: list[dict], names: list[str], key: int | str, what: str) -> dict:
        if isinstance(key, str):
            if key not in names:
                raise DataError(f"Expected an {what} named one of {sorted(names)}. Received {key!r}.")
            key = names.index(key)
        return details[key]

    def input_shape(self, key: int | str = 0) -> tuple[int, ...]:
        """An input's shape without the batch dimension."""
        return tuple(int(d) for d in self.input(key)["shape"][1:])

    def input_dtype(self, key: int | str = 0) -> str:
        return np.dtype(self.input(key)["dtype"]).name

    @property
    def quantization(self) -> dict:
        """dtype, scale and zero point of the first input and the first output (as cards record them)."""
        return {"input": _params(self.input()), "output": _params(self.output())}

    @property
    def ops(self) -> list[str]:
        """The operators in the file (builtin TFLite ops unless exported with allow_flex)."""
        return sorted({op["op_name"] for op in self.interpreter._get_ops_details()})

    # ------------------------------------------------------------------ quantization
    def quantize(self, x: Any, key: int | str = 0) -> np.ndarray:
        """``x`` as the input's dtype: rounded to its int8/uint8 grid (scale, zero point) if quantized."""
        detail = self.input(key)
        dtype = detail["dtype"]
        if _quantized(detail):
            scale, zero = detail["quantization"]
            info = np.iinfo(dtype)
            return np.clip(np.round(np.asarray(x, np.float32) / scale + zero), info.min, info.max).astype(dtype)
        return np.ascontiguousarray(x, dtype=dtype)

    def dequantize(self, y: np.ndarray, key: int | str = 0) -> np.ndarray:
        """An output tensor as float32 when it is quantized; unchanged otherwise."""
        detail = self.output(key)
        if _quantized(detail):
            scale, zero = detail["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y

    def on_input_grid(self, x: Any, key: int | str = 0) -> np.ndarray:
        """``x`` (float32) as the file sees it: rounded to a quantized input's grid, else unchanged."""
        x = np.asarray(x, dtype=np.float32)
        detail = self.input(key)
        if not _quantized(detail):
            return x
        scale, zero = detail["quantization"]
        return (self.quantize(x, key).astype(np.float32) - zero) * scale

    # ------------------------------------------------------------------ running
    def _arrays(self, args: tuple, named: dict) -> list[np.ndarray]:
        if args and named:
            raise DataError("Pass the inputs either by position or by name, not both.")
        if named:
            if sorted(named) != sorted(self.input_names):
                raise DataError(f"Expected the inputs {sorted(self.input_names)}. Received {sorted(named)}.")
            return [self.quantize(named[name], name) for name in self.input_names]
        if len(args) != len(self.inputs):
            raise DataError(f"Expected {len(self.inputs)} input(s) {self.input_names}. Received {len(args)}.")
        return [self.quantize(a, i) for i, a in enumerate(args)]

    def run_all(self, *args: Any, **named: Any) -> list[np.ndarray]:
        """Run one batch; every output (dequantized where quantized), in the file's output order."""
        arrays = self._arrays(args, named)
        sizes = {len(a) for a in arrays}
        if len(sizes) != 1:
            raise DataError(f"Expected inputs with the same number of rows. Received {sorted(sizes)}.")
        n = sizes.pop()
        with self._lock:
            if any(int(d["shape"][0]) != n for d in self.inputs):
                for detail in self.inputs:
                    self.interpreter.resize_tensor_input(detail["index"], [n, *detail["shape"][1:]])
                self.interpreter.allocate_tensors()
                self._read_details()
            for detail, array in zip(self.inputs, arrays):
                self.interpreter.set_tensor(detail["index"], array)
            self.interpreter.invoke()
            return [self.dequantize(self.interpreter.get_tensor(d["index"]), i) for i, d in enumerate(self.outputs)]

    def run(self, *args: Any, **named: Any) -> np.ndarray:
        """Run one batch; the first output (dequantized where quantized)."""
        return self.run_all(*args, **named)[0]

    def run_batched(self, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        """The first output for a batch of any size on a one-input file, in chunks of ``chunk`` rows
        (one resize for the whole batch, bounded memory)."""
        if len(x) <= chunk:
            return self.run(x)
        return np.concatenate([self.run(x[i : i + chunk]) for i in range(0, len(x), chunk)])

    def latency_ms(self, *args: Any, runs: int = 100, warmup: int = 10, **named: Any) -> float:
        """Median wall time of one :meth:`run` on these inputs (set inputs, invoke, read outputs), in ms."""
        return median_ms(lambda: self.run_all(*args, **named), runs, warmup)


class TFLiteModel(ClassifierMixin):
    """A ``.tflite`` file with the same ``predict`` / ``predict_proba`` / ``top_k`` as its task.

    Inputs are raw, like the Keras task's (images of any size, for vision); int8 files are
    quantized and dequantized with the scale and zero point stored in the file. ``assess`` flags
    "not sure" with the card's calibration (and the pixel reference file beside the ``.tflite``).

    A file with two outputs named ``probabilities`` and ``features`` (an image classifier whose
    "not sure" rule reads its pooled features, see ``ImageClassifier.export``) gives both from
    :meth:`probabilities_and_features`, so it checks the same rule as the Keras model.
    """

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        self.session = LiteRTSession(path, num_threads)
        self.path = self.session.path
        self.output_names = self.session.signature_output_names
        if card is None and (self.path.parent / "card.json").is_file():
            card = read_card(self.path.parent)
        self.card = card or {}
        self.class_names_ = list(self.card.get("labels") or [])
        self.calibration_ = Calibration.from_card(self.card.get("calibration"), self.path.parent)

    # ------------------------------------------------------------------ facts
    @property
    def interpreter(self):
        return self.session.interpreter

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.session.input_shape()

    @property
    def input_dtype(self) -> str:
        return self.session.input_dtype()

    @property
    def quantization(self) -> dict:
        """dtype, scale and zero point of the input and the (probabilities) output."""
        out = self.session.quantization
        if self.feature_output:
            names = self.output_names
            at = names.index(PROBABILITIES_OUTPUT) if PROBABILITIES_OUTPUT in names else 1 - names.index(FEATURES_OUTPUT)
            out["output"] = _params(self.session.output(at))
            out["features_output"] = _params(self.session.output(names.index(FEATURES_OUTPUT)))
        return out

    @property
    def feature_output(self) -> bool:
        """Whether the file also returns the pooled features (output ``features``)."""
        return len(self.output_names) > 1 and FEATURES_OUTPUT in self.output_names

    # ------------------------------------------------------------------ running
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a prepared batch (floats, or token ids); returns float outputs (dequantized): the
        ``probabilities`` output of a file that also returns features.

        Thread-safe: an interpreter holds one set of tensors, so calls take turns.
        """
        if self.feature_output:
            return self.run_with_features(batch)[0]
        return self.session.run_batched(np.asarray(batch)).astype(np.float32)

    def run_with_features(self, batch: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, pooled features) of a file with both outputs, in chunks of ``chunk`` rows."""
        names = self.output_names
        if FEATURES_OUTPUT not in names:
            raise ModelFormatError(f"{self.path.name} has no {FEATURES_OUTPUT!r} output (outputs: {names}). "
                                   "Export it again with a calibrated model to get one.")
        probs_at = names.index(PROBABILITIES_OUTPUT) if PROBABILITIES_OUTPUT in names else 1 - names.index(
            FEATURES_OUTPUT)
        batch = np.asarray(batch)
        parts = [self.session.run_all(batch[i : i + chunk]) for i in range(0, max(len(batch), 1), chunk)]
        return (np.concatenate([p[probs_at] for p in parts]).astype(np.float32),
                np.concatenate([p[names.index(FEATURES_OUTPUT)] for p in parts]).astype(np.float32))

    def latency_ms(self, sample: np.ndarray, runs: int = 100, warmup: int = 10) -> float:
        """Median wall time of one-sample inference (set input, invoke, read output), in ms."""
        return self.session.latency_ms(np.asarray(sample)[:1], runs=runs, warmup=warmup)

    # ------------------------------------------------------------------ ClassifierMixin
    def prepare(self, x: Any) -> np.ndarray:
        if self.card.get("task"):
            return task_class(self.card["task"]).prepare_input(x, self.card, directory=self.path.parent)
        return np.asarray(x, dtype=np.float32)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)

    def probabilities_and_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, pooled features or None): one pass over a file with both outputs."""
        if self.feature_output:
            return self.run_with_features(batch)
        return self.run(batch), None
