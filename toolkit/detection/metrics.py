"""Mean average precision of boxes, as COCO computes it (pycocotools' rules, no pycocotools).

Neither pycocotools nor a KerasHub/Keras metric is installed here (KerasCV's ``BoxCOCOMetrics``
wrapped pycocotools), so this is the COCO procedure written out: per class and IoU threshold,
detections sorted by score are matched greedily to the unmatched ground-truth box of the same
image with the highest IoU >= the threshold; precision is made monotone and read at 101 recall
points (0, 0.01, ..., 1). mAP@0.5 is that at IoU 0.5; mAP@0.5:0.95 the mean over 0.5, 0.55, ...,
0.95. Classes without ground truth are left out of the mean. The tests check it against a case
worked by hand.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2))
RECALL_POINTS = np.linspace(0, 1, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), boxes as [x1, y1, x2, y2]."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def average_precision(scores: np.ndarray, matched: np.ndarray, n_truth: int) -> float:
    """COCO's 101-point interpolated AP of detections (``scores``, ``matched`` true/false) against
    ``n_truth`` ground-truth boxes."""
    if n_truth == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    tp = np.cumsum(np.asarray(matched, bool)[order])
    fp = np.cumsum(~np.asarray(matched, bool)[order])
    recall = tp / n_truth
    precision = tp / np.maximum(tp + fp, 1e-12)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision  # monotone
    index = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in index]))


def _match(truth: Sequence[np.ndarray], detections: Sequence[tuple], threshold: float) -> tuple:
    """(scores, matched) of one class's detections over all images at one IoU threshold."""
    scores, matched = [], []
    for boxes, (det_boxes, det_scores) in zip(truth, detections):
        order = np.argsort(-det_scores, kind="mergesort")
        taken = np.zeros(len(boxes), bool)
        iou = box_iou(det_boxes[order], boxes) if len(boxes) and len(order) else np.zeros((len(order), 0))
        for row, k in enumerate(order):
            candidates = np.where(~taken & (iou[row] >= threshold))[0] if iou.shape[1] else []
            hit = len(candidates) > 0
            if hit:
                taken[candidates[np.argmax(iou[row][candidates])]] = True
            scores.append(det_scores[k])
            matched.append(hit)
    return np.array(scores, np.float64), np.array(matched, bool)


def mean_average_precision(truth_boxes: Sequence[np.ndarray], truth_labels: Sequence[np.ndarray],
                           pred_boxes: Sequence[np.ndarray], pred_labels: Sequence[np.ndarray],
                           pred_scores: Sequence[np.ndarray], class_names: Sequence[str]) -> dict:
    """mAP@0.5, mAP@0.5:0.95 and AP@0.5 per class over a set of images (boxes [x1, y1, x2, y2])."""
    per_class, per_class_coco = {}, {}
    for c, name in enumerate(class_names):
        truth = [np.asarray(b).reshape(-1, 4)[np.asarray(lab) == c] for b, lab in zip(truth_boxes, truth_labels)]
        n_truth = int(sum(len(t) for t in truth))
        if n_truth == 0:
            continue
        dets = [(np.asarray(b).reshape(-1, 4)[np.asarray(lab) == c], np.asarray(s, np.float64)[np.asarray(lab) == c])
                for b, lab, s in zip(pred_boxes, pred_labels, pred_scores)]
        aps = [average_precision(*_match(truth, dets, t), n_truth) for t in IOU_THRESHOLDS]
        per_class[name], per_class_coco[name] = aps[0], float(np.mean(aps))
    if not per_class:
        return {"map_50": float("nan"), "map_50_95": float("nan"), "ap_50_per_class": {}, "n_boxes": 0}
    return {
        "map_50": float(np.mean(list(per_class.values()))),
        "map_50_95": float(np.mean(list(per_class_coco.values()))),
        "ap_50_per_class": {k: round(v, 4) for k, v in per_class.items()},
        "ap_50_95_per_class": {k: round(v, 4) for k, v in per_class_coco.items()},
        "n_boxes": int(sum(len(np.asarray(b).reshape(-1, 4)) for b in truth_boxes)),
    }
