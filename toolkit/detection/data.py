"""What the detector does to boxes data before its network sees it: augmentation that moves the
boxes with the pixels (flip, scale/crop, colour), stretching a photo to the model's square input,
and pixel boxes as [0, 1] coordinates. The data itself (VOC, COCO, generated shapes) is read by
:mod:`toolkit.data.detection`.
"""

from __future__ import annotations

import numpy as np


def augment(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
            min_visible: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random horizontal flip, scale/crop (50-100% of each side) and colour change, with the boxes
    moved the same way; a box with less than ``min_visible`` of its area left in the crop is dropped."""
    height, width = image.shape[:2]
    boxes = boxes.copy()
    if rng.uniform() < 0.5:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    if rng.uniform() < 0.7:
        ch, cw = int(height * rng.uniform(0.5, 1.0)), int(width * rng.uniform(0.5, 1.0))
        y0, x0 = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
        image = image[y0:y0 + ch, x0:x0 + cw]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes = boxes - np.array([x0, y0, x0, y0], np.float32)
        boxes = np.clip(boxes, 0, [cw, ch, cw, ch]).astype(np.float32)
        kept = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) >= min_visible * np.maximum(area, 1e-6)
        boxes, labels = boxes[kept], labels[kept]
    image = image.astype(np.float32)
    grey = image.mean(-1, keepdims=True)
    image = grey + (image - grey) * rng.uniform(0.6, 1.4)  # saturation
    image = (image - image.mean()) * rng.uniform(0.7, 1.3) + image.mean() + rng.uniform(-30, 30)  # contrast, brightness
    return np.clip(image, 0, 255).astype(np.uint8), boxes.reshape(-1, 4), labels


def resized(image: np.ndarray, size: int) -> np.ndarray:
    """An image as the model's ``size`` x ``size`` float32 input (stretched, as phone detectors do)."""
    import cv2

    height, width = image.shape[:2]
    interpolation = cv2.INTER_AREA if height > size or width > size else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image, np.float32), (size, size), interpolation=interpolation)
    return out if out.ndim == 3 else np.repeat(out[..., None], 3, -1)


def normalised(boxes: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Pixel boxes -> [0, 1] coordinates of their image."""
    height, width = image.shape[:2]
    return (np.asarray(boxes, np.float32).reshape(-1, 4) / np.array([width, height, width, height], np.float32))
