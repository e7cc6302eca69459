"""Run the generative ``.tflite`` files with LiteRT: a VAE decoder (``z``), a GAN generator
(``noise`` and, when conditional, ``label``) or a denoiser (``pixels``), each returning raw-pixel
images. Inputs are matched by name, never by position (the converter orders them as it likes)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..edge.runner import LiteRTSession
from ..errors import DataError, ModelFormatError
from ..storage import CARD_FILE, read_card
from .common import check_count, label_ids, latent_batch, latent_input

KINDS = {"z": "decoder", "noise": "generator", "pixels": "denoiser"}


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

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        self.session = LiteRTSession(path, num_threads)
        self.path = self.session.path
        if card is None and (self.path.parent / CARD_FILE).is_file():
            card = read_card(self.path.parent)
        self.card = card or {}
        names = self.session.input_names
        kinds = [KINDS[name] for name in names if name in KINDS]
        if len(kinds) != 1:
            raise ModelFormatError(
                f"{self.path} is not a toolkit generative model: its inputs are {sorted(names)}, expected "
                "z (decoder), noise [+ label] (generator) or pixels (denoiser)."
            )
        self.kind = kinds[0]
        first = next(name for name in names if name in KINDS)
        self.latent_dim_ = self.session.input_shape(first)[-1] if self.kind != "denoiser" else 0
        self.conditional_ = "label" in names
        self.class_names_ = list(self.card.get("labels") or [])

    @property
    def input_names(self) -> list[str]:
        return sorted(self.session.input_names)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.session.output()["shape"][1:])

    # ------------------------------------------------------------------ running
    def run(self, **inputs: np.ndarray) -> np.ndarray:
        """Run named input batches (``z=...``, ``noise=..., label=...`` or ``pixels=...``); returns
        the output batch. Thread-safe: calls take turns on the one interpreter."""
        return self.session.run(**inputs).astype(np.float32)

    def latency_ms(self, inputs: dict[str, np.ndarray] | None = None, runs: int = 100, warmup: int = 10,
                   **named: np.ndarray) -> float:
        """Median time of one call on these inputs (e.g. one row each; a dict or keywords), in ms."""
        return self.session.latency_ms(runs=runs, warmup=warmup, **{**(inputs or {}), **named})

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
