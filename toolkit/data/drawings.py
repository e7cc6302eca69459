"""Drawings made to look like scikit-learn's digits, and drawn digits to test that on.

scikit-learn's digits are UCI's optdigits: NIST's preprocessing normalised each handwritten digit
into a 32x32 bitmap, and the bitmap's 4x4 blocks were counted (on pixels, 0-16) into 8x8. In that
set every digit spans the frame's full height and at most its 24 middle columns (column 0 is
empty in all 1,797 images, column 7 nearly so), and its strokes are thick (about 300 of the 1,024
pixels are on). ``digit_pixels`` does the same to any drawing or photo of one digit: find the
ink (light on dark or dark on light, decided by the border; alpha for transparent sketch
layers), crop to its bounding box, bring the strokes to the set's thickness, scale it into a
32x24 box keeping its aspect, centre it in a 32x32 frame and count 4x4 blocks.

``drawn_digits`` renders digits from fonts and from pen strokes (sizes, thicknesses, positions,
slight rotations) with their labels: the test and benchmark set of the sketchpad.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError

FRAME = 32  # NIST's normalised bitmap side
BLOCK = 4  # 4x4 blocks -> 8x8, each 0..16
BOX = (32, 24)  # (height, width) the digit's bounding box is scaled into, aspect kept
STROKE_WIDTH = 7.0  # stroke width in the 32x32 frame (px): 6-8 read validation renders best
TOLERANCE = 1.5  # strokes 5.5-8.5 px wide in the frame are left as they are
WORK = 4  # the strokes are measured and adjusted at 4x the frame's scale (128x96 box)
MIN_INK = 0.2  # the faintest ink that counts, as a share of the image's full contrast
EDGE = 0.25  # the bounding box holds the ink from a quarter of its peak up (antialiased and faint edges)
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def channel_mean(arr: np.ndarray) -> np.ndarray:
    """``arr.mean(axis=-1)`` of a float array, bit for bit, without NumPy's slow reduction over a
    last axis of 1-4 values (about 15x faster for a 280x280 RGB drawing, 4x for a batch of photos)."""
    total = arr[..., 0].copy()
    for c in range(1, arr.shape[-1]):
        total += arr[..., c]
    return total / arr.dtype.type(arr.shape[-1])


def ink(image: np.ndarray) -> np.ndarray:
    """Where the ink is, 0 (paper) to 1 (ink), for an (H, W), (H, W, 1|3|4) image of raw pixels.

    With an alpha channel that is not fully opaque (a sketch layer on a transparent canvas) the
    ink is the alpha, whatever the strokes' colour. Otherwise the paper is the border's median
    level, so light strokes on a dark background and dark strokes on light both work.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        alpha = arr[..., 3] / 255.0
        if float(alpha.min()) < 0.99:
            return np.clip(alpha, 0.0, 1.0)
        arr = arr[..., :3]
    if arr.ndim == 3:
        if arr.shape[-1] not in (1, 3):
            raise DataError(f"Expected a drawing with 1, 3 or 4 channels. Received: shape={arr.shape}. "
                            "Convert it to RGB first.")
        arr = channel_mean(arr)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise DataError(f"Expected a drawing as an (H, W) or (H, W, C) image. Received: shape={arr.shape}.")
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    paper = float(np.median(border))
    contrast = np.abs(arr - paper)
    return contrast / 255.0


def stroke_width(mask: np.ndarray) -> float:
    """The mean stroke width (pixels) of a binary mask: 4 x (mean distance to the paper - 1/2),
    which is exact for straight strokes of any length."""
    import cv2

    padded = np.pad(mask, 1)  # paper all round, also where the ink fills its box
    dist = cv2.distanceTransform(padded.astype(np.uint8), cv2.DIST_L2, 3)
    inside = dist[padded]
    return float(max(4.0 * (inside.mean() - 0.5), 1.0)) if inside.size else 0.0


def digit_pixels(image: np.ndarray, stroke: float = STROKE_WIDTH) -> np.ndarray:
    """One drawn digit as scikit-learn's digits look: an (8, 8) float32 array of 0..16.

    ``image`` is an (H, W) or (H, W, 1|3|4) array of raw pixels: a sketchpad composite (strokes on
    a transparent canvas), a photo or scan of dark ink on paper, or light strokes on black.
    ``stroke`` is the strokes' width in the 32x32 frame: thinner strokes are thickened to it,
    thicker ones are thinned towards it (where that keeps a quarter of the ink). Raises a
    DataError when nothing is drawn. Multiply by 255/16 for models trained on ``load_digits``.
    """
    import cv2

    level = ink(image)
    peak = float(level.max())
    if peak < MIN_INK:
        raise DataError("Nothing is drawn: the image has no strokes that differ from its background "
                        f"(largest contrast {peak * 255:.0f} of 255). Draw a digit, or upload a picture of one.")
    rows, cols = np.nonzero(level >= EDGE * peak)
    level = level[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    # Work at WORK x the frame's scale, whatever the drawing's size: the strokes are measured and
    # grown or thinned there, in a few milliseconds even for a photo.
    scale = WORK * min(BOX[0] / level.shape[0], BOX[1] / level.shape[1])
    size = (max(1, round(level.shape[1] * scale)), max(1, round(level.shape[0] * scale)))
    shrinking = scale < 1
    level = cv2.resize(level, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    level = np.clip(level / peak, 0.0, 1.0)
    # Strokes within TOLERANCE of the set's width stay as drawn; others are brought to the band's edge.
    gap = WORK * stroke - stroke_width(level >= 0.5)
    change = int(round((gap - np.sign(gap) * WORK * TOLERANCE) / 2)) if abs(gap) > WORK * TOLERANCE else 0
    if change:
        level = _adjust_strokes(np.pad(level, max(change, 0)), change)
        rows, cols = np.nonzero(level >= EDGE)
        level = level[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = min(BOX[0] / level.shape[0], BOX[1] / level.shape[1])
    out_h, out_w = (max(1, min(side, round(n * scale))) for side, n in zip(BOX, level.shape))
    small = cv2.resize(level, (out_w, out_h), interpolation=cv2.INTER_AREA)
    frame = np.zeros((FRAME, FRAME), np.float32)
    top, left = (FRAME - out_h) // 2, (FRAME - out_w) // 2
    frame[top:top + out_h, left:left + out_w] = small
    blocks = frame.reshape(FRAME // BLOCK, BLOCK, FRAME // BLOCK, BLOCK).sum(axis=(1, 3))
    return np.clip(blocks, 0.0, BLOCK * BLOCK).astype(np.float32)


def _adjust_strokes(level: np.ndarray, change: int) -> np.ndarray:
    """Ink (0-1) with strokes ``change`` pixels wider on each side (grey dilation), or narrower
    (grey erosion) where that keeps a quarter of the ink; the array keeps its size."""
    import cv2

    radius = abs(change)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    if change > 0:
        return cv2.dilate(level, disc)
    thinner = cv2.erode(level, disc)
    return thinner if (thinner >= 0.5).sum() >= 0.25 * (level >= 0.5).sum() else level


def digit_image(image: np.ndarray, stroke: float = STROKE_WIDTH) -> np.ndarray:
    """``digit_pixels`` on the digits models' input scale: (8, 8, 1) float32 raw pixels 0..255
    (0-16 times 255/16, as ``load_digits`` gives them), light ink on black."""
    return (digit_pixels(image, stroke) * (255.0 / 16.0))[..., None]


# ---------------------------------------------------------------------- drawn digits to test on

def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 360.0, n: int = 24):
    angles = np.radians(np.linspace(start, end, n))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


# Each digit as pen strokes in a unit box (x right, y down), the way people write them.
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(0.5, 0.5, 0.45, 0.5)],
    1: [[(0.25, 0.25), (0.6, 0.0), (0.6, 1.0)]],
    2: [_ellipse(0.5, 0.3, 0.4, 0.3, 190, 360, 12) + [(0.85, 0.45), (0.05, 1.0), (0.95, 1.0)]],
    3: [_ellipse(0.5, 0.25, 0.4, 0.25, 200, 450, 14) + _ellipse(0.5, 0.73, 0.45, 0.27, 270, 520, 16)],
    4: [[(0.7, 1.0), (0.7, 0.0), (0.05, 0.7), (0.95, 0.7)]],
    5: [[(0.9, 0.0), (0.2, 0.0), (0.15, 0.45)] + _ellipse(0.5, 0.68, 0.42, 0.32, 230, 500, 18)],
    6: [[(0.8, 0.0), (0.4, 0.2)] + _ellipse(0.5, 0.68, 0.4, 0.32, 190, 550, 22)],
    7: [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)]],
    8: [_ellipse(0.5, 0.24, 0.34, 0.24, 90, 450) , _ellipse(0.5, 0.72, 0.42, 0.28, -90, 270)],
    9: [_ellipse(0.5, 0.3, 0.42, 0.3, 0, 360), [(0.92, 0.3), (0.75, 1.0)]],
}
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
         "DejaVuSans-Oblique.ttf", "DejaVuSerif-Bold.ttf")


def _font(name: str, size: int):
    from PIL import ImageFont

    path = FONT_DIR / name
    return ImageFont.truetype(str(path), size) if path.is_file() else ImageFont.load_default(size=size)


def draw_font_digit(digit: int, font: str, size: int, canvas: tuple[int, int], offset: tuple[float, float],
                    dark_on_light: bool = True) -> np.ndarray:
    """``digit`` typed in ``font`` (a DejaVu file name; Pillow's default font when it is not
    installed) at ``size`` px on a ``canvas`` = (width, height) RGB image, its centre moved by
    ``offset`` (shares of the free room, -1..1)."""
    from PIL import Image, ImageDraw

    paper, pen = ((255, 255, 255), (0, 0, 0)) if dark_on_light else ((0, 0, 0), (255, 255, 255))
    img = Image.new("RGB", canvas, paper)
    draw = ImageDraw.Draw(img)
    face = _font(font, size)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=face)
    room_x, room_y = canvas[0] - (right - left), canvas[1] - (bottom - top)
    x = room_x / 2 * (1 + offset[0]) - left
    y = room_y / 2 * (1 + offset[1]) - top
    draw.text((x, y), str(digit), font=face, fill=pen)
    return np.asarray(img)


def draw_stroke_digit(digit: int, height: float, width: int, canvas: tuple[int, int], offset: tuple[float, float],
                      angle: float = 0.0, aspect: float = 0.65, transparent: bool = True) -> np.ndarray:
    """``digit`` drawn with a pen ``width`` px wide, ``height`` px tall, as the sketchpad sends it:
    black strokes on a transparent RGBA ``canvas`` = (width, height) (or on white when not
    ``transparent``), rotated by ``angle`` degrees, its centre moved by ``offset`` (-1..1)."""
    from PIL import Image, ImageDraw

    w = height * aspect
    theta = np.radians(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    room_x, room_y = canvas[0] - w - width, canvas[1] - height - width
    centre = np.array([canvas[0] / 2 + room_x / 2 * offset[0], canvas[1] / 2 + room_y / 2 * offset[1]])
    img = Image.new("RGBA", canvas, (0, 0, 0, 0) if transparent else (255, 255, 255, 255))
    draw = ImageDraw.Draw(img)
    for line in STROKES[digit]:
        pts = (np.asarray(line) - 0.5) * np.array([w, height])
        pts = pts @ rot.T + centre
        draw.line([tuple(p) for p in pts], fill=(0, 0, 0, 255), width=int(width), joint="curve")
    return np.asarray(img)


def drawn_digits(n: int = 200, seed: int = 0, kinds: Sequence[str] = ("font", "stroke")) -> tuple[list, np.ndarray]:
    """``n`` drawn digits (labels cycling 0-9) and their labels: typed in several fonts (40-200 px,
    off centre, on 280x280 or 400x300 canvases, dark on light or light on dark) and drawn with pen
    strokes (4-30 px wide, 80-260 px tall, rotated up to 10 degrees, on transparent canvases)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        digit, kind = i % 10, kinds[(i // 10) % len(kinds)]
        canvas = (280, 280) if rng.random() < 0.5 else (400, 300)
        offset = tuple(rng.uniform(-0.8, 0.8, 2))
        if kind == "font":
            image = draw_font_digit(digit, FONTS[rng.integers(len(FONTS))], int(rng.integers(40, 201)), canvas,
                                    offset, dark_on_light=rng.random() < 0.7)
        else:
            height = float(rng.uniform(80, min(canvas[1] - 40, 260)))
            image = draw_stroke_digit(digit, height, int(rng.integers(4, 31)), canvas, offset,
                                      angle=float(rng.uniform(-10, 10)), aspect=float(rng.uniform(0.5, 0.8)))
        images.append(image)
        labels.append(digit)
    return images, np.asarray(labels)
