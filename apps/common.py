"""What the tabs share: the error wrapper, the model slot, input parsers, the card-facts renderer
and the request image (upload or sketch).

Nothing heavy happens at import time: the toolkit and Gradio are imported inside the functions.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAVED_MODELS = REPO / "saved_models"
KERAS = "Keras"
MAKE_MODELS = "Run `make models` to build it."
NOT_A_NUMBER = float("nan")


#: Load: concurrent prediction requests of one endpoint are answered together (Gradio's
#: ``batch=True``) up to MAX_BATCH at a time; explanations (seconds each) run on their own queue,
#: one at a time, and their work runs in a separate process of lower priority
#: (:func:`run_explanation`), so they never hold up a prediction.
MAX_BATCH = 64
PREDICT = {"batch": True, "max_batch_size": MAX_BATCH, "concurrency_limit": 1}
EXPLAIN = {"concurrency_id": "explain", "concurrency_limit": 1}
#: The class of a sketchpad that should draw at once (:data:`SELECT_BRUSH_JS`).
DRAW_AT_ONCE = "draw-at-once"
#: Gradio 6.31's sketchpad opens with its image tool chosen ("select the draw tool to start") and
#: no option picks the brush. This page script (a tab's ``load`` event) presses each such
#: sketchpad's own Brush button once it is on screen (again if the editor's start-up switches it
#: back), until the brush has stayed chosen for a second or the user pressed one of its buttons;
#: Gradio draws a tab's components when the tab is first opened, so it keeps looking (once a second).
SELECT_BRUSH_JS = """
() => {
  const pads = () => document.querySelectorAll('.%s');
  const touched = new WeakSet(), settled = new WeakMap();
  document.addEventListener('pointerdown', (e) => {
    for (const pad of pads()) if (e.isTrusted && [...pad.querySelectorAll('button[aria-label]')]
      .some((b) => b.contains(e.target))) touched.add(pad);
  }, true);
  const pick = () => {
    let pending = false;
    for (const pad of pads()) {
      if (touched.has(pad) || (settled.get(pad) || 0) >= 4) continue;
      pending = true;
      const brush = pad.querySelector('button[aria-label="Brush"]');
      if (!brush || brush.offsetParent === null) continue;
      if ((brush.getAttribute('style') || '').includes('--color-accent')) settled.set(pad, (settled.get(pad) || 0) + 1);
      else { settled.set(pad, 0); brush.click(); }
    }
    setTimeout(pick, pending ? 250 : 1000);  // a tab's sketchpad appears when the tab is first opened
  };
  pick();
}
""" % DRAW_AT_ONCE
#: how much lower the explanation process's CPU priority is (``os.nice``; 19 is the lowest)
EXPLAIN_NICENESS = 19


# ---------------------------------------------------------------------- errors


def data_error(message: str):
    """A DataError with ``message`` (what was expected, what was received, what to do)."""
    from toolkit.errors import DataError

    return DataError(message)


def unavailable(what: str, directory: str | Path, exc: Exception):
    """The ModelFormatError of a model folder that is missing or does not load."""
    from toolkit.errors import ModelFormatError

    if not Path(directory).is_dir():
        return ModelFormatError(f"The {what} model is not available: {directory} does not exist. {MAKE_MODELS}")
    return ModelFormatError(f"The {what} model in {directory} could not be loaded: {exc} {MAKE_MODELS}")


def user_errors(fn):
    """Turn the toolkit's errors into a message in the browser (gr.Error); anything else is logged
    and reported as an unexpected error, so the server keeps serving whatever was uploaded."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import gradio as gr
        from toolkit.errors import ToolkitError

        try:
            return fn(*args, **kwargs)
        except ToolkitError as exc:
            raise gr.Error(str(exc)) from exc
        except gr.Error:
            raise
        except Exception as exc:  # a bug or an input nobody foresaw: say so in user words, log the details
            raise gr.Error(error_message(exc, fn.__name__)) from exc

    return wrapper


def error_message(exc: Exception, where: str = "") -> str:
    """What a user reads for ``exc``: the toolkit's message, or a plain "could not be processed"
    (the details go to the server log) for anything unforeseen."""
    import gradio as gr
    from toolkit.errors import ToolkitError

    if isinstance(exc, (ToolkitError, gr.Error)):
        return str(exc.message if isinstance(exc, gr.Error) else exc)
    logging.getLogger(__name__).error("%s failed", where or "a request", exc_info=exc)
    return "The input could not be processed. Check it (the kind of file, the numbers) and try again."


def batch_outputs(results: list, n_outputs: int, empty: tuple) -> list[list]:
    """A ``batch=True`` handler's return value from one result per request: an output tuple, or
    an exception for a request that failed. A lone request that failed raises ``gr.Error`` (one
    message in the page); in a batch of several, a failed request gets ``empty`` with the message
    in its last output (the note), so one bad request never fails the others."""
    import gradio as gr

    if len(results) == 1 and isinstance(results[0], Exception):
        raise gr.Error(error_message(results[0]))
    rows = [(*empty[:-1], f"**Error:** {error_message(r)}") if isinstance(r, Exception) else tuple(r)
            for r in results]
    return [[row[i] for row in rows] for i in range(n_outputs)]


UNSURE_MARK = " (unsure)"  # after each label of an answer the model is not sure of


def not_sure_note(what: str, why: str) -> str:
    """The verdict a "not sure" answer opens with; ``why`` from the calibration ("looks unlike ...",
    "sounds unlike ...", "reads unlike ..." or "the model is not confident: ...")."""
    reason = why if why.startswith("the model") else f"this {what} {why}"
    return f"**Not sure: {reason}.** The labels are the model's guesses, marked \"{UNSURE_MARK.strip()}\"."


def milliseconds(ms: float) -> str:
    """A duration for the page, to 3 significant digits and never in exponent notation."""
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.3g} ms"


def input_kind(block: Any) -> str:
    """What an input component takes, in user words (for the message of an unreadable input)."""
    import gradio as gr

    label = getattr(block, "label", None) or type(block).__name__
    if isinstance(block, gr.Slider):
        kind = f"a number from {block.minimum:g} to {block.maximum:g}"
    elif isinstance(block, gr.Number):
        kind = "a number"
    elif isinstance(block, (gr.Dropdown, gr.Radio)):
        names = [str(c[1] if isinstance(c, (tuple, list)) else c) for c in (block.choices or [])]
        kind = "one of " + ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
    elif isinstance(block, gr.ImageEditor):
        kind = "a drawing"
    elif isinstance(block, (gr.File, gr.Image)):
        kind = "an uploaded file"
    elif isinstance(block, gr.Textbox):
        kind = "text"
    else:
        kind = "a value like the page sends"
    return f"{label} ({kind})"


def guard_inputs(app: Any) -> Any:
    """Make Gradio's own reading of a request's inputs (before any handler runs) answer a bad
    value with a message in user words (``gr.Error``) naming what each input takes, instead of an
    error without a message or a developer's trace. Returns ``app``."""
    import gradio as gr

    original = app.preprocess_data

    async def preprocess_data(block_fn, inputs, state, *args, **kwargs):
        try:
            return await original(block_fn, inputs, state, *args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            logging.getLogger(__name__).info("Unreadable inputs for %s: %s", getattr(block_fn, "name", "?"), exc)
            expected = "; ".join(input_kind(b) for b in block_fn.inputs)
            raise gr.Error(f"The request's inputs could not be read. Expected: {expected}. Received a value of "
                           "another kind. Check the values and try again.") from None

    app.preprocess_data = preprocess_data
    return app


# ---------------------------------------------------------------------- the explanation process

_EXPLAINER: dict[str, Any] = {"pool": None}
_EXPLAINER_LOCK = threading.Lock()


def _lower_priority() -> None:
    """The explanation process's start: the lowest CPU priority and one thread for TensorFlow, so
    that predictions (in the server's process) get the cores first whenever both want them and
    an explanation never spreads over both cores; and it ends when the server
    does, however the server ends (a killed server runs no clean-up)."""
    from toolkit.serving import end_with_parent

    end_with_parent()  # before the slow import: a server killed meanwhile ends this process too
    os.nice(EXPLAIN_NICENESS)
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = "1"  # one core at most: the other stays free for predictions
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def explainer_pool():
    """The one explanation process (started on first use, spawned: TensorFlow does not survive a
    fork), which keeps each tab's models loaded between explanations."""
    with _EXPLAINER_LOCK:
        if _EXPLAINER["pool"] is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _EXPLAINER["pool"] = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_lower_priority)
        return _EXPLAINER["pool"]


def _explanation_job(job: Callable, args: tuple) -> tuple[bool, Any]:
    """In the explanation process: (True, ``job(*args)``), or (False, the message for the user)."""
    try:
        return True, job(*args)
    except Exception as exc:  # the message crosses the process boundary, not the exception
        return False, error_message(exc, getattr(job, "__name__", "an explanation"))


def run_explanation(job: Callable, *args: Any) -> Any:
    """``job(*args)`` in the explanation process (``job`` a module-level function, ``args`` plain
    values: texts, paths, arrays); its error becomes a ``gr.Error`` with the job's message."""
    import gradio as gr
    from concurrent.futures.process import BrokenProcessPool

    pool = explainer_pool()
    try:
        ok, value = pool.submit(_explanation_job, job, args).result()
    except BrokenProcessPool:  # the process died (e.g. out of memory): the next explanation starts another
        with _EXPLAINER_LOCK:
            if _EXPLAINER["pool"] is pool:
                _EXPLAINER["pool"] = None
        raise gr.Error("The explanation stopped before it finished (its process ended). Try again; if it fails "
                       "again, try a smaller input.") from None
    if not ok:
        raise gr.Error(value)
    return value


def warm_explainer(job: Callable, *args: Any) -> None:
    """Start the explanation process and run ``job(*args)`` there (loading the models it needs)
    without waiting for it; an error is only logged."""
    future = explainer_pool().submit(_explanation_job, job, args)
    future.add_done_callback(lambda f: f.exception() and logging.getLogger(__name__).warning(
        "Warming up the explanation process failed: %s", f.exception()))


def named(fn, service, name: str):
    """``fn`` bound to ``service``, named ``name`` (Gradio names an endpoint after its function)."""
    handler = functools.partial(fn, service)
    handler.__name__ = name
    return handler


# ---------------------------------------------------------------------- models


def read_card_or_none(directory: str | Path) -> dict | None:
    """The card of a model folder, or None when it is missing or unreadable."""
    from toolkit.errors import ToolkitError
    from toolkit.storage import read_card

    try:
        return read_card(directory)
    except ToolkitError:
        return None


class ModelSlot:
    """One model folder: the task, loaded on first use (once, under a lock), and its TFLite runners.

    A folder that does not load is not cached: ``make models`` may fix it while the app runs.
    """

    def __init__(self, name: str, directory: str | Path):
        self.name = name
        self.directory = Path(directory)
        self.task = None
        self.runners: dict[str, Any] = {}
        self.lock = threading.RLock()  # runner() may load the task while holding it

    def load(self):
        if self.task is None:
            with self.lock:
                if self.task is None:
                    from toolkit.base import load
                    from toolkit.errors import ToolkitError

                    try:
                        self.task = load(self.directory)
                    except ToolkitError as exc:
                        raise unavailable(self.name, self.directory, exc) from exc
        return self.task

    def card(self) -> dict | None:
        """The folder's card (read without loading the model), or None."""
        return read_card_or_none(self.directory)

    def backends(self) -> list[str]:
        """Keras, then each TFLite file of the model that is on disk (only Keras when it has no card).
        Read from the card until the model is loaded, so building a page loads no model."""
        if self.task is not None:
            entries = self.task.tflite_
        else:
            entries = (self.card() or {}).get("tflite")
        entries = entries if isinstance(entries, list) else []
        files = [str(e["file"]) for e in entries if isinstance(e, dict) and e.get("file")
                 and (self.directory / str(e["file"])).is_file()]
        return [KERAS, *files]

    def runner(self, backend: str, make: Callable[[Path], Any]):
        """The runner of the TFLite file ``backend`` (made once by ``make(path)``)."""
        with self.lock:
            if backend not in self.runners:
                self.runners[backend] = make(self.directory / backend)
        return self.runners[backend]


class ModelService:
    """One saved model and its TFLite files, loaded once and shared by all requests. A tab's
    service sets ``what`` and ``default_dir`` and says how to warm the model (``warm``) and open
    one of its TFLite files (``open_file``)."""

    what = "model"
    default_dir: Path

    def __init__(self, model_dir: str | Path | None = None):
        self.slot = ModelSlot(self.what, model_dir if model_dir else self.default_dir)
        self.model_dir = self.slot.directory

    @property
    def task(self):
        return self.slot.load()

    def warm(self, task) -> None:
        """Run the model once (traces its serving function)."""

    def open_file(self, path: Path):
        raise NotImplementedError

    def warm_up(self) -> None:
        """Load the model and trace its serving function now, not on the first request."""
        from toolkit.errors import ToolkitError

        try:
            task = self.task
        except ToolkitError:  # a missing or broken model: the facts panel and each request say so
            return
        self.warm(task)

    def backends(self) -> list[str]:
        return self.slot.backends()

    def predictor(self, backend: Any):
        """The Keras task, or the runner of one of its TFLite files."""
        if backend in (None, "", KERAS):
            return self.task
        if not isinstance(backend, str) or backend not in self.backends():
            from toolkit.errors import ModelFormatError

            raise ModelFormatError(f"Unknown model file {backend!r}. Choose one of {self.backends()}.")
        return self.slot.runner(backend, self.open_file)


def missing_note(folders: dict[str, Path]) -> str:
    """A markdown warning naming the model folders (label -> folder) without a card ("" when all have one)."""
    missing = [f"{label} ({directory})" for label, directory in folders.items()
               if not (Path(directory) / "card.json").is_file()]
    return f"**Not available yet:** {'; '.join(missing)}. {MAKE_MODELS}" if missing else ""


def folders_key(folders: dict | None) -> tuple | None:
    """A hashable key of a tab's model folders (name -> folder) for its ``shared_service`` cache."""
    return tuple((k, str(v)) for k, v in folders.items()) if folders is not None else None


def tab_header(markdown: str, warning: str) -> None:
    """A tab's introduction and, when models are missing, the warning that names them (inside a gr.Blocks)."""
    import gradio as gr

    gr.Markdown(markdown)
    if warning:
        gr.Markdown(warning)


# ---------------------------------------------------------------------- inputs


def as_int(value: Any, what: str, default: int) -> int:
    """A whole number (``default`` when empty), else a DataError naming ``what``."""
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise data_error(f"Expected {what} as a whole number. Received {value!r}.") from None
    if not np.isfinite(number) or number != int(number):
        raise data_error(f"Expected {what} as a whole number. Received {value!r}.")
    return int(number)


def int_in(value: Any, what: str, low: int, high: int, default: int | None = None) -> int:
    """A whole number from ``low`` to ``high``, else a DataError naming ``what`` and the range."""
    number = as_int(value, what, low if default is None else default)
    if not low <= number <= high:
        raise data_error(f"Expected {low} to {high} {what}. Received {number}. Choose a value in that range.")
    return number


#: One seed range for every endpoint (what NumPy and the environments take everywhere)
MAX_SEED = 2**31 - 1


def seed_value(value: Any, default: int = 0) -> int:
    """A seed from 0 to MAX_SEED (``default`` when empty), else a DataError that says so."""
    number = as_int(value, "the seed", default)
    if not 0 <= number <= MAX_SEED:
        raise data_error(f"Expected the seed between 0 and {MAX_SEED}. Received {number}. Choose a whole number in "
                         "that range.")
    return number


def notes_markdown(notes: Iterable[str]) -> str:
    """Notes as markdown quotes after a handler's message."""
    return "".join(f"\n\n> {n}" for n in notes)


def upload_path(upload: Any) -> Path | None:
    """The path of an upload: a path, Gradio's file dict or a tempfile wrapper (None when empty)."""
    if upload is None or upload == "":
        return None
    if isinstance(upload, (str, Path)):
        return Path(upload)
    if isinstance(upload, dict):
        path = upload.get("path") or upload.get("name")
        return Path(path) if path else None
    path = getattr(upload, "path", None) or getattr(upload, "name", None)
    return Path(path) if path else None


def request_image(upload: Any, sketch: Any = None, digit_like: bool = False,
                  target_size: tuple[int, int] | None = None) -> np.ndarray:
    """The request's image: the upload if there is one, else the drawing; made the way the digits
    set was made (``toolkit.data.drawings.digit_image``) when the model was trained on it.
    ``target_size`` (height, width), the model's input: an upload is reduced while decoding
    (never below it), so a large photo costs neither the time nor the memory of its full size."""
    from toolkit.data import read_image
    from toolkit.errors import DataError

    image = None
    path = upload_path(upload)
    if path is not None:
        image = read_image(path, name=f"the upload ({path.name})", target_size=None if digit_like else target_size)
    elif sketch is not None:
        image = sketch_image(sketch)
    if image is None:
        raise DataError("No image received. Upload an image file or draw a digit on the sketchpad first.")
    if digit_like:
        return digit_style(image)
    return on_white(image) if image.shape[-1] == 4 else image


def sketch_image(sketch: Any) -> np.ndarray | None:
    """The sketchpad's drawing as an (H, W, 3|4) uint8 array (RGBA: strokes on a transparent canvas),
    or None when nothing is drawn. Takes Gradio's ImageEditor value (``composite``, or ``background``
    with ``layers`` when there is no composite) or an array."""
    if isinstance(sketch, dict):
        composite = sketch.get("composite")
        if composite is None:
            composite = flatten_layers(sketch.get("background"), sketch.get("layers") or [])
    else:
        composite = sketch
    if composite is None:
        return None
    arr = np.asarray(composite)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.size == 0 or arr.shape[-1] not in (1, 3, 4):
        return None
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    arr = np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr
    from toolkit.data.drawings import MIN_INK, ink

    return arr if float(ink(arr).max()) >= MIN_INK else None  # nothing drawn


def flatten_layers(background: Any, layers: list) -> np.ndarray | None:
    """Sketch layers (RGBA) composited over the background (transparent when there is none)."""
    images = [np.asarray(a, np.float32) for a in [background, *layers] if a is not None and np.asarray(a).ndim == 3]
    if not images:
        return None
    out = np.zeros((*images[0].shape[:2], 4), np.float32)
    for img in images:
        if img.shape[:2] != out.shape[:2]:
            continue  # a layer of another size cannot be placed: Gradio sends them all canvas-sized
        rgba = img if img.shape[-1] == 4 else np.concatenate([img[..., :3], np.full((*img.shape[:2], 1), 255.0)], -1)
        alpha = rgba[..., 3:4] / 255.0
        out[..., :3] = rgba[..., :3] * alpha + out[..., :3] * (1 - alpha)
        out[..., 3:4] = 255.0 * (alpha + out[..., 3:4] / 255.0 * (1 - alpha))
    return out


def on_white(image: np.ndarray) -> np.ndarray:
    """An RGBA image flattened onto white paper (RGB uint8)."""
    alpha = image[..., 3:4].astype(np.float32) / 255.0
    return (image[..., :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)).astype(np.uint8)


def digit_style(image: np.ndarray) -> np.ndarray:
    """A drawing or photo of one digit made the way scikit-learn's digits were: light ink on black,
    cropped to the strokes, strokes of the set's width, aspect kept, centred, 4x4 blocks counted
    (an (8, 8, 1) array of raw pixels 0-255). An empty drawing raises a DataError."""
    from toolkit.data.drawings import digit_image

    return digit_image(image)


# ---------------------------------------------------------------------- card facts

# A TFLite table column: (header, card key, format); the file and its size always come first.
ACCURACY_COLUMNS = (("test accuracy", "test_accuracy", "{:.4f}"),
                    ("agreement with Keras", "agreement_with_keras", "{:.4f}"),
                    ("latency p50", "latency_ms_p50", "{:.3f} ms"))


def tflite_table(entries: list[dict], columns=ACCURACY_COLUMNS) -> list[str]:
    """The markdown table of a card's TFLite files (``n/a`` where a file lacks a value)."""
    lines = ["\n| file | size | " + " | ".join(c[0] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for e in entries:
        cells = [fmt.format(e[key]) if key in e else "n/a" for _, key, fmt in columns]
        lines.append(f"| {e['file']} | {e.get('size_bytes', 0) / 1024:.0f} KiB | " + " | ".join(cells) + " |")
    return lines


def metric_line(metrics: dict, shown: Iterable[tuple[str, str]], prefix: str) -> list[str]:
    """``prefix`` then each (label, key) of ``shown`` that ``metrics`` holds as a number ([] when none)."""
    parts = [f"{label} {metrics[key]:.3f}" for label, key in shown if isinstance(metrics.get(key), (int, float))]
    return [prefix + "; ".join(parts) + "."] if parts else []


def card_facts(card: dict, title: str | None, summary: Iterable[str], tflite_columns=ACCURACY_COLUMNS,
               no_tflite: str | None = None) -> str:
    """One model's facts from its card as markdown: the title, what the tab says about it
    (``summary`` lines: task, data, metrics), its TFLite files, and the command that made it."""
    lines = ([f"#### {title}"] if title else []) + list(summary)
    if card.get("tflite") and tflite_columns:
        lines += tflite_table(card["tflite"], tflite_columns)
    elif no_tflite:
        lines.append(no_tflite)
    if card.get("command"):
        lines.append(f"\nMade by `{card['command']}`.")
    return "\n".join(lines)


def folder_facts(title: str, directory: str | Path, describe: Callable[[dict], str]) -> str:
    """``describe(card)`` for a model folder, or a note that the model is not there."""
    card = read_card_or_none(directory)
    if card is None:
        return f"#### {title}\n**Model not available** ({directory}). {MAKE_MODELS}"
    return describe(card)
