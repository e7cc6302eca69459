"""D-RISE (Petsiuk et al., 2021): why a detector found one box, by random masking.

Each of ``budget`` random masks (a coarse grid of kept/dropped cells, upsampled smoothly and
shifted at random, as RISE does) hides parts of the image; the masked image goes through the
detector, and the mask is weighted by how well the detections still match the target: the best
IoU of a same-class detection with the target box times its score. The saliency map is the
weighted mean of the masks minus the mean mask (what the masks would give if nothing mattered),
so positive values mark the pixels whose presence kept the box.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..explain.base import Explanation, overlay
from .metrics import box_iou
from .runner import draw_boxes


def random_masks(n: int, height: int, width: int, cells: int = 8, keep: float = 0.5,
                 seed: int = 0) -> np.ndarray:
    """``n`` smooth random masks (n, height, width) in [0, 1] (RISE's construction)."""
    import cv2

    rng = np.random.default_rng(seed)
    cell_h, cell_w = int(np.ceil(height / cells)), int(np.ceil(width / cells))
    up_h, up_w = (cells + 1) * cell_h, (cells + 1) * cell_w
    out = np.empty((n, height, width), np.float32)
    for i in range(n):
        grid = (rng.uniform(size=(cells, cells)) < keep).astype(np.float32)
        big = cv2.resize(grid, (up_w, up_h), interpolation=cv2.INTER_LINEAR)
        dy, dx = int(rng.integers(0, cell_h)), int(rng.integers(0, cell_w))
        out[i] = big[dy:dy + height, dx:dx + width]
    return out


def drise(predict_arrays: Callable, image: np.ndarray, box: np.ndarray, label: int, budget: int = 200,
          seed: int = 0, cells: int = 8) -> np.ndarray:
    """The D-RISE saliency (H, W) of the detection (``box`` in pixels, class ``label``) on ``image``;
    ``predict_arrays`` maps a list of images to per-image (boxes, labels, scores)."""
    height, width = image.shape[:2]
    masks = random_masks(budget, height, width, cells, seed=seed)
    grey = np.full_like(image, 127, dtype=np.float32)
    weights = np.zeros(budget, np.float32)
    for start in range(0, budget, 32):
        part = masks[start:start + 32]
        masked = [image * m[..., None] + grey * (1 - m[..., None]) for m in part]
        for j, (boxes, labels, scores) in enumerate(predict_arrays(masked)):
            same = labels == label
            if same.any():
                weights[start + j] = float(np.max(box_iou(box[None], boxes[same])[0] * scores[same]))
    saliency = np.tensordot(weights, masks, axes=1) / budget - weights.mean() * masks.mean(0)
    return saliency.astype(np.float32)


def explain_detection(predictor, image: np.ndarray, target: int | None = None, budget: int = 200,
                      seed: int = 0) -> Explanation:
    """Explain detection number ``target`` (default 0: the highest score) of ``predictor`` (a
    detector's Keras task or TFLite file) on one image, rendered over the image with the box."""
    from ..errors import DataError

    start = time.perf_counter()
    result = predictor.predict(image, min_score=0.0)
    found = result["detections"]
    try:
        index = 0 if target is None else int(target)
    except (TypeError, ValueError):
        raise DataError(f"Expected the number of a detection as the target (0 is the highest score). "
                        f"Received {target!r}.") from None
    if not found:
        raise DataError("The detector finds no box in this image (at any score), so there is nothing to explain.")
    if not 0 <= index < len(found):
        raise DataError(f"Expected a detection number in [0, {len(found) - 1}] (0 is the highest score). "
                        f"Received {target!r}.")
    det = found[index]
    box = np.array(det["box"], np.float32)
    label = list(predictor.class_names_).index(det["label"])
    saliency = drise(predictor.predict_arrays, image.astype(np.float32), box, label, budget, seed)
    height, width = image.shape[:2]
    scale = max(1, 256 // max(height, width))
    picture = overlay(image, saliency, size=256)
    shown = {"detections": [{**det, "box": [v * scale for v in det["box"]]}]}
    picture = draw_boxes(picture, shown)
    inside = np.zeros((height, width), bool)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    inside[max(y1, 0):y2, max(x1, 0):x2] = True
    positive = np.maximum(saliency, 0)
    share = float(positive[inside].sum() / positive.sum()) if positive.sum() > 0 else 0.0
    return Explanation(saliency, "drise", f"{det['label']} #{index}", time.perf_counter() - start, picture, budget,
                       extra={"box": det["box"], "score": det["score"], "saliency_in_box": round(share, 4),
                              "box_area_share": round(float(inside.mean()), 4)})
