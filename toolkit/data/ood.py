"""Generated inputs unlike any training set (noise, flat colours, stripes, crops of scikit-image's
bundled photos, upscaled digits): what "not sure" thresholds are calibrated and measured against
(:mod:`toolkit.calibration`)."""

from __future__ import annotations

import numpy as np


#: scikit-image photos used to calibrate; the others (``HELD_OUT_PHOTOS``) are kept for measuring.
CALIBRATION_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
HELD_OUT_PHOTOS = ("camera", "moon", "coins", "horse", "hubble_deep_field", "immunohistochemistry", "page",
                   "text", "clock", "brick", "grass", "gravel", "retina", "cell", "colorwheel", "cat", "logo")


def skimage_photos(names: tuple[str, ...]) -> list[np.ndarray]:
    """scikit-image's bundled images by name, as RGB or grey uint8 arrays."""
    import skimage.data

    out = []
    for name in names:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 3 and image.shape[-1] == 4:
            image = image[..., :3]
        if image.dtype != np.uint8:
            image = np.clip(image.astype(np.float64) / max(float(image.max()), 1e-9) * 255, 0, 255).astype(np.uint8)
        out.append(image)
    return out


def _crops(photo: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random square crops (a quarter to all of the shorter side) of a photo."""
    height, width = photo.shape[:2]
    out = []
    for _ in range(n):
        side = int(rng.integers(min(height, width) // 4, min(height, width) + 1))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        out.append(photo[top : top + side, left : left + side])
    return out


def ood_images(n: int = 40, seed: int = 0, size: int = 64, photos: tuple[str, ...] = CALIBRATION_PHOTOS,
               digits: bool = True) -> dict[str, list[np.ndarray]]:
    """Generated inputs unlike any training set of a task, as raw RGB images (``size`` square):
    uniform and gaussian noise, random colour blocks, flat colours, stripes, crops of scikit-image
    ``photos``, and (``digits``) scikit-learn's 8x8 digits upscaled (off-domain for photo models).
    Each kind has ``n`` images; different seeds give different images."""
    rng = np.random.default_rng(seed)
    shape = (size, size, 3)
    kinds: dict[str, list[np.ndarray]] = {
        "uniform_noise": [rng.uniform(0, 255, shape) for _ in range(n)],
        "gaussian_noise": [np.clip(rng.normal(rng.uniform(60, 200), rng.uniform(20, 80), shape), 0, 255)
                           for _ in range(n)],
        "random_colours": [np.kron(rng.uniform(0, 255, (b, b, 3)), np.ones((size // b, size // b, 1)))
                           for b in rng.choice([2, 4, 8, 16], n)],
        "flat_colours": [np.broadcast_to(rng.uniform(0, 255, 3), shape).copy() for _ in range(n)],
    }
    stripes = []
    for _ in range(n):
        period, angle = rng.uniform(3, size / 2), rng.uniform(0, np.pi)
        rows, cols = np.mgrid[:size, :size]
        wave = np.sin(2 * np.pi * (rows * np.cos(angle) + cols * np.sin(angle)) / period) > 0
        low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        stripes.append(np.where(wave[..., None], high, low))
    kinds["stripes"] = stripes
    if photos:
        loaded = skimage_photos(photos)
        kinds["photos"] = [c for i in range(n) for c in _crops(loaded[i % len(loaded)], 1, rng)]
    if digits:
        from sklearn.datasets import load_digits

        images = load_digits().images[rng.choice(1797, n, replace=False)] * (255.0 / 16.0)
        kinds["digits_upscaled"] = [np.repeat(np.kron(255.0 - d, np.ones((8, 8)))[..., None], 3, axis=-1)
                                    for d in images]
    return {k: [np.asarray(i, np.float32) for i in v] for k, v in kinds.items()}
