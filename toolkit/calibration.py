"""Honest answers for classifiers: temperature scaling, calibration error, and "not sure".

Generic numpy over probabilities and model inputs, shared by the Keras tasks and their TFLite
runners (both call :meth:`Calibration.assess` on the same prepared batch and probabilities):

- :func:`fit_temperature` fits one temperature on held-out data (minimum negative log-likelihood);
  :func:`expected_calibration_error` and :func:`reliability_curve` measure what it changed.
- Two out-of-distribution scores. ``max_probability`` (of the temperature-scaled softmax) flags
  inputs the model is unsure about. It cannot flag everything unlike the training data: a
  softmax model is often confident on noise (the digits CNN calls a flat grey square a 1 at 0.998).
  ``pixel_distance`` (:class:`PixelDensity`) is a probabilistic-PCA Mahalanobis distance of the
  input, area-averaged to at most 16x16, from the training images: noise, flat colours, stripes
  and photos of other things are far from digits. (The energy score needs pre-softmax logits;
  from softmax outputs it is a constant, so it is not offered.)
- :func:`calibrate` picks both thresholds on held-out in-domain data plus generated
  out-of-distribution inputs (:func:`ood_images`), flagging at most ``max_flagged`` of the
  held-out in-domain images, and records what it measured.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .errors import DataError, ModelFormatError

EPS = 1e-7
DENSITY_FILE = "ood_reference.npz"
DENSITY_SIDE = 16
DENSITY_COMPONENTS = 32
UNLIKE = "looks unlike the training images"
UNSURE = "the model is not confident: its top probability is below {threshold:.2f}"


# ---------------------------------------------------------------------------- temperature and ECE


def scale_probabilities(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of ``log(probs) / temperature`` (the logits up to a constant): T > 1 softens."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), EPS, 1.0)) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], EPS, 1.0))))


def fit_temperature(probs: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the negative log-likelihood of labels ``y`` (held-out data).

    With no misclassified sample the likelihood keeps growing as T -> 0 (every answer made
    certain), which the data cannot justify: then 1.0 (no change) is returned."""
    from scipy.optimize import minimize_scalar

    probs, y = np.asarray(probs), np.asarray(y, dtype=np.int64)
    if np.all(probs.argmax(axis=-1) == y):
        return 1.0
    result = minimize_scalar(lambda log_t: negative_log_likelihood(scale_probabilities(probs, np.exp(log_t)), y),
                             bounds=np.log(bounds), method="bounded")
    return float(np.exp(result.x))


def reliability_curve(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict:
    """Per confidence bin (equal width over [0, 1]): mean confidence, accuracy and count
    (empty bins left out), plus the expected calibration error they add up to."""
    probs, y = np.asarray(probs), np.asarray(y)
    confidence, correct = probs.max(axis=-1), (probs.argmax(axis=-1) == y)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    rows = {"bin_low": [], "bin_high": [], "confidence": [], "accuracy": [], "count": []}
    ece = 0.0
    for b in range(n_bins):
        members = bins == b
        if not members.any():
            continue
        conf, acc = float(confidence[members].mean()), float(correct[members].mean())
        ece += members.mean() * abs(acc - conf)
        for key, value in zip(rows, (b / n_bins, (b + 1) / n_bins, conf, acc, int(members.sum()))):
            rows[key].append(value)
    return {**rows, "ece": float(ece)}


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Share-weighted mean |accuracy - confidence| over confidence bins (0: calibrated)."""
    return reliability_curve(probs, y, n_bins)["ece"]


# ---------------------------------------------------------------------------- pixel distance


def _downsample(batch: np.ndarray, side: int = DENSITY_SIDE) -> np.ndarray:
    """(N, H, W, C) raw pixels, area-averaged to at most side x side, as (N, D) floats in [0, 1]."""
    from .data.images import resize_image

    batch = np.asarray(batch, np.float32)
    height, width = batch.shape[1:3]
    size = (min(height, side), min(width, side))
    if (height, width) != size:
        batch = np.stack([resize_image(image, size) for image in batch])
    return batch.reshape(len(batch), -1) / 255.0


@dataclasses.dataclass
class PixelDensity:
    """A probabilistic PCA of the training images (downsampled): :meth:`distance` is the
    Mahalanobis distance under it, per input dimension (about 1 for training-like images)."""

    mean: np.ndarray
    components: np.ndarray  # (k, D), orthonormal rows
    variances: np.ndarray  # (k,)
    noise_variance: float
    input_shape: tuple[int, ...]

    @classmethod
    def fit(cls, batch: np.ndarray, n_components: int = DENSITY_COMPONENTS) -> "PixelDensity":
        x = _downsample(batch)
        if len(x) < 3:
            raise DataError(f"Expected at least 3 training images to model the input. Received {len(x)}.")
        mean = x.mean(axis=0)
        _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
        eigen = singular**2 / (len(x) - 1)
        k = int(min(n_components, len(eigen) - 1))
        floor = max(float(eigen[0]) * 1e-4, 1e-6)
        noise = max(float(eigen[k:].sum() / max(x.shape[1] - k, 1)), floor)
        return cls(mean.astype(np.float32), vt[:k].astype(np.float32), np.maximum(eigen[:k], floor).astype(np.float32),
                   noise, tuple(int(d) for d in np.shape(batch)[1:]))

    def distance(self, batch: np.ndarray) -> np.ndarray:
        x = _downsample(batch) - self.mean
        z = x @ self.components.T
        residual = np.sum(x**2, axis=1) - np.sum(z**2, axis=1)
        return ((np.sum(z**2 / self.variances, axis=1) + np.maximum(residual, 0) / self.noise_variance)
                / x.shape[1]).astype(np.float64)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the reference atomically (a temporary file in the same folder, then replace)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, mean=self.mean, components=self.components, variances=self.variances,
                            noise_variance=np.float64(self.noise_variance), input_shape=np.asarray(self.input_shape))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PixelDensity":
        try:
            with np.load(path, allow_pickle=False) as npz:
                return cls(npz["mean"], npz["components"], npz["variances"], float(npz["noise_variance"]),
                           tuple(int(d) for d in npz["input_shape"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFormatError(f"Could not read the out-of-distribution reference {path}: {exc}. "
                                   "Recalibrate with `toolkit calibrate MODEL_DIR`.") from exc


# ---------------------------------------------------------------------------- generated out-of-distribution inputs

#: scikit-image photos used to calibrate; the others (``HELD_OUT_PHOTOS``) are kept for measuring.
CALIBRATION_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
HELD_OUT_PHOTOS = ("camera", "moon", "coins", "horse", "hubble_deep_field", "immunohistochemistry", "page",
                   "text", "clock", "brick", "grass", "gravel", "retina", "cell", "colorwheel", "cat", "logo")


def _photos(names: tuple[str, ...]) -> list[np.ndarray]:
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
        loaded = _photos(photos)
        kinds["photos"] = [c for i in range(n) for c in _crops(loaded[i % len(loaded)], 1, rng)]
    if digits:
        from sklearn.datasets import load_digits

        images = load_digits().images[rng.choice(1797, n, replace=False)] * (255.0 / 16.0)
        kinds["digits_upscaled"] = [np.repeat(np.kron(255.0 - d, np.ones((8, 8)))[..., None], 3, axis=-1)
                                    for d in images]
    return {k: [np.asarray(i, np.float32) for i in v] for k, v in kinds.items()}


# ---------------------------------------------------------------------------- the calibration


@dataclasses.dataclass
class Calibration:
    """A temperature and the "not sure" rule: an input is flagged when its pixel distance is
    above ``distance_threshold`` (it looks unlike the training images) or its top
    temperature-scaled probability is below ``probability_threshold``."""

    temperature: float = 1.0
    probability_threshold: float = 0.0
    distance_threshold: float | None = None
    density: PixelDensity | None = None
    report: dict = dataclasses.field(default_factory=dict)

    def scaled(self, probs: np.ndarray) -> np.ndarray:
        return scale_probabilities(probs, self.temperature)

    def scores(self, batch: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
        out = {"max_probability": self.scaled(probs).max(axis=-1)}
        if self.density is not None:
            out["pixel_distance"] = self.density.distance(batch)
        return out

    def flags(self, batch: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unlike the training images, not confident) per sample."""
        scores = self.scores(batch, probs)
        unlike = np.zeros(len(probs), bool)
        if self.distance_threshold is not None and "pixel_distance" in scores:
            unlike = scores["pixel_distance"] > self.distance_threshold
        return unlike, scores["max_probability"] < self.probability_threshold

    def assess(self, batch: np.ndarray, probs: np.ndarray) -> list[dict]:
        """Per sample: ``in_domain`` (None when no pixel reference is available), ``not_sure``
        and ``why`` (None when sure)."""
        unlike, unsure = self.flags(batch, probs)
        checked = self.density is not None and self.distance_threshold is not None
        return [{"in_domain": bool(not u) if checked else None, "not_sure": bool(u or s),
                 "why": UNLIKE if u else (UNSURE.format(threshold=self.probability_threshold) if s else None)}
                for u, s in zip(unlike, unsure)]

    # ------------------------------------------------------------------ card
    def to_card(self) -> dict:
        return {"temperature": self.temperature, "score": "max_probability" + (
                    " or pixel_distance" if self.distance_threshold is not None else ""),
                "threshold": {"max_probability": self.probability_threshold,
                              "pixel_distance": self.distance_threshold},
                "reference_file": DENSITY_FILE if self.density is not None else None, **self.report}

    @classmethod
    def from_card(cls, section: dict | None, directory: str | os.PathLike | None) -> "Calibration | None":
        """The calibration a card records (its pixel reference read from ``directory``), or None."""
        if not section:
            return None
        threshold = section.get("threshold") or {}
        density = None
        name = section.get("reference_file")
        if name and directory is not None and (Path(directory) / Path(name).name).is_file():
            density = PixelDensity.load(Path(directory) / Path(name).name)
        report = {k: v for k, v in section.items() if k not in ("temperature", "score", "threshold", "reference_file")}
        return cls(float(section.get("temperature", 1.0)), float(threshold.get("max_probability") or 0.0),
                   threshold.get("pixel_distance") if density is not None else None, density, report)


def _rates(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if len(flags) else 0.0


def calibrate(val_probs: np.ndarray, val_y: np.ndarray, val_batch: np.ndarray, reference: np.ndarray | None,
              ood: dict[str, tuple[np.ndarray, np.ndarray]], max_flagged: float = 0.05,
              min_ood_flagged: float = 0.9, ood_goal: float = 0.95, steps: int = 11) -> Calibration:
    """Fit the temperature and the two thresholds.

    ``val_*``: held-out in-domain data (probabilities, labels, prepared inputs); ``reference``:
    prepared training images for the pixel distance (None: the probability score alone);
    ``ood``: kind -> (prepared inputs, probabilities) of generated out-of-distribution inputs.
    Thresholds are quantiles of the held-out scores, flagging at most ``max_flagged`` of the
    held-out images; among the pairs flagging at least ``ood_goal`` of the generated inputs, the
    one flagging the fewest held-out images wins (the margin keeps unseen in-domain images under
    ``max_flagged``); when none reaches it, the one flagging the most generated inputs. A warning
    when fewer than ``min_ood_flagged`` of the generated inputs are flagged.
    """
    import warnings

    val_y = np.asarray(val_y, np.int64)
    if len(val_y) < 2:
        raise DataError(f"Expected at least 2 held-out images to calibrate on (20 or more for useful thresholds). "
                        f"Received {len(val_y)}. Pass more validation data.")
    if len(val_y) < 20:
        warnings.warn(f"Calibrating on only {len(val_y)} held-out images: the 'not sure' thresholds are rough. "
                      "Pass 20 or more.", stacklevel=3)
    temperature = fit_temperature(val_probs, val_y)
    density = PixelDensity.fit(reference) if reference is not None else None
    base = Calibration(temperature, density=density)
    val_scores = base.scores(val_batch, val_probs)
    grid = np.linspace(0, max_flagged, steps)
    best = None
    for p_rate in grid:
        p_thr = float(np.quantile(val_scores["max_probability"], p_rate)) if p_rate > 0 else 0.0
        for d_rate in (grid if density is not None else [None]):
            d_thr = None if d_rate is None else float(np.quantile(val_scores["pixel_distance"], 1 - d_rate))
            candidate = dataclasses.replace(base, probability_threshold=p_thr, distance_threshold=d_thr)
            in_flagged = _rates(np.logical_or(*candidate.flags(val_batch, val_probs)))
            if in_flagged > max_flagged:
                continue
            flagged = {k: _rates(np.logical_or(*candidate.flags(b, p))) for k, (b, p) in zip(ood, ood.values())}
            key = (min(float(np.mean(list(flagged.values()))) if flagged else 0.0, ood_goal), -in_flagged)
            if best is None or key > best[0]:
                best = (key, candidate, in_flagged, flagged)
    _, chosen, in_flagged, flagged = best
    scaled = chosen.scaled(val_probs)
    ood_rate = float(np.mean(list(flagged.values()))) if flagged else None
    chosen.report = {
        "ece_before": expected_calibration_error(val_probs, val_y),
        "ece_after": expected_calibration_error(scaled, val_y),
        "nll_before": negative_log_likelihood(val_probs, val_y),
        "nll_after": negative_log_likelihood(scaled, val_y),
        "in_domain_flagged": in_flagged,
        "ood_flagged": ood_rate,
        "ood_flagged_by_kind": flagged,
        "n_in_domain": int(len(val_y)),
        "n_ood": int(sum(len(p) for _, p in ood.values())),
        "n_reference": int(len(reference)) if reference is not None else 0,
        "max_flagged": max_flagged,
        "temperature_fitted": bool(np.any(val_probs.argmax(axis=-1) != val_y)),
        **({} if np.any(val_probs.argmax(axis=-1) != val_y) else {"temperature_note": (
            "no held-out image was misclassified, so the likelihood would only grow as T -> 0: T stays 1")}),
        "measured_on": "held-out validation images (not the test split) and generated out-of-distribution inputs",
    }
    if ood_rate is not None and ood_rate < min_ood_flagged:
        warnings.warn(f"Only {ood_rate:.2f} of the generated out-of-distribution inputs are flagged "
                      f"(goal {min_ood_flagged}); 'not sure' will miss some inputs unlike the training images.",
                      stacklevel=3)
    return chosen
