"""Run the generative ``.tflite`` files with LiteRT: a VAE decoder (``z``), a GAN generator
(``noise`` and, when conditional, ``label``) or a denoiser (``pixels``), each returning raw-pixel
images. Inputs are matched by name, never by position (the converter orders them as it likes)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..edge.runner import median_ms, open_interpreter
from ..errors import DataError
from ..storage import CARD_FILE, read_card
from .common import check_count, label_ids, latent_batch, latent_input

KINDS = {"z": "decoder", "noise": "generator", "pixels": "denoiser"}


def input_name(tensor_name: str) -> str:
    """``serving_default_noise:0`` -> ``noise``."""
    return re.sub(r":\d+$", "", tensor_name).removeprefix("serving_default_")


class SamplerMixin:
    """``generate(n, label, seed)`` on top of ``_from_latent(z, labels)``: shared by the tasks and
    their TFLite files, so a phone's file samples exactly as the Keras model does."""

    latent_dim_: int
    conditional_: bool
    class_names_: list[str]

    def _from_latent(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def generate(self, n: int = 16, label: Any = None, seed: int | None = None) -> np.ndarray:
        """``n`` new images (raw pixels 0-255, (n, H, W, C)) from latent vectors drawn from N(0, I)
        with ``seed``. Conditional models take a ``label`` (a class name or index, or one per
        sample; default: every class in turn); unconditional ones refuse one."""
        n = check_count(n)
        z = latent_batch(n, self.latent_dim_, seed)
        if self.conditional_:
            return self._from_latent(z, label_ids(label, n, self.class_names_))
        if label is not None:
            raise DataError(
                f"This {type(self).__name__} is unconditional: it cannot generate a given label (received "
                f"label={label!r}). Leave the label out, or train a conditional model (`--conditional`)."
            )
        return self._from_latent(z, None)


class TFLiteImageModel(SamplerMixin):
    """A generative ``.tflite`` with the task's ``predict`` (and ``generate`` for decoders and
    generators); ``card.json`` beside the file (or ``card``) supplies the class names."""

    outputs_images = True

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        self.path = Path(path)
        self.interpreter = open_interpreter(self.path, num_threads)
        if card is None and (self.path.parent / CARD_FILE).is_file():
            card = read_card(self.path.parent)
        self.card = card or {}
        self._inputs = {input_name(d["name"]): d for d in self.interpreter.get_input_details()}
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(next(iter(self._inputs.values()))["shape"][0])
        self._lock = threading.Lock()
        kinds = [KINDS[name] for name in self._inputs if name in KINDS]
        if len(kinds) != 1:
            from ..errors import ModelFormatError

            raise ModelFormatError(
                f"{self.path} is not a toolkit generative model: its inputs are {sorted(self._inputs)}, expected "
                "z (decoder), noise [+ label] (generator) or pixels (denoiser)."
            )
        self.kind = kinds[0]
        first = self._inputs[next(k for k in self._inputs if k in KINDS)]
        self.latent_dim_ = int(first["shape"][-1]) if self.kind != "denoiser" else 0
        self.conditional_ = "label" in self._inputs
        self.class_names_ = list(self.card.get("labels") or [])

    @property
    def takes_images(self) -> bool:
        return self.kind == "denoiser"

    @property
    def input_names(self) -> list[str]:
        return sorted(self._inputs)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._output["shape"][1:])

    # ------------------------------------------------------------------ running
    def run(self, **inputs: np.ndarray) -> np.ndarray:
        """Run named input batches (``z=...``, ``noise=..., label=...`` or ``pixels=...``); returns
        the output batch. Thread-safe: calls take turns on the one interpreter."""
        if sorted(inputs) != self.input_names:
            raise DataError(f"Expected the inputs {self.input_names}. Received {sorted(inputs)}.")
        arrays = {k: np.ascontiguousarray(v, dtype=self._inputs[k]["dtype"]) for k, v in inputs.items()}
        sizes = {len(a) for a in arrays.values()}
        if len(sizes) != 1:
            raise DataError(f"Expected inputs with the same number of rows. Received {sorted(sizes)}.")
        with self._lock:
            n = sizes.pop()
            if n != self._batch:
                for name, detail in self._inputs.items():
                    self.interpreter.resize_tensor_input(detail["index"], [n, *detail["shape"][1:]])
                self.interpreter.allocate_tensors()
                self._batch = n
            for name, array in arrays.items():
                self.interpreter.set_tensor(self._inputs[name]["index"], array)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._output["index"]).astype(np.float32)

    def latency_ms(self, runs: int = 100, warmup: int = 10, **inputs: np.ndarray) -> float:
        """Median time of one call on these inputs (e.g. one row each), in milliseconds."""
        return median_ms(lambda: self.run(**inputs), runs, warmup)

    def _from_latent(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        if self.kind == "decoder":
            return self.run(z=z)
        if self.conditional_:
            return self.run(noise=z, label=labels)
        return self.run(noise=z)

    def predict(self, x: Any, labels: Any = None) -> np.ndarray:
        """Decoder: images from latent vectors. Generator: images from noise vectors (and labels,
        when conditional). Denoiser: clean images from noisy raw-pixel images of any size."""
        if self.kind == "denoiser":
            from ..data.images import image_batch

            height, width, channels = self.output_shape
            return self.run(pixels=image_batch(x, channels=channels, image_size=(height, width)))
        z = latent_input(x, self.latent_dim_)
        if self.conditional_:
            if labels is None:
                raise DataError("This generator is conditional: pass labels=... (one class per latent vector).")
            return self._from_latent(z, label_ids(labels, len(z), self.class_names_))
        if labels is not None:
            raise DataError("This model is unconditional: it takes no labels.")
        return self._from_latent(z, None)
