"""Detection tab: upload a photo (or take one with the webcam), see the boxes with labels and
scores, move the score threshold (the boxes are re-filtered, the model is not run again), switch
between the Keras model and its TFLite files (the latency of each answer is shown), and pick a box
(click it, or choose it in the list) to see why the model found it (D-RISE saliency).

Plain handler functions (tested directly) plus ``build_demo(model_dir) -> gr.Blocks``. Nothing
heavy happens at import time: the model and its TFLite files load on the first request.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import (EXPLAIN, KERAS, MAKE_MODELS, PREDICT, SAVED_MODELS, ModelService, batch_outputs, card_facts,
                         data_error, milliseconds, named, request_image, user_errors)

TITLE = "Detection"
DEFAULT_MODEL_DIR = SAVED_MODELS / "vision" / "raccoon_detector"
#: the longest side of the picture sent back to the page (boxes in the table stay in the upload's pixels)
DISPLAY_SIDE = 800
#: D-RISE masks per explanation: a few seconds on two cores
EXPLAIN_BUDGET = 160
COLUMNS = ["#", "label", "score", "xmin", "ymin", "xmax", "ymax"]
DEFAULT_THRESHOLD = 0.3
MIN_SIDE = 16


class DetectionService(ModelService):
    """One saved detector and its TFLite files, loaded once and shared by all requests."""

    what = "object detector"
    default_dir = DEFAULT_MODEL_DIR

    def warm(self, task) -> None:
        task.raw(np.zeros((1, task.image_size, task.image_size, 3), np.float32))

    def open_file(self, path: Path):
        from toolkit.detection import TFLiteDetector

        return TFLiteDetector(path, card=self.task.card())


# ---------------------------------------------------------------------- inputs


def photo(upload: Any, webcam: Any = None) -> np.ndarray:
    """The request's photo as (H, W, 3) uint8: the upload if there is one, else the webcam's."""
    if upload not in (None, ""):
        image = request_image(upload)
    elif webcam is not None and not isinstance(webcam, (str, dict)):
        image = np.asarray(webcam)
        if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.size == 0 or image.dtype == object:
            raise data_error(f"Expected a webcam picture (H, W, 3). Received an array of shape {image.shape}.")
        image = np.clip(image[..., :3], 0, 255).astype(np.uint8)
    elif isinstance(webcam, (str, dict)):
        image = request_image(webcam)
    else:
        raise data_error("No photo received. Upload a photo (PNG, JPEG, BMP, GIF) or take one with the webcam first.")
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, -1)
    if min(image.shape[:2]) < MIN_SIDE:
        raise data_error(f"The photo is too small: {image.shape[1]}x{image.shape[0]} pixels. Expected at least "
                         f"{MIN_SIDE}x{MIN_SIDE}. Upload a larger photo.")
    return image[..., :3].astype(np.uint8)


def threshold_value(value: Any) -> float:
    """The score threshold from 0 to 1 (the default when empty), else a DataError that says so."""
    if value in (None, ""):
        return DEFAULT_THRESHOLD
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise data_error(f"Expected the score threshold as a number from 0 to 1. Received {value!r}.") from None
    if not 0 <= number <= 1:  # NaN fails too
        raise data_error(f"Expected the score threshold from 0 to 1. Received {value!r}. Move the slider into that "
                         "range.")
    return number


def display_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(the photo at most DISPLAY_SIDE pixels on its longest side, the factor from its pixels to the photo's)."""
    import cv2

    side = max(image.shape[:2])
    if side <= DISPLAY_SIDE:
        return image, 1.0
    scale = DISPLAY_SIDE / side
    small = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    return small, 1.0 / scale


# ---------------------------------------------------------------------- handlers


def result_view(state: Any, threshold: Any) -> tuple[Any, list[list], Any]:
    """(the photo with the boxes scoring >= ``threshold`` drawn, their table, the box menu) from a
    request's stored answer; the model is not run again. An empty state gives empty outputs."""
    import gradio as gr

    from toolkit.detection import draw_boxes

    if not isinstance(state, dict) or "detections" not in state:
        return None, [], gr.update(choices=[], value=None)
    threshold = threshold_value(threshold)
    shown = [d for d in state["detections"] if d["score"] >= threshold]
    scale = state["scale"]
    drawn = draw_boxes(state["image"], {"detections": [{**d, "box": [v / scale for v in d["box"]]} for d in shown]},
                       thickness=max(2, round(max(state["image"].shape[:2]) / 300)))
    table = [[i, d["label"], d["score"], *d["box"]] for i, d in enumerate(shown)]
    choices = [box_choice(i, d) for i, d in enumerate(shown)]
    return drawn, table, gr.update(choices=choices, value=choices[0] if choices else None)


def box_choice(index: int, detection: dict) -> str:
    return f"#{index} {detection['label']} {detection['score']:.2f}"


def detect_rows(rows: list) -> list:
    """Detect in many requests with one model pass per (model, file) (the Keras model takes them as
    one batch; a TFLite file, one image at a time, as its NMS does): each row is ``(service, upload,
    webcam, backend, threshold)`` or an exception (a request already refused); returns per row the
    outputs of :func:`detect_objects` or the exception that refused it."""
    from toolkit.detection import detections

    results: list = list(rows)
    groups: dict = {}
    for i, row in enumerate(rows):
        if isinstance(row, Exception):
            continue
        service, upload, webcam, backend, threshold = row
        try:
            backend = KERAS if backend in (None, "") else backend
            if not isinstance(backend, str):
                raise data_error(f"Expected the model file's name. Received {type(backend).__name__}.")
            predictor = service.predictor(backend)
            threshold = threshold_value(threshold)
            image = photo(upload, webcam)
        except Exception as exc:  # this request alone is refused
            results[i] = exc
            continue
        group = groups.setdefault((id(service), backend), (service, predictor, backend, [], [], []))
        group[3].append(i), group[4].append(image), group[5].append(threshold)
    for service, predictor, backend, indices, images, thresholds in groups.values():
        try:
            start = time.perf_counter()
            found = predictor.predict_arrays(images)
            elapsed = (time.perf_counter() - start) * 1000
        except Exception as exc:
            for i in indices:
                results[i] = exc
            continue
        shared = f" (one pass for {len(indices)} requests)" if len(indices) > 1 else ""
        names = service.task.class_names_
        for i, image, threshold, (boxes, classes, scores) in zip(indices, images, thresholds, found):
            small, scale = display_copy(image)
            state = {"image": small, "scale": scale,
                     "detections": detections(boxes, classes, scores, names, 0.0)["detections"]}
            drawn, table, menu = result_view(state, threshold)
            n = len(table)
            note = (f"**{backend}**: {milliseconds(elapsed)} for this prediction{shared}. {n} box"
                    f"{'' if n == 1 else 'es'} at score >= {threshold:.2f} ({len(state['detections'])} in all); "
                    "click a box or choose it below to explain it.")
            results[i] = (drawn, table, state, menu, note)
    return results


@user_errors
def detect_objects(service: DetectionService, upload: Any, webcam: Any = None, backend: str = KERAS,
                   threshold: Any = DEFAULT_THRESHOLD):
    """The photo with its boxes drawn, the table of boxes (in the photo's pixels), the stored
    answer (for the threshold slider), the box menu, and a note with the latency."""
    (result,) = detect_rows([(service, upload, webcam, backend, threshold)])
    if isinstance(result, Exception):
        raise result
    return result


def detect_batch(service: DetectionService):
    """The ``batch=True`` handler of the Detect event: lists of uploads, webcam pictures, files and
    thresholds in, lists of pictures, tables, notes, states and menus out."""
    import gradio as gr

    def detect_objects(uploads, webcams, backends, thresholds):
        rows = [(service, upload, webcam, backend, threshold)
                for upload, webcam, backend, threshold in zip(uploads, webcams, backends, thresholds)]
        return batch_outputs(detect_rows(rows), 5, (None, [], None, gr.update(choices=[], value=None), ""))

    return detect_objects


@user_errors
def filter_detections(state: Any, threshold: Any):
    """The threshold slider: the stored answer re-filtered and redrawn (no model run)."""
    return result_view(state, threshold)


def pick_box(state: Any, threshold: Any, point: Any) -> str | None:
    """The menu entry of the box under ``point`` ((x, y) in the shown picture's pixels; the
    smallest box containing it wins), or None when no shown box contains it."""
    if not isinstance(state, dict) or "detections" not in state or point is None:
        return None
    try:
        x, y = (float(v) * state["scale"] for v in point[:2])
    except (TypeError, ValueError, IndexError):
        return None
    shown = [d for d in state["detections"] if d["score"] >= threshold_value(threshold)]
    inside = [(i, (d["box"][2] - d["box"][0]) * (d["box"][3] - d["box"][1])) for i, d in enumerate(shown)
              if d["box"][0] <= x <= d["box"][2] and d["box"][1] <= y <= d["box"][3]]
    if not inside:
        return None
    index = min(inside, key=lambda item: item[1])[0]
    return box_choice(index, shown[index])


def box_number(choice: Any) -> int:
    """The detection number of a menu entry ("#2 raccoon 0.81" -> 2), or of a plain number."""
    if isinstance(choice, (int, float)) and not isinstance(choice, bool) and np.isfinite(choice):
        return int(choice)
    if isinstance(choice, str) and choice.strip():
        text = choice.strip().lstrip("#").split()[0]
        if text.isdigit():
            return int(text)
    raise data_error(f"Expected a box to explain: one of the listed detections (\"#0 ...\", 0 is the highest "
                     f"score). Received {choice!r}. Detect first, then click a box or choose it in the list.")


@user_errors
def explain_detection(service: DetectionService, upload: Any, webcam: Any = None, backend: str = KERAS,
                      choice: Any = 0):
    """The D-RISE saliency of one box over the photo, and what it cost (the chosen file answers
    the masked queries)."""
    image = photo(upload, webcam)
    index = box_number(choice)
    predictor = service.predictor(backend if isinstance(backend, str) else KERAS)
    small, _ = display_copy(image)  # the masks cover the picture the page shows; boxes scale with it
    explanation = service.task.explain(small, target=index, budget=EXPLAIN_BUDGET, predictor=predictor)
    extra = explanation.extra
    note = (f"**D-RISE** for box **{explanation.target}** (score {extra['score']:.2f}) on {backend or KERAS}: "
            f"{EXPLAIN_BUDGET} masked copies, {explanation.seconds:.1f} s. Warm colours mark the pixels whose presence "
            f"kept this box; {extra['saliency_in_box']:.0%} of the positive saliency lies inside the box, which covers "
            f"{extra['box_area_share']:.0%} of the photo.")
    return explanation.image, note


def clear_outputs():
    """Empty results, so that no answer stays on screen once the photo has changed."""
    import gradio as gr

    return None, [], None, gr.update(choices=[], value=None), "", None, ""


def clear_explanation():
    """An empty explanation, so that no overlay of an earlier box stays beside a new answer."""
    return None, ""


def model_facts(service: DetectionService) -> str:
    """Markdown facts from the card: data, input, mAP of the model and of each TFLite file."""
    card = service.slot.card()  # read without loading the model: building the page stays fast
    if card is None:
        return f"**Model not available** ({service.model_dir}). {MAKE_MODELS}"
    metrics, data = card.get("metrics") or {}, card.get("data") or {}
    summary = [f"**Model** `{service.model_dir.name}`: {(card.get('backbone') or {}).get('name', '?')} backbone, "
               f"classes {card.get('labels')}, input {(card.get('input') or {}).get('shape')} raw pixels 0-255."]
    if isinstance(metrics.get("test_map_50"), (int, float)):
        summary.append(f"**Keras mAP@0.5** {metrics['test_map_50']:.3f} (mAP@0.5:0.95 "
                       f"{metrics.get('test_map_50_95', float('nan')):.3f}) on {data.get('n_test', '?')} held-out "
                       f"photos; one whole-image box scores {metrics.get('test_baseline_whole_image_map_50', 0):.3f}.")
    columns = (("mAP@0.5", "test_map_50", "{:.3f}"), ("p50 latency", "latency_ms_p50", "{:.1f} ms"))
    return card_facts(card, None, summary, columns)


# ---------------------------------------------------------------------- UI


@functools.lru_cache(maxsize=4)
def shared_service(model_dir: str | None = None) -> DetectionService:
    """One service per model folder, so rebuilding the app does not reload the model."""
    return DetectionService(model_dir)


def warm_up(model_dir: str | Path | None = None) -> None:
    """Load the detector ahead of the first request (``apps.main.launch`` runs it in the background)."""
    shared_service(str(model_dir) if model_dir is not None else None).warm_up()


def build_demo(model_dir: str | Path | None = None):
    import gradio as gr

    service = shared_service(str(model_dir) if model_dir is not None else None)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown("### Object detection\nUpload a photo (or take one with the webcam): the detector draws a box "
                    "around each object it knows, with its label and score. Move the threshold to show fewer or "
                    "more boxes; click a box to see why it was found.")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload a photo (PNG, JPEG, BMP, GIF)", type="filepath", file_types=["image"])
                webcam = gr.Image(label="...or take one with the webcam", sources=["webcam"], type="numpy",
                                  height=200)
                backend = gr.Dropdown(service.backends(), value=KERAS, label="Model file",
                                      allow_custom_value=True)  # API callers may name a file
                threshold = gr.Slider(0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.05, label="Score threshold")
                with gr.Row():
                    detect_btn = gr.Button("Detect", variant="primary")
                    explain_btn = gr.Button("Explain the chosen box")
                box = gr.Dropdown([], value=None, label="Box to explain (or click it in the picture)",
                                  allow_custom_value=True)  # API callers name a box by its number: "#0"
            with gr.Column():
                picture = gr.Image(label="Detections", type="numpy", interactive=False)
                note = gr.Markdown()
                table = gr.Dataframe(headers=COLUMNS, label="Boxes (pixels of the photo)", interactive=False)
                overlay = gr.Image(label="Why this box (D-RISE)", type="numpy", interactive=False)
                explain_note = gr.Markdown()
        with gr.Accordion("Model facts (from card.json)", open=False):
            gr.Markdown(model_facts(service))
        state = gr.State()

        detect = detect_batch(service)
        explain = named(explain_detection, service, "explain_detection")
        inputs = [upload, webcam, backend, threshold]
        answer = [picture, table, state, box, note]
        stale = [*answer, overlay, explain_note]
        detect_btn.click(clear_explanation, None, [overlay, explain_note], api_name=False, queue=False).then(
            detect, inputs, answer, api_name="detect_objects", **PREDICT)

        def clicked(current_state, current_threshold, evt):
            chosen = pick_box(current_state, current_threshold, evt.index)
            return gr.update(value=chosen) if chosen else gr.update()

        clicked.__annotations__ = {"evt": gr.SelectData}  # a class, not a string: Gradio passes the click by it

        explain_inputs = [upload, webcam, backend, box]
        explaining = [
            picture.select(clicked, [state, threshold], [box], api_name=False, queue=False).then(
                clear_explanation, None, [overlay, explain_note], api_name=False, queue=False).then(
                explain, explain_inputs, [overlay, explain_note], api_name=False, **EXPLAIN),
            explain_btn.click(clear_explanation, None, [overlay, explain_note], api_name=False, queue=False).then(
                explain, explain_inputs, [overlay, explain_note], api_name="explain_detection", **EXPLAIN)]
        # A new photo: clear what belonged to the old one (and cancel an explanation still on its
        # way), then answer.
        for event in (upload.upload, webcam.input):
            event(clear_outputs, None, stale, api_name=False, queue=False, cancels=explaining).then(
                detect, inputs, answer, api_name=False, **PREDICT)
        for event in (upload.clear, backend.change):
            event(clear_outputs, None, stale, api_name=False, queue=False, cancels=explaining)
        threshold.change(filter_detections, [state, threshold], [picture, table, box], api_name=False, queue=False)
    return demo
