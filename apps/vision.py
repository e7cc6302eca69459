"""Vision tab: upload or draw an image, see the top-5 labels, why, and how fast each file answers.

A calibrated model (``toolkit calibrate``) says "not sure" instead of a confident wrong label when
the image looks unlike its training images: the labels are then marked as guesses.

Plain handler functions (tested directly) plus ``build_demo(model_dir) -> gr.Blocks``. Nothing
heavy happens at import time: the model and its TFLite files load on the first request.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import (DRAW_AT_ONCE, EXPLAIN, KERAS, MAKE_MODELS, PREDICT, SAVED_MODELS, SELECT_BRUSH_JS, ModelService,
                         UNSURE_MARK, batch_outputs, card_facts, data_error, milliseconds, not_sure_note,
                         request_image, run_explanation, user_errors)

DEFAULT_MODEL_DIR = SAVED_MODELS / "vision" / "digits_cnn"
#: the tab's models, in menu order (those whose folder exists); the first is the default
MODELS = {
    "ImageNet photos (EfficientNet-Lite0, 1000 classes)": SAVED_MODELS / "vision" / "imagenet_efficientnet_lite0",
    "Ants or bees (transfer learning)": SAVED_MODELS / "vision" / "ants_bees",
    "Digits (draw one)": DEFAULT_MODEL_DIR,
}
TITLE = "Vision"
TOP_K = 5


class VisionService(ModelService):
    """One saved image classifier and its TFLite files, loaded once and shared by all requests."""

    what = "image classifier"
    default_dir = DEFAULT_MODEL_DIR

    def __init__(self, model_dir: str | Path | None = None):
        super().__init__(model_dir)
        self.download_dir: Path | None = None

    def warm(self, task) -> None:
        from toolkit.vision.litert_backbone import serve_with_litert

        serve_with_litert(task)  # a frozen ImageNet backbone: its float32 weights run by LiteRT from now on
        task.probabilities(np.zeros((1, *task.input_shape_), np.float32))

    def open_file(self, path: Path):
        from toolkit.edge import TFLiteModel

        return TFLiteModel(path, card=self.task.card())

    # ------------------------------------------------------------------ inputs
    def model_input(self, upload: Any, sketch: Any) -> np.ndarray:
        """The request's image as the model's (1, H, W, C) raw-pixel input."""
        image = request_image(upload, sketch, digit_like=self.task.input_meta_.get("polarity") == "light_on_dark",
                              target_size=tuple(self.task.input_shape_[:2]))
        return self.task.prepare(image)


# ---------------------------------------------------------------------- handlers


def classify_rows(rows: list) -> list:
    """Classify many requests in one model pass per (model, file): each row is
    ``(service, upload, sketch, backend)`` or an exception (a request already refused); returns
    per row the outputs of :func:`classify_image` or the exception that refused it."""
    from toolkit.explain import to_display_rgb

    results: list = list(rows)
    groups: dict = {}
    for i, prepared in enumerate(in_parallel(request_input, rows)):
        if isinstance(prepared, Exception):  # this request alone is refused
            results[i] = prepared
            continue
        service, predictor, backend, batch = prepared
        groups.setdefault((id(service), backend), (predictor, backend, [], []))
        groups[(id(service), backend)][2].append(i)
        groups[(id(service), backend)][3].append(batch)
    for predictor, backend, indices, batches in groups.values():
        try:
            x = np.concatenate(batches)
            start = time.perf_counter()
            probs, features = predictor.probabilities_and_features(x)  # one pass: features for "not sure"
            answers = predictor.assess_batch(x, probs, k=TOP_K, features=features)
            elapsed = (time.perf_counter() - start) * 1000
        except Exception as exc:
            for i in indices:
                results[i] = exc
            continue
        shared = f" (one pass for {len(indices)} requests)" if len(indices) > 1 else ""
        for i, answer, image in zip(indices, answers, x):
            mark = UNSURE_MARK if answer["not_sure"] else ""
            top = {row["label"] + mark: row["probability"] for row in answer["top_k"]}
            note = f"**{backend}**{runtime_note(predictor)}: {milliseconds(elapsed)} for this prediction{shared}"
            if answer["not_sure"]:
                note = f"{not_sure_note('image', answer['why'])}\n\n{note}"
            results[i] = (top, to_display_rgb(image), note)
    return results


def request_input(row: Any) -> tuple | Exception:
    """``(service, predictor, backend, model input)`` of one row of :func:`classify_rows`, or the
    exception that refuses it."""
    if isinstance(row, Exception):
        return row
    service, upload, sketch, backend = row
    try:
        if isinstance(sketch, Drawing):
            sketch = sketch.read()  # also when there is an upload: reading frees the drawing Gradio keeps
        backend = KERAS if backend in (None, "") else backend
        if not isinstance(backend, str):
            raise data_error(f"Expected the model file's name. Received {type(backend).__name__}.")
        return service, service.predictor(backend), backend, service.model_input(upload, sketch)
    except Exception as exc:
        return exc


#: threads that decode a batch's uploads (PIL and OpenCV release the GIL while they work)
DECODERS = 2


@functools.lru_cache(maxsize=1)
def decode_pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(DECODERS, thread_name_prefix="vision-decode")


def in_parallel(fn: Any, items: list) -> list:
    """``[fn(item) for item in items]``, on :data:`DECODERS` threads when there are several items."""
    if len(items) < 2 or DECODERS < 2:
        return [fn(item) for item in items]
    return list(decode_pool().map(fn, items))


def runtime_note(predictor: Any) -> str:
    """What ran a Keras model's frozen backbone when it was not TensorFlow ("" otherwise)."""
    from toolkit.vision.feature_memo import served_features

    served = served_features(predictor)
    return f" (its ImageNet backbone's float32 weights run by {served.runtime})" if served is not None else ""


@user_errors
def classify_image(service: VisionService, upload: Any, sketch: Any, backend: str = KERAS):
    """Top-5 labels with probabilities (temperature-scaled when the model is calibrated; marked
    "(unsure)" when the model is not sure), the model's view of the input, and a note: the
    verdict when not sure, and the latency."""
    (result,) = classify_rows([(service, upload, sketch, backend)])
    if isinstance(result, Exception):
        raise result
    return result


def classify_batch(services: dict[str, "VisionService"], sketchpad: Any = None, outputs: list | None = None):
    """The ``batch=True`` handler of the Classify event: lists of uploads, sketches, files and
    model names in, lists of labels, images and notes out (one model pass per model and file).

    ``sketchpad``: the page's Sketchpad when the event passes its inputs unprocessed
    (``preprocess=False``: Gradio then hands each input to the handler as it arrived, without a
    thread hop per input and request); its drawing is then read here, on the decoding threads.
    ``outputs``: the page's (labels, image, note) components when the event returns its outputs
    as they are sent (``postprocess=False``): each component's own ``postprocess`` then runs here,
    the images' JPEG encoding on the decoding threads, instead of one thread hop per output and
    request (see :func:`postprocessed`)."""

    def classify_image(uploads, sketches, backends, models=None):
        models = models if models is not None else [None] * len(uploads)
        rows = []
        for upload, sketch, backend, model in zip(uploads, sketches, backends, models):
            try:
                if sketchpad is not None and sketch is not None:
                    sketch = Drawing(sketchpad, sketch)
                rows.append((choose(services, model), upload, sketch, backend))
            except Exception as exc:
                rows.append(exc)
        columns = batch_outputs(classify_rows(rows), 3, (None, None, ""))
        return columns if outputs is None else postprocessed(outputs, columns)

    return classify_image


def postprocessed(outputs: list, columns: list[list]) -> list[list]:
    """``columns`` (one list of values per output component) as Gradio sends them: each value
    through its component's ``postprocess`` (a component's data model as its dict), what Gradio
    does itself for an event declared with ``postprocess=True``; images on the decoding threads."""
    from gradio.data_classes import GradioModel, GradioRootModel

    def send(component: Any, value: Any) -> Any:
        value = component.postprocess(value)
        return value.model_dump() if isinstance(value, (GradioModel, GradioRootModel)) else value

    return [in_parallel(functools.partial(send, component), column)
            if any(isinstance(value, np.ndarray) for value in column) else [send(component, value) for value in column]
            for component, column in zip(outputs, columns)]


class Drawing:
    """A Sketchpad's value as Gradio passes it unprocessed; :meth:`read` gives what the
    Sketchpad's own preprocess gives (read on a decoding thread, see :func:`request_input`). The
    page's Sketchpad object holds the drawings the browser sent (no event updates the Sketchpad, so
    each session's copy of it is that same object)."""

    def __init__(self, sketchpad: Any, value: Any):
        self.sketchpad, self.value = sketchpad, value

    def read(self) -> Any:
        try:
            data = self.sketchpad.data_model.model_validate(self.value)
            return self.sketchpad.preprocess(data)
        except Exception as exc:
            raise data_error("The drawing could not be read. Expected the sketchpad's drawing (background, layers "
                             "and composite image). Draw again or upload an image file.") from exc


def clear_outputs():
    """Empty results, so that no answer stays on screen once its input has changed."""
    return None, None, "", None, ""


def clear_explanation():
    """An empty explanation, so that no overlay of an earlier image stays beside a new answer."""
    return None, ""


@user_errors
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


def explain_job(key: str | None, upload: Any, sketch: Any, method: Any, backend: Any, model: Any):
    """:func:`explain_image` in the explanation process, on that process's copy of the models
    (``key``: the model folder given to :func:`shared_services`, or None for the shipped ones)."""
    return explain_image.__wrapped__(choose(shared_services(key), model), upload, sketch, method, backend)


def explain_handler(key: str | None):
    """The Explain event's handler: the explanation runs in the lower-priority explanation
    process (``apps.common.run_explanation``), so predictions keep their CPU."""

    def explain_image(upload, sketch, method="gradcam", backend=KERAS, model=None):
        return run_explanation(explain_job, key, upload, sketch, method, backend, model)

    return user_errors(explain_image)


def model_facts(service: VisionService) -> str:
    """Markdown facts from the card: data, input, accuracy, each TFLite file."""
    card = service.slot.card()  # read without loading the model: building the page stays fast
    if card is None:  # a missing or broken model folder is shown, not raised
        return f"**Model not available** ({service.model_dir}). {MAKE_MODELS}"
    metrics = card.get("metrics") or {}
    summary = [f"**Model** `{service.model_dir.name}`: {(card.get('config') or {}).get('backbone', '?')} backbone, "
               f"{len(card.get('labels') or [])} classes, input {(card.get('input') or {}).get('shape')} raw pixels "
               "0-255."]
    if isinstance(metrics.get("test_accuracy"), (int, float)):
        summary.append(f"**Keras test accuracy** {metrics['test_accuracy']:.4f}.")
    if card.get("calibration"):
        summary.append("**Calibrated**: it says *not sure* for images unlike its training images.")
    return card_facts(card, None, summary)


def compression_facts(service: VisionService) -> str:
    """The compression report from the card: every variant's accuracy, size, gzipped size,
    latency and agreement with the float model (`toolkit compress MODEL --report` writes it)."""
    card = service.slot.card()
    if card is None:
        return f"**Model not available** ({service.model_dir}). {MAKE_MODELS}"
    section = card.get("compression")
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


@functools.lru_cache(maxsize=4)
def shared_services(model_dir: str | None = None) -> dict[str, VisionService]:
    """One set of services per model folder, so rebuilding the app does not reload models."""
    return tab_services(model_dir)


def warm_up(model_dir: str | Path | None = None) -> None:
    """Load the tab's models ahead of the first request (``apps.main.launch`` runs it in the background)."""
    for service in shared_services(str(model_dir) if model_dir is not None else None).values():
        service.warm_up()


def tab_services(model_dir: str | Path | None = None) -> dict[str, VisionService]:
    """The tab's models by menu name: ``model_dir`` alone, or every shipped folder of ``MODELS``."""
    if model_dir is not None:
        return {Path(model_dir).name: VisionService(model_dir)}
    found = {name: VisionService(d) for name, d in MODELS.items() if d.is_dir()}
    return found or {"Digits (draw one)": VisionService(DEFAULT_MODEL_DIR)}  # says what is missing


def choose(services: dict[str, VisionService], model: Any) -> VisionService:
    """The service of the model chosen in the menu (the first one when none is given)."""
    if model in (None, ""):
        return next(iter(services.values()))
    if not isinstance(model, str) or model not in services:
        raise data_error(f"Unknown model {model!r}. Choose one of {list(services)}.")
    return services[model]


def by_model(fn, services: dict[str, VisionService], name: str):
    """``fn(service, *inputs)`` as a handler whose last input is the model menu, named ``name``."""

    def handler(*args):
        *inputs, model = args
        return fn(choose(services, model), *inputs)

    handler.__name__ = name
    return user_errors(handler)


def build_demo(model_dir: str | Path | None = None):
    import gradio as gr

    from toolkit.explain import METHODS

    key = str(model_dir) if model_dir is not None else None
    services = shared_services(key)
    first = next(iter(services))
    service = services[first]
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown("### Image classification\nChoose a model, upload a photo (or draw a digit for the digits "
                    "model), then classify or explain it. A model says *not sure* when an image looks unlike "
                    "what it was trained on.")
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown(list(services), value=first, label="Model")
                upload = gr.File(label="Upload an image (PNG, JPEG, BMP, GIF)", type="filepath",
                                 file_types=["image"])
                sketch = gr.Sketchpad(label="...or draw a digit", type="numpy", image_mode="RGBA",
                                      canvas_size=(280, 280), elem_classes=[DRAW_AT_ONCE],
                                      brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"))
                backend = gr.Dropdown(service.backends(), value=KERAS, label="Model file",
                                      allow_custom_value=True)  # API callers may name another model's file
                method = gr.Radio(list(METHODS), value="gradcam", label="Explanation method")
                with gr.Row():
                    classify_btn = gr.Button("Classify", variant="primary")
                    explain_btn = gr.Button("Explain")
            with gr.Column():
                labels = gr.Label(num_top_classes=TOP_K, label="Top 5")
                latency = gr.Markdown()
                with gr.Row():
                    seen = gr.Image(label="What the model sees", type="numpy", height=200,
                                    format="jpeg")  # 0.1 ms to encode, WebP (the default) 4 ms a request
                    overlay = gr.Image(label="Explanation", type="numpy", height=200)
                explain_note = gr.Markdown()
                download = gr.DownloadButton("Download the chosen model file",
                                             value=download_file(service, KERAS))
        with gr.Accordion("Model facts (from card.json)", open=False):
            facts = gr.Markdown(model_facts(service))
        with gr.Accordion("Compression: pruning, clustering, quantization-aware training", open=False):
            compression = gr.Markdown(compression_facts(service))

        def model_changed(name):
            chosen = choose(services, name)
            return (gr.update(choices=chosen.backends(), value=KERAS), model_facts(chosen),
                    compression_facts(chosen), download_file(chosen, KERAS))

        classify = classify_batch(services, sketch, [labels, seen, latency])
        explain = explain_handler(key)
        inputs = [upload, sketch, backend, model]  # the model menu last: API callers may leave it out
        answer = [labels, seen, latency]
        explaining = explain_btn.click(clear_explanation, None, [overlay, explain_note], api_name=False,
                                       queue=False).then(
            explain, [upload, sketch, method, backend, model], [overlay, explain_note], api_name="explain_image",
            **EXPLAIN)
        # A new request first clears the explanation of the previous image, then answers; a new
        # image also cancels an explanation still on its way (it belongs to the old image).
        stale_explanation = {"cancels": [explaining]}
        classify_btn.click(clear_explanation, None, [overlay, explain_note], api_name=False, queue=False).then(
            classify, inputs, answer, api_name="classify_image", preprocess=False, postprocess=False, **PREDICT)
        upload.upload(clear_explanation, None, [overlay, explain_note], api_name=False, queue=False,
                      **stale_explanation).then(
            classify, inputs, answer, api_name=False, preprocess=False, postprocess=False, **PREDICT)
        method.change(clear_explanation, None, [overlay, explain_note], api_name=False, queue=False,
                      **stale_explanation)
        backend.change(by_model(download_file, services, "download_file"), [backend, model], [download],
                       api_name=False)
        model.change(model_changed, [model], [backend, facts, compression, download], api_name=False)
        demo.load(None, None, None, js=SELECT_BRUSH_JS, api_name=False)  # the sketchpad draws at once
        stale = [labels, seen, latency, overlay, explain_note]
        for event in (upload.clear, sketch.change, backend.change, model.change):
            event(clear_outputs, None, stale, api_name=False, **stale_explanation)
    return demo
