"""What the Keras detector and its ``.tflite`` share: images in, boxes out (:class:`Detections`
in pixel coordinates of each input image), drawing boxes, and :class:`TFLiteDetector`, the wrapper
of the exported files on the toolkit's one LiteRT session.

Both take raw photos of any size (paths, arrays, a batch), stretch each to the model's square input
(as phone detection pipelines do), and map the [0, 1] boxes back to the photo's pixels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.images import read_image
from ..errors import DataError
from ..storage import read_card
from .data import resized


def as_images(x: Any) -> tuple[list[np.ndarray], bool]:
    """(RGB uint8/float images, whether ``x`` was one image): a path, bytes, an (H, W, 3) array,
    an (N, H, W, 3) batch, or a list of those."""
    if isinstance(x, (str, os.PathLike, bytes)):
        return [_rgb(read_image(x))], True
    if isinstance(x, np.ndarray):
        if x.ndim == 3:
            return [_rgb(x)], True
        if x.ndim == 4:
            return [_rgb(image) for image in x], False
        raise DataError(f"Expected an image (H, W, 3) or a batch (N, H, W, 3). Received an array of shape {x.shape}.")
    if isinstance(x, (list, tuple)):
        if not x:
            raise DataError("Expected at least one image. Received an empty list.")
        return [as_images(item)[0][0] for item in x], False
    raise DataError(f"Expected an image path, an array or a list of them. Received {type(x).__name__}.")


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise DataError(f"Expected an image with 1 or 3 channels. Received shape={image.shape}. Convert it to RGB.")
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image


def to_pixels(boxes: np.ndarray, image: np.ndarray) -> np.ndarray:
    """[ymin, xmin, ymax, xmax] in [0, 1] -> [xmin, ymin, xmax, ymax] pixels of ``image``."""
    height, width = image.shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return boxes[:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32)


def detections(boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, class_names: Sequence[str],
               min_score: float) -> dict:
    """One image's ``{"detections": [{"label", "score", "box"}]}`` (sorted by score, >= ``min_score``)."""
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    return {"detections": [
        {"label": str(class_names[int(labels[i])]), "score": round(float(scores[i]), 4),
         "box": [round(float(v), 1) for v in boxes[i]]}
        for i in order if scores[i] >= min_score and scores[i] > 0]}


def draw_boxes(image: np.ndarray, result: dict, thickness: int = 2) -> np.ndarray:
    """``image`` (uint8 RGB) with one image's detections (``predict``'s dict) drawn and labelled."""
    import cv2

    out = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8)).copy()
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    names: list[str] = []
    for det in result["detections"]:
        if det["label"] not in names:
            names.append(det["label"])
        colour = palette[names.index(det["label"]) % len(palette)]
        x1, y1, x2, y2 = (int(round(v)) for v in det["box"])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        text = f"{det['label']} {det['score']:.2f}"
        cv2.putText(out, text, (x1 + 2, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return out


def detect_and_draw(predictor, image: Any, min_score: float | None = None) -> tuple[dict, np.ndarray, float]:
    """For a demo tab: (``{"detections": [...]}``, the photo with its boxes drawn, milliseconds) of one
    image (a path, bytes or an array) through ``predictor`` (an ``ObjectDetector`` or a ``TFLiteDetector``)."""
    import time

    images, _ = as_images(image)
    start = time.perf_counter()
    result = predictor.predict(images[0], min_score=min_score)
    ms = (time.perf_counter() - start) * 1000
    return result, draw_boxes(images[0], result), ms


class DetectorOutputs:
    """``predict`` / ``assess`` / ``predict_arrays`` from one method, ``raw(batch)``: (N, S, S, 3)
    pixels -> boxes (N, K, 4) [0, 1], classes (N, K), scores (N, K)."""

    class_names_: list[str]
    image_size: int
    min_score: float

    def raw(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def predict_arrays(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per image: (pixel boxes [xmin, ymin, xmax, ymax], class indices, scores), padding dropped."""
        out = []
        for i in range(0, len(images), 32):
            part = images[i:i + 32]
            boxes, classes, scores = self.raw(np.stack([resized(im, self.image_size) for im in part]))
            for image, b, c, s in zip(part, boxes, classes, scores):
                keep = s > 0
                out.append((to_pixels(b[keep], image), np.rint(c[keep]).astype(np.int64), s[keep].astype(np.float32)))
        return out

    def predict(self, x: Any, min_score: float | None = None):
        """``{"detections": [{"label", "score", "box": [xmin, ymin, xmax, ymax]}]}`` for one image
        (pixels of that image, sorted by score, after NMS), or a list of them for several."""
        images, one = as_images(x)
        threshold = self.min_score if min_score is None else float(min_score)
        rows = [detections(b, c, s, self.class_names_, threshold) for b, c, s in self.predict_arrays(images)]
        return rows[0] if one else rows

    def assess(self, x: Any, k: int | None = None) -> list[dict]:
        """What ``toolkit predict`` prints per image: its detections (``k``: at most that many)."""
        images, _ = as_images(x if isinstance(x, (list, tuple)) else [x])
        rows = [detections(b, c, s, self.class_names_, self.min_score) for b, c, s in self.predict_arrays(images)]
        return [{"detections": r["detections"][:k] if k else r["detections"]} for r in rows]


def output_order(names: Sequence[str]) -> list[int]:
    """Positions of boxes, classes, scores, count among a file's outputs (named ``...:0`` to ``...:3``)."""
    numbers = [int(m.group(1)) if (m := re.search(r":(\d+)$", n)) else i for i, n in enumerate(names)]
    return [numbers.index(k) for k in sorted(numbers)]


#: what each output of a detector file is, in :func:`output_order`'s order
OUTPUTS = ("boxes", "classes", "scores", "count")


class TFLiteDetector(DetectorOutputs):
    """An exported detector (``.tflite`` with decoding and NMS inside) with the Keras task's
    ``predict``; ``session`` is the shared LiteRT session.

    The file's input is float32 pixels (float32 and float16 files) or uint8 pixels (int8 files:
    scale 1, zero point 0, so 0-255 as they are, as phone detection APIs feed them; the session
    rounds the resized photo to that grid); its four outputs are float32 in every preset.
    """

    def __init__(self, path: str | os.PathLike, card: dict | None = None, num_threads: int | None = None):
        from ..edge.runner import LiteRTSession

        self.session = LiteRTSession(path, num_threads)
        self.path = self.session.path
        if card is None and (self.path.parent / "card.json").is_file():
            card = read_card(self.path.parent)
        self.card = card or {}
        self.class_names_ = list(self.card.get("labels") or [])
        self.image_size = int(self.session.input_shape()[0])
        self.min_score = float((self.card.get("config") or {}).get("min_score", 0.3))
        self._order = output_order([d["name"] for d in self.session.outputs])

    @property
    def quantization(self) -> dict:
        return self.session.quantization

    @property
    def ops(self) -> list[str]:
        return self.session.ops

    @property
    def input_dtype(self) -> str:
        return self.session.input_dtype()

    @property
    def dtypes(self) -> dict:
        """The dtype of the input and of each output (boxes, classes, scores, count)."""
        return {"input": self.input_dtype, **{what: np.dtype(self.session.outputs[i]["dtype"]).name
                                              for what, i in zip(OUTPUTS, self._order)}}

    def phone_api_problems(self) -> list[str]:
        """What keeps this file from the TFLite Task Library's ObjectDetector, per its "model
        compatibility requirements" (empty when nothing): one RGB image [1, h, w, 3] in, uint8 (raw
        pixels: scale 1, zero point 0) or float32 with normalization in the metadata; the four
        float32 outputs boxes [1, K, 4], classes [1, K], scores [1, K], count [1]; metadata naming
        them, with the boxes' BOUNDARIES/RATIO properties and the labels file."""
        from ..edge.metadata import DETECTION_OUTPUTS, read_metadata

        problems = []
        detail = self.session.input()
        shape = [int(v) for v in detail["shape"]]
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            problems.append(f"the input has shape {shape}, expected [1, height, width, 3]")
        if self.input_dtype == "uint8":
            scale, zero = detail["quantization"]
            if zero != 0 or abs(scale - 1.0) > 1e-3:
                problems.append(f"the uint8 input has scale {scale} and zero point {zero}, so raw pixels 0-255 "
                                "would be misread (expected scale 1, zero point 0)")
        elif self.input_dtype != "float32":
            problems.append(f"the input is {self.input_dtype}, expected uint8 or float32")
        k = self.session.outputs[self._order[0]]["shape"][1] if len(self.session.outputs) == 4 else None
        expected = {"boxes": [1, k, 4], "classes": [1, k], "scores": [1, k], "count": [1]}
        if len(self.session.outputs) != 4:
            problems.append(f"the file has {len(self.session.outputs)} outputs, expected 4")
        else:
            for what, i in zip(OUTPUTS, self._order):
                out = self.session.outputs[i]
                if np.dtype(out["dtype"]) != np.float32:
                    problems.append(f"the {what} output is {np.dtype(out['dtype']).name}, expected float32")
                if [int(v) for v in out["shape"]] != expected[what]:
                    problems.append(f"the {what} output has shape {list(out['shape'])}, expected {expected[what]}")
        meta = read_metadata(self.path)
        if meta is None:
            return problems + ["the file has no TFLite metadata"]
        if self.input_dtype == "float32" and not (meta["inputs"] and meta["inputs"][0]["normalization"]):
            problems.append("a float32 input needs normalization options in the metadata")
        names = [o["name"] for o in meta["outputs"]]
        if len(names) == 4 and sorted(names) == sorted(DETECTION_OUTPUTS):
            box = meta["outputs"][names.index(DETECTION_OUTPUTS[0])]["content"] or {}
            props = box.get("bounding_box") or {}
            if props.get("type") != "BOUNDARIES" or props.get("coordinate_type") != "RATIO":
                problems.append(f"the location output's box properties are {props}, expected BOUNDARIES, RATIO")
        else:
            problems.append(f"the metadata names the outputs {names}, expected {list(DETECTION_OUTPUTS)}")
        if not meta["labels"]:
            problems.append("the metadata carries no labels file")
        return problems

    def raw(self, batch: np.ndarray):
        boxes, classes, scores = [], [], []
        for image in np.asarray(batch, np.float32):
            outs = self.session.run_all(image[None])
            b, c, s = (outs[i] for i in self._order[:3])
            boxes.append(b[0]), classes.append(c[0]), scores.append(s[0])
        return np.stack(boxes), np.stack(classes), np.stack(scores)

    def latency_ms(self, sample: np.ndarray, runs: int = 100, warmup: int = 10) -> float:
        """Median time of one image through the file (decoding and NMS included), in ms."""
        return self.session.latency_ms(np.asarray(sample, np.float32)[:1], runs=runs, warmup=warmup)

    def __repr__(self) -> str:
        return f"TFLiteDetector({str(Path(self.path))!r})"
