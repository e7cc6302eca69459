"""Synthetic image folders for measuring image recipes: three classes of shapes, textures or
stripes, drawn at mixed sizes, in mixed modes (RGB, grayscale, RGBA, palette) and formats (PNG,
JPEG), the way a user's own folder looks.

    >>> write_synthetic_folder("/tmp/shapes", "shapes", per_class=100, seed=0)

Every image is random in position, scale, colours and background, so a model must learn the
class (the kind of shape, texture or stripe direction), not one picture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError

SIZES = (48, 160)  # smallest and largest side, pixels
MODES = ("RGB", "RGB", "L", "RGBA", "P")
FORMATS = ("png", "jpg")


def _luma(colour: np.ndarray) -> float:
    return float(np.dot(colour, (0.299, 0.587, 0.114)))


def _colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """A random RGB colour, far from ``avoid`` in colour and brightness."""
    while True:
        colour = rng.integers(0, 256, 3)
        # different in colour and in brightness, so that grayscale copies keep the pattern
        if avoid is None or (np.abs(colour - avoid).max() > 90 and abs(_luma(colour) - _luma(avoid)) > 60):
            return colour


def _canvas(rng: np.random.Generator):
    """(height, width, background colour, a contrasting foreground colour)."""
    height, width = (int(v) for v in rng.integers(SIZES[0], SIZES[1] + 1, 2))
    background = _colour(rng)
    return height, width, background, _colour(rng, background)


def _shape(kind: str) -> Callable[[np.random.Generator], np.ndarray]:
    def draw(rng: np.random.Generator) -> np.ndarray:
        from PIL import Image, ImageDraw

        height, width, background, foreground = _canvas(rng)
        image = Image.new("RGB", (width, height), tuple(int(v) for v in background))
        pen = ImageDraw.Draw(image)
        side = min(height, width)
        radius = rng.uniform(0.2, 0.4) * side
        cx = rng.uniform(radius, width - radius)
        cy = rng.uniform(radius, height - radius)
        fill = tuple(int(v) for v in foreground)
        if kind == "circle":
            pen.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
        elif kind == "square":
            pen.regular_polygon((cx, cy, radius), 4, rotation=float(rng.uniform(0, 90)), fill=fill)
        else:
            pen.regular_polygon((cx, cy, radius), 3, rotation=float(rng.uniform(0, 120)), fill=fill)
        return np.asarray(image)

    return draw


def _texture(kind: str) -> Callable[[np.random.Generator], np.ndarray]:
    def draw(rng: np.random.Generator) -> np.ndarray:
        height, width, background, foreground = _canvas(rng)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        if kind == "checker":
            cell = rng.uniform(5, 16)
            angle = rng.uniform(-0.3, 0.3)
            u = xx * np.cos(angle) + yy * np.sin(angle)
            v = -xx * np.sin(angle) + yy * np.cos(angle)
            mask = (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
        elif kind == "dots":
            spacing = rng.uniform(8, 18)
            radius = spacing * rng.uniform(0.2, 0.35)
            jitter = rng.uniform(0, spacing, 2)
            du = (xx + jitter[0]) % spacing - spacing / 2
            dv = (yy + jitter[1]) % spacing - spacing / 2
            mask = du ** 2 + dv ** 2 < radius ** 2
        else:  # blobs: smooth noise, thresholded
            import cv2

            coarse = rng.uniform(0, 1, (max(2, height // 12), max(2, width // 12))).astype(np.float32)
            smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
            mask = smooth > np.median(smooth)
        return np.where(mask[..., None], foreground, background).astype(np.uint8)

    return draw


def _stripes(kind: str) -> Callable[[np.random.Generator], np.ndarray]:
    def draw(rng: np.random.Generator) -> np.ndarray:
        height, width, background, foreground = _canvas(rng)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = {"horizontal": 0.0, "vertical": np.pi / 2, "diagonal": np.pi / 4 * rng.choice([-1, 1])}[kind]
        angle += rng.uniform(-0.15, 0.15)
        period = rng.uniform(8, 24)
        position = -xx * np.sin(angle) + yy * np.cos(angle) + rng.uniform(0, period)
        mask = (position % period) < period * rng.uniform(0.35, 0.65)
        return np.where(mask[..., None], foreground, background).astype(np.uint8)

    return draw


#: kind -> class name -> drawing function (a seeded Generator -> (H, W, 3) uint8)
SYNTHETIC_KINDS: dict[str, dict[str, Callable]] = {
    "shapes": {name: _shape(name) for name in ("circle", "square", "triangle")},
    "textures": {name: _texture(name) for name in ("blobs", "checker", "dots")},
    "stripes": {name: _stripes(name) for name in ("diagonal", "horizontal", "vertical")},
}


def synthetic_images(kind: str, per_class: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """``per_class`` RGB uint8 images of each class of ``kind`` (mixed sizes): (images, labels, class names)."""
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"Unknown synthetic image kind {kind!r}. Valid kinds: {sorted(SYNTHETIC_KINDS)}.")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1. Received {per_class}.")
    rng = np.random.default_rng(seed)
    names = sorted(SYNTHETIC_KINDS[kind])
    images, labels = [], []
    for k in range(per_class):
        for label, name in enumerate(names):
            images.append(SYNTHETIC_KINDS[kind][name](rng))
            labels.append(label)
    return images, np.asarray(labels, dtype=np.int64), names


def write_synthetic_folder(root: str | os.PathLike, kind: str, per_class: int = 100, seed: int = 0) -> Path:
    """Write ``root/<class>/<n>.png|jpg``: ``per_class`` images per class of ``kind`` in mixed
    modes and formats. The folder is written whole or not at all (an old one is replaced)."""
    from PIL import Image

    import shutil
    import tempfile

    root = Path(root).resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataError(f"{str(root)!r} already exists and is not an empty folder. Choose a new folder.")
    images, labels, names = synthetic_images(kind, per_class, seed)
    rng = np.random.default_rng(seed + 1)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        for i, (array, label) in enumerate(zip(images, labels)):
            mode, fmt = MODES[rng.integers(len(MODES))], FORMATS[rng.integers(len(FORMATS))]
            image = Image.fromarray(array)
            if mode == "P":
                image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
            elif mode != "RGB":
                image = image.convert(mode)
            if fmt == "jpg" and mode in ("RGBA", "P"):
                image = image.convert("RGB")
            folder = tmp / names[label]
            folder.mkdir(exist_ok=True)
            image.save(folder / f"{i:04d}.{fmt}", **({"quality": 90} if fmt == "jpg" else {}))
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
