"""Vision tab: upload or draw an image, see the top-5 labels, why, and how fast each file answers.

Plain handler functions (tested directly) plus ``build_demo(model_dir) -> gr.Blocks``. Nothing
heavy happens at import time: the model and its TFLite files load on the first request.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO / "saved_models" / "vision" / "digits_cnn"
KERAS = "Keras"
TOP_K = 5


class VisionService:
    """One saved model and its TFLite files, loaded once and shared by all requests."""

    def __init__(self, model_dir: str | Path | None = None):
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self._task = None
        self._runners: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.download_dir: Path | None = None

    @property
    def task(self):
        if self._task is None:
            with self._lock:
                if self._task is None:
                    from toolkit.base import load

                    self._task = load(self.model_dir)
        return self._task

    def warm_up(self) -> None:
        """Load the model and trace its serving function now, not on the first request."""
        from toolkit.errors import ToolkitError

        try:
            task = self.task
        except ToolkitError:  # a missing or broken model: the facts panel and each request say so
            return
        task._probabilities(np.zeros((1, *task.input_shape_), np.float32))

    def backends(self) -> list[str]:
        from toolkit.errors import ToolkitError

        try:
            files = [e["file"] for e in self.task.tflite_ if (self.model_dir / e["file"]).is_file()]
        except ToolkitError:  # the facts panel reports a broken model folder; the choice stays usable
            files = []
        return [KERAS, *files]

    def predictor(self, backend: str):
        if backend in (None, "", KERAS):
            return self.task
        if backend not in self.backends():
            from toolkit.errors import ModelFormatError

            raise ModelFormatError(f"Unknown model file {backend!r}. Choose one of {self.backends()}.")
        with self._lock:
            if backend not in self._runners:
                from toolkit.edge import TFLiteModel

                self._runners[backend] = TFLiteModel(self.model_dir / backend, card=self.task.card())
        return self._runners[backend]

    # ------------------------------------------------------------------ inputs
    def model_input(self, upload: Any, sketch: Any) -> np.ndarray:
        """The request's image as the model's (1, H, W, C) raw-pixel input."""
        image = request_image(upload, sketch, digit_like=self.task.input_meta_.get("polarity") == "light_on_dark")
        return self.task._prepare(image)


def request_image(upload: Any, sketch: Any = None, digit_like: bool = False) -> np.ndarray:
    """The request's image: the upload if there is one, else the drawing; made to look like the
    digits set (light ink on black, centred) when the model was trained on it."""
    from toolkit.data import read_image
    from toolkit.errors import DataError

    image = None
    if upload:  # a path, a tempfile wrapper or Gradio's file dict
        path = upload if isinstance(upload, (str, Path)) else getattr(upload, "name", None) or upload.get("path")
        image = read_image(path, name=f"the upload ({Path(str(path)).name})")
    elif sketch is not None:
        image = _sketch_image(sketch)
    if image is None:
        raise DataError("No image received. Upload an image file or draw a digit on the sketchpad first.")
    return digit_style(image) if digit_like else image


def _sketch_image(sketch: Any) -> np.ndarray | None:
    """The sketchpad's composite (RGBA, strokes on a transparent canvas) as RGB on white."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if composite is None:
        return None
    arr = np.asarray(composite)
    if arr.ndim != 3 or arr.size == 0:
        return None
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        arr = arr[..., :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)
    if float(arr.min()) >= 250:  # nothing drawn
        return None
    return arr.astype(np.uint8)


def digit_style(image: np.ndarray) -> np.ndarray:
    """Make a drawing or photo look like the digits set: light ink on black, centred, square."""
    gray = image.astype(np.float32).mean(axis=-1)
    if gray.mean() > 127:  # dark ink on light paper
        gray = 255.0 - gray
    gray -= gray.min()
    ink = gray > 0.05 * max(float(gray.max()), 1.0)
    if ink.any():  # the digits set's digits fill the frame: crop to the ink, pad to a square
        rows, cols = np.where(ink)
        gray = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(gray.shape)
    canvas = np.zeros((side, side), np.float32)
    top, left = (side - gray.shape[0]) // 2, (side - gray.shape[1]) // 2
    canvas[top : top + gray.shape[0], left : left + gray.shape[1]] = gray
    peak = float(canvas.max())
    if peak > 0:
        canvas *= 255.0 / peak
    return canvas[..., None]


# ---------------------------------------------------------------------- handlers


def _user_errors(fn):
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
        except Exception as exc:  # a bug or an input nobody foresaw: say so, without a stack trace
            logging.getLogger(fn.__module__).exception("%s failed", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(exc).__name__}: {exc}). The input could not be processed; "
                           "check it and try again.") from exc

    return wrapper


@_user_errors
def classify_image(service: VisionService, upload: Any, sketch: Any, backend: str = KERAS):
    """Top-5 labels with probabilities, the model's view of the input, and the latency."""
    batch = service.model_input(upload, sketch)
    predictor = service.predictor(backend)
    start = time.perf_counter()
    probs = predictor._probabilities(batch)[0]
    elapsed = (time.perf_counter() - start) * 1000
    labels = service.task.class_names_
    order = np.argsort(-probs)[:TOP_K]
    top = {labels[i]: float(probs[i]) for i in order}
    from toolkit.explain import to_display_rgb

    return top, to_display_rgb(batch[0]), f"**{backend}**: {elapsed:.2f} ms for this prediction"


@_user_errors
def explain_image(service: VisionService, upload: Any, sketch: Any, method: str = "gradcam", backend: str = KERAS):
    """The explanation overlay for the predicted class, and what it cost."""
    batch = service.model_input(upload, sketch)
    keras_only = method != "lime" and backend not in (None, "", KERAS)
    # LIME only needs predictions, so the chosen file answers them; Grad-CAM and SHAP need gradients.
    predictor = service.predictor(KERAS if keras_only else backend)
    explanation = service.task.explain(batch[0], method=method, predictor=predictor)
    source = f"{KERAS} (gradients need it)" if keras_only else (backend or KERAS)
    note = (
        f"**{method}** for class **{explanation.target}** on {source}: {explanation.seconds * 1000:.0f} ms. "
        + ("Red supports the class, blue speaks against it." if method != "gradcam" else "Warm colours mark the "
           "regions that drove the prediction.")
    )
    return explanation.image, note


def model_facts(service: VisionService) -> str:
    """Markdown facts from the card: data, input, accuracy, each TFLite file."""
    from toolkit.errors import ToolkitError

    try:
        task = service.task
    except ToolkitError as exc:  # a missing or broken model folder is shown, not raised
        return f"**Model not available** ({service.model_dir}): {exc}\n\nRun `make models` to build it."
    card = task.card()
    metrics = task.metrics_
    lines = [
        f"**Model** `{service.model_dir.name}`: {card['config']['backbone']} backbone, "
        f"{len(task.class_names_)} classes, input {card['input']['shape']} raw pixels 0-255.",
    ]
    if "test_accuracy" in metrics:
        lines.append(f"**Keras test accuracy** {metrics['test_accuracy']:.4f}.")
    if task.tflite_:
        lines.append("\n| file | size | test accuracy | agreement with Keras | latency p50 |")
        lines.append("|---|---|---|---|---|")
        for e in task.tflite_:
            acc = f"{e['test_accuracy']:.4f}" if "test_accuracy" in e else "n/a"
            agree = f"{e['agreement_with_keras']:.4f}" if "agreement_with_keras" in e else "n/a"
            lines.append(f"| {e['file']} | {e['size_bytes'] / 1024:.0f} KiB | {acc} | {agree} | "
                         f"{e['latency_ms_p50']:.3f} ms |")
    if card.get("command"):
        lines.append(f"\nMade by `{card['command']}`.")
    return "\n".join(lines)


def compression_facts(service: VisionService) -> str:
    """The compression report from the card: every variant's accuracy, size, gzipped size,
    latency and agreement with the float model (`toolkit compress MODEL --report` writes it)."""
    from toolkit.errors import ToolkitError

    try:
        section = service.task.compression_
    except ToolkitError as exc:
        return f"**Model not available** ({service.model_dir}): {exc}"
    if not section:
        return (f"No compression report for `{service.model_dir.name}` yet. Make one with "
                f"`toolkit compress {service.model_dir} --report`.")
    from toolkit.edge.compression import report_markdown

    return (report_markdown(section) + "\nChoose any of these files under **Model file** to classify with it, "
            "and download it with the button.")


def download_file(service: VisionService, backend: str):
    """The chosen .tflite file (or model.keras) for download.

    Served from a temporary copy: Gradio serves files from the working directory or the
    system's temp directory only, and the model folder may be elsewhere.
    """
    name = "model.keras" if backend in (None, "", KERAS) else backend
    path = service.model_dir / name
    if not path.is_file():
        return None
    if service.download_dir is None:
        service.download_dir = Path(tempfile.mkdtemp(prefix="toolkit-downloads-"))
    copy = service.download_dir / name
    if not copy.exists():
        shutil.copyfile(path, copy)
    return str(copy)


# ---------------------------------------------------------------------- UI


def build_demo(model_dir: str | Path | None = None):
    import gradio as gr

    from toolkit.explain import METHODS

    service = VisionService(model_dir)
    service.warm_up()
    choices = service.backends()
    with gr.Blocks(title="Vision") as demo:
        gr.Markdown("### Image classification\nUpload an image or draw a digit, then classify or explain it.")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload an image (PNG, JPEG, BMP, GIF)", type="filepath",
                                 file_types=["image"])
                sketch = gr.Sketchpad(label="...or draw a digit", type="numpy", image_mode="RGBA",
                                      canvas_size=(280, 280),
                                      brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"))
                backend = gr.Dropdown(choices, value=KERAS, label="Model file")
                method = gr.Radio(list(METHODS), value="gradcam", label="Explanation method")
                with gr.Row():
                    classify_btn = gr.Button("Classify", variant="primary")
                    explain_btn = gr.Button("Explain")
            with gr.Column():
                labels = gr.Label(num_top_classes=TOP_K, label="Top 5")
                latency = gr.Markdown()
                with gr.Row():
                    seen = gr.Image(label="What the model sees", type="numpy", height=200)
                    overlay = gr.Image(label="Explanation", type="numpy", height=200)
                explain_note = gr.Markdown()
                download = gr.DownloadButton("Download the chosen model file",
                                             value=download_file(service, KERAS))
        with gr.Accordion("Model facts (from card.json)", open=False):
            gr.Markdown(model_facts(service))
        with gr.Accordion("Compression: pruning, clustering, quantization-aware training", open=False):
            gr.Markdown(compression_facts(service))

        classify = functools.partial(classify_image, service)
        classify.__name__ = "classify_image"
        explain = functools.partial(explain_image, service)
        explain.__name__ = "explain_image"
        classify_btn.click(classify, [upload, sketch, backend], [labels, seen, latency], api_name="classify_image")
        upload.upload(classify, [upload, sketch, backend], [labels, seen, latency], api_name=False)
        explain_btn.click(explain, [upload, sketch, method, backend], [overlay, explain_note],
                          api_name="explain_image")
        backend.change(functools.partial(download_file, service), [backend], [download], api_name=False)
    return demo
