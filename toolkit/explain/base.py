"""One explanation shape for every method, and the rendering of attributions as images."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import atomic_write, atomic_write_bytes, atomic_write_text, write_json

DISPLAY_SIZE = 256


#: What ``Explanation.save`` (and ``toolkit explain --out``) writes, by file ending.
SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy", ".json", ".html", ".htm")


@dataclasses.dataclass
class Explanation:
    """Why a model predicted what it did for one input.

    ``attributions`` has the input's spatial shape (H, W) for images, or one weight per word
    for texts; positive values support ``target``. ``image`` is the rendered overlay (uint8
    RGB); ``html`` an optional self-contained HTML rendering (texts).
    """

    attributions: np.ndarray
    method: str
    target: Any
    seconds: float
    image: np.ndarray
    budget: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    html: str | None = None

    def summary(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "seconds": round(self.seconds, 4),
            "budget": self.budget,
            "attribution_shape": list(self.attributions.shape),
            **{k: v for k, v in self.extra.items() if isinstance(v, (int, float, str, bool, list))},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the rendered image (.png/.jpg), the attributions (.npy), a summary (.json) or,
        when the explanation has one, its HTML rendering (.html) as a standalone page."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            if self.html is None:
                raise ValueError(
                    f"This {self.method} explanation has no HTML rendering, so it cannot be saved as {path.name!r}. "
                    "Save it as .png, .jpg, .npy or .json instead."
                )
            return atomic_write_text(path, html_page(self.html, f"Why {self.target}? ({self.method})"))
        if suffix == ".npy":
            return atomic_write(path, lambda tmp: np.save(tmp, self.attributions))
        if suffix == ".json":
            return write_json(path, {**self.summary(), "attributions": self.attributions.tolist()})
        if suffix not in (".png", ".jpg", ".jpeg"):
            raise ValueError(f"Expected a file ending in .png, .jpg, .npy, .json or .html. Received {path.name!r}. "
                             "Name the file with one of those endings.")
        from PIL import Image
        import io

        buffer = io.BytesIO()
        Image.fromarray(self.image).save(buffer, format="JPEG" if suffix in (".jpg", ".jpeg") else "PNG")
        return atomic_write_bytes(path, buffer.getvalue())


def html_page(fragment: str, title: str = "Explanation") -> str:
    """Wrap an HTML fragment into a standalone UTF-8 page (a full page is returned unchanged)."""
    import html

    if fragment.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        return fragment
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n"
        f'<body style="max-width: 48em; margin: 2em auto; padding: 0 1em">\n{fragment}\n</body>\n</html>\n'
    )


def to_display_rgb(image: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """Raw-pixel (H, W, C) image to uint8 RGB, scaled up (nearest) to about ``size`` pixels."""
    import cv2

    img = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    h, w = img.shape[:2]
    factor = max(1, size // max(h, w))
    if factor > 1:
        img = cv2.resize(img, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    return img


def overlay(image: np.ndarray, attributions: np.ndarray, signed: bool = False, alpha: float = 0.5,
            size: int = DISPLAY_SIZE) -> np.ndarray:
    """Blend a heatmap of ``attributions`` (H, W) over ``image``; signed maps use red/blue."""
    import cv2
    from matplotlib import colormaps

    base = to_display_rgb(image, size)
    heat = np.asarray(attributions, dtype=np.float32)
    if signed:
        scale = float(np.max(np.abs(heat))) or 1.0
        normalised = 0.5 + 0.5 * heat / scale
        colours = colormaps["bwr"](normalised)[..., :3]
        weight = np.abs(heat) / scale
    else:
        heat = np.maximum(heat, 0)
        scale = float(heat.max()) or 1.0
        colours = colormaps["jet"](heat / scale)[..., :3]
        weight = np.ones_like(heat)
    colours = (colours * 255).astype(np.float32)
    h, w = base.shape[:2]
    colours = cv2.resize(colours, (w, h), interpolation=cv2.INTER_NEAREST)
    weight = cv2.resize(weight.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)[..., None] * alpha
    return np.clip(base * (1 - weight) + colours * weight, 0, 255).astype(np.uint8)


def mass_in_region(attributions: np.ndarray, region: np.ndarray) -> float:
    """Share of positive attribution that falls inside a boolean ``region`` mask."""
    positive = np.maximum(np.asarray(attributions, dtype=np.float64), 0)
    total = positive.sum()
    return float(positive[region].sum() / total) if total > 0 else 0.0
