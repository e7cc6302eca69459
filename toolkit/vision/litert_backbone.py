"""The frozen ImageNet backbone of a served image classifier run by LiteRT (XNNPACK) in float32.

A classifier whose features come from the unchanged ImageNet backbone of a package
(:func:`.feature_memo.uses_memo`: the shipped ImageNet model, transfer-learned ones) spends
nearly all of a prediction in that backbone. TensorFlow runs EfficientNet-Lite0 in about 40 ms of
CPU per photo (busy two-core machine); the same float32 weights converted to a ``.tflite`` file
and run by LiteRT's XNNPACK kernels take about 13 ms and give the same features (float32 both:
differences of about 1e-5, checked on every conversion; no quantization). The head (the layers
after "pool") stays the Keras model's.

:func:`serve_with_litert` (the demo's warm-up) converts the backbone once per weights and input
size, keeps the file in :func:`cache_dir` (written atomically; later starts read it), and from then
on :func:`.feature_memo.frozen_features` computes that task's features with it
(:func:`.feature_memo.served_features` says so). Training,
evaluation and the export never use it: only tasks passed to :func:`serve_with_litert`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

#: a conversion is used only when its features match the Keras model's this closely (relative to
#: the features' largest magnitude, on :data:`CHECK_IMAGES` images); float32 both: about 1e-6
TOLERANCE = 1e-4
CHECK_IMAGES = 4
#: LiteRT threads per session: one (XNNPACK's two threads wait for each other at every layer: 45.9
#: instead of 35.8 ms of server CPU per photo request under 100 concurrent uploads, load ~7-10)
THREADS = 1
#: sessions a batch is split over, each running its part in its own thread (the interpreter
#: releases the GIL): a burst's batch uses every core the server has (at most 4, for memory)
SESSIONS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
#: one runner per (weights, input shape) in the process, shared by every task with that backbone
_RUNNERS: dict[tuple, LiteRTFeatures] = {}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where converted backbones are kept: ``$TOOLKIT_CACHE_DIR`` or ``~/.cache/toolkit``."""
    return Path(os.environ.get("TOOLKIT_CACHE_DIR") or Path.home() / ".cache" / "toolkit") / "litert_backbones"


class LiteRTFeatures:
    """A converted backbone: ``runner(batch)`` gives the (N, D) "pool" features of float32 raw pixels.

    A batch of several images is split into ``sessions`` parts, run at the same time by as many
    interpreters of the file (one thread each, no waiting for each other); each image's features
    are the same whichever part it is in."""

    runtime = "LiteRT (XNNPACK)"

    def __init__(self, path: Path, threads: int = THREADS, sessions: int = SESSIONS):
        from concurrent.futures import ThreadPoolExecutor

        from ..edge.runner import LiteRTSession

        self.path = path
        self.sessions = [LiteRTSession(path, num_threads=threads, how="It is made again at the next start.")
                         for _ in range(max(1, sessions))]
        self.session = self.sessions[0]
        self._pool = ThreadPoolExecutor(len(self.sessions), thread_name_prefix="litert-backbone")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if not len(batch):
            return np.zeros((0, int(self.session.outputs[0]["shape"][-1])), np.float32)
        parts = np.array_split(batch, min(len(self.sessions), len(batch)))
        if len(parts) == 1:
            return self.session.run_batched(batch, chunk=64).astype(np.float32)
        done = self._pool.map(lambda session, part: session.run_batched(part, chunk=64), self.sessions, parts)
        return np.concatenate(list(done)).astype(np.float32)


def serve_with_litert(task: Any) -> LiteRTFeatures | None:
    """Make ``task``'s frozen backbone run by LiteRT from now on (converting it the first time for
    these weights, then reading the kept file); returns the runner, or None where the task has no
    such backbone or the conversion failed or disagreed with Keras (it then keeps using Keras)."""
    from .feature_memo import extractor, uses_memo

    if not uses_memo(task):
        return None
    _, fingerprint = extractor(task)
    key = (task.config.backbone, fingerprint, tuple(task.input_shape_))
    with _LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            try:
                runner = _RUNNERS[key] = _load_or_convert(task, key)
            except Exception:  # the Keras backbone keeps answering
                logging.getLogger(__name__).exception("The LiteRT backbone of %s could not be made", key[0])
                return None
    task._served_features = (task.model_, runner)
    return runner


def _load_or_convert(task: Any, key: tuple) -> LiteRTFeatures:
    import tensorflow as tf

    backbone, fingerprint, shape = key
    name = f"{backbone}-{fingerprint[:24]}-{'x'.join(map(str, shape))}-tf{tf.__version__}.tflite"
    path = cache_dir() / name
    if path.is_file():
        try:
            runner = LiteRTFeatures(path)
            _check(task, runner)
            return runner
        except Exception:  # a damaged or stale file: made again below
            logging.getLogger(__name__).warning("Converting %s again: the kept file %s failed its check", backbone, path)
    _convert(task, path)
    runner = LiteRTFeatures(path)
    _check(task, runner)
    return runner


def _convert(task: Any, path: Path) -> None:
    """The backbone (input -> "pool") as a float32 ``.tflite`` file at ``path``, written atomically."""
    import keras

    from ..edge.export import convert
    from ..storage import atomic_write_bytes

    model = task.model_
    features = keras.Model(model.inputs, model.get_layer("pool").output, name="features")
    atomic_write_bytes(path, convert(features, "float32"))


def _check(task: Any, runner: LiteRTFeatures) -> None:
    """Raise unless the runner's features equal the Keras backbone's (within :data:`TOLERANCE`);
    also sizes the runner for one image and for a full batch, so no request pays for that."""
    from ..serving import run_in_chunks
    from .feature_memo import extractor

    fn, _ = extractor(task)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (CHECK_IMAGES, *task.input_shape_)).astype(np.float32)
    x[0] = 128.0  # a flat image beside the noise
    expected = run_in_chunks(fn, x, 64)
    got = runner(x)
    scale = float(np.abs(expected).max()) or 1.0
    error = float(np.abs(got - expected).max()) / scale
    if got.shape != expected.shape or not error <= TOLERANCE:
        raise ValueError(f"the LiteRT features differ from Keras by {error:.2e} of their scale (allowed {TOLERANCE})")
    runner(np.repeat(x[:1], 64, axis=0))  # the batch size of a burst, then back to one image
    runner(x[:1])
