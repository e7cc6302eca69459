"""Make your own's trainings in their own process, so that a server keeps answering while one runs.

A training on two cores takes both for tens of seconds; run in the server's process it starves
every other request (predictions in other tabs waited over a second). :class:`TrainingWorker`
runs :func:`toolkit.make_your_own.train_from_examples` itself (the same code as the CLI and the
Python API) in one long-lived process started with ``spawn``, at a lower CPU priority (``nice``)
and with a bounded number of TensorFlow threads: the server's own requests then win the CPU.
Progress messages come back over a pipe as they happen, the cancel event is shared, and the
result comes back without its Keras model (the caller loads the saved folder when it needs it).

The worker keeps what makes a training fast between trainings (the ImageNet backbone's weights,
MiniLM, the converted backbones of :mod:`toolkit.edge.head_swap`, remembered features); its
:func:`warm_up` trains two tiny models on generated examples at start so the first user's
training is already fast.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .errors import ToolkitError

WORKER_NICE = 10
START_TIMEOUT_S = 120.0


def warm_up(kinds: tuple[str, ...] = ("image", "text"), workdir: str | os.PathLike | None = None) -> dict:
    """Train one tiny model per kind on generated examples (crops of scikit-image's photos; a few
    plain sentences) and delete it: the backbones load, their converted phone templates are made and
    the generated calibration images' features are remembered for the trainings that follow.
    Returns {kind: seconds}."""
    from .data.ood import CALIBRATION_PHOTOS, skimage_photos
    from .make_your_own import train_from_examples

    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="warm-up-", dir=workdir))
    seconds = {}
    try:
        for kind in kinds:
            start = time.perf_counter()
            if kind == "image":
                photos = skimage_photos(CALIBRATION_PHOTOS[:2])
                examples = {f"photo {i}": [p[j * 8:j * 8 + 200, j * 8:j * 8 + 200] for j in range(5)]
                            for i, p in enumerate(photos)}
            else:
                examples = {"good": [f"I really liked it, {w}." for w in ("great", "lovely", "fine", "superb", "nice")],
                            "bad": [f"I did not like it, {w}." for w in ("awful", "poor", "boring", "dull", "sad")]}
            train_from_examples(kind, examples, root / kind)
            seconds[kind] = round(time.perf_counter() - start, 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return seconds


def _limit_threads(threads: int | None) -> None:
    if not threads:
        return
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = str(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _serve(conn, cancel, nice: int, threads: int | None, warm: tuple[str, ...]) -> None:
    """The worker process: lower its priority, bound its threads, warm up, then train on request;
    it ends with the server, even during the warm-up."""
    from .serving import end_with_parent

    end_with_parent()
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    _limit_threads(threads)
    from .make_your_own import train_from_examples

    if warm:
        try:
            warm_up(warm)
        except Exception:  # a failed warm-up only costs the first training its speed
            pass
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "stop":
            return
        _, kind, examples, workdir, options = message
        try:
            result = train_from_examples(kind, examples, workdir, progress=lambda f, m: conn.send(("progress", f, m)),
                                         cancel=cancel, **options)
            fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "task"}
            conn.send(("done", fields))
        except BaseException as exc:  # the caller raises it again
            conn.send(("error", type(exc).__module__, type(exc).__name__, str(exc)))


def _error(module: str, name: str, message: str) -> BaseException:
    """The worker's exception, remade: the toolkit's own errors keep their class."""
    import importlib

    if module.startswith("toolkit."):
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type) and issubclass(cls, ToolkitError):
            try:
                return cls(message)
            except TypeError:
                pass
    return ToolkitError(f"The training failed ({name}): {message}")


class TrainingWorker:
    """One training process for a server (started on first use, restarted if it died).

    >>> worker = TrainingWorker()
    >>> result = worker.train("image", {"cat": [...], "dog": [...]}, "session/runs", progress=print)
    """

    def __init__(self, nice: int = WORKER_NICE, threads: int | None = None, warm: tuple[str, ...] = ()):
        self.nice, self.threads, self.warm = nice, threads, tuple(warm)
        self._context = multiprocessing.get_context("spawn")
        self._process = None
        self._conn = None
        self._cancel = None
        self._lock = threading.Lock()
        self.ready = threading.Event()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> "TrainingWorker":
        """Start the process now (it warms up in the background); a no-op while it runs."""
        with self._lock:
            self._start()
        return self

    def _start(self) -> None:
        if self.alive:
            return
        parent, child = self._context.Pipe()
        self._cancel = self._context.Event()
        self.ready.clear()
        self._process = self._context.Process(target=_serve, args=(child, self._cancel, self.nice, self.threads,
                                                                   self.warm), name="toolkit-training", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Start the process if needed and wait until it has warmed up (True) or ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._start()
            while not self.ready.is_set():
                message = self._receive(0.5)
                if message is not None and message[0] == "ready":
                    self.ready.set()
                if deadline is not None and time.monotonic() > deadline:
                    return False
        return True

    def _receive(self, timeout: float):
        if not self._conn.poll(timeout):
            if not self._process.is_alive():
                raise ToolkitError(f"The training process stopped unexpectedly (exit code {self._process.exitcode}). "
                                   "Press Train again: a fresh one starts.")
            return None
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise ToolkitError("The training process stopped unexpectedly. Press Train again: a fresh one "
                               "starts.") from None

    def train(self, kind: str, examples: dict, workdir: str | os.PathLike, progress: Callable | None = None,
              cancel: Any = None, **options: Any):
        """``train_from_examples(kind, examples, workdir, progress, cancel, **options)`` in the worker;
        its :class:`~toolkit.make_your_own.TrainResult` has ``task=None``."""
        from .make_your_own import TrainResult

        with self._lock:
            self._start()
            self._cancel.clear()
            if not self.ready.is_set() and progress is not None:
                progress(0.0, "Waiting for the training process (it loads the pretrained networks once per server)")
            self._conn.send(("train", kind, examples, str(workdir), options))
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        self._cancel.set()
                    message = self._receive(0.1)
                    if message is None:
                        continue
                    if message[0] == "ready":
                        self.ready.set()
                    elif message[0] == "progress":
                        if progress is not None:
                            progress(message[1], message[2])
                    elif message[0] == "done":
                        return TrainResult(**message[1], task=None)
                    elif message[0] == "error":
                        raise _error(*message[1:])
            except BaseException:
                if not self.alive:
                    self._process = None
                raise

    def close(self, timeout: float = 10.0) -> None:
        """Stop the process (its current training, if any, is cancelled)."""
        if self._cancel is not None:
            self._cancel.set()
        with self._lock:
            if self._process is None:
                return
            try:
                self._cancel.set()
                self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)
            self._process = None
