"""Honest answers for classifiers: temperature scaling, calibration error, and "not sure".

Generic numpy over probabilities and model inputs, shared by the Keras tasks and their TFLite
runners (both call :meth:`Calibration.assess` on the same prepared batch and probabilities):

- :func:`fit_temperature` fits one temperature on held-out data (minimum negative log-likelihood);
  :func:`expected_calibration_error` and :func:`reliability_curve` measure what it changed.
- Three out-of-distribution scores. ``max_probability`` (of the temperature-scaled softmax) flags
  inputs the model is unsure about. It cannot flag everything unlike the training data: a
  softmax model is often confident on noise (the digits CNN calls a flat grey square a 1 at 0.998).
  ``pixel_distance`` (:class:`PixelDensity`) is a probabilistic-PCA Mahalanobis distance of the
  input, area-averaged to at most 16x16, from the training images: noise, flat colours, stripes
  and photos of other things are far from digits. For photos it is weak (ants/bees: 0.40 of the
  generated inputs flagged), so models with pooled features also get ``feature_distance``
  (:class:`FeatureDensity`): a class-conditional Mahalanobis distance of the model's normalised
  pooled features from the training images' (ants/bees: all generated kinds flagged). A model
  file that returns only probabilities cannot give it; it uses thresholds calibrated without it.
  (The energy score needs pre-softmax logits; from softmax outputs it is a constant, so it is
  not offered.)
- :func:`calibrate` picks the thresholds on held-out in-domain data plus generated
  out-of-distribution inputs (:func:`ood_images`), flagging at most ``max_flagged`` of the
  held-out in-domain images, and records what it measured.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .data.ood import CALIBRATION_PHOTOS, HELD_OUT_PHOTOS, ood_images, skimage_photos  # noqa: F401  (re-exported)
from .errors import DataError, ModelFormatError

EPS = 1e-7
DENSITY_FILE = "ood_reference.npz"
DENSITY_SIDE = 16
DENSITY_COMPONENTS = 32
FEATURE_FILE = "ood_features.npz"
FEATURE_COMPONENTS = 32
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


# ---------------------------------------------------------------------------- distances from the training data


def _ppca(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Probabilistic PCA of centred rows ``x``: (components (k, D), variances (k,), noise variance)."""
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    eigen = singular**2 / max(len(x) - 1, 1)
    k = int(min(n_components, len(eigen) - 1))
    floor = max(float(eigen[0]) * 1e-4, 1e-6)
    noise = max(float(eigen[k:].sum() / max(x.shape[1] - k, 1)), floor)
    return vt[:k].astype(np.float32), np.maximum(eigen[:k], floor).astype(np.float32), noise


def _mahalanobis(x: np.ndarray, components: np.ndarray, variances: np.ndarray, noise: float) -> np.ndarray:
    """Per row of centred ``x``: the PPCA Mahalanobis distance per input dimension."""
    z = x @ components.T
    residual = np.sum(x**2, axis=1) - np.sum(z**2, axis=1)
    return ((np.sum(z**2 / variances, axis=1) + np.maximum(residual, 0) / noise) / x.shape[1]).astype(np.float64)


def _save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Write ``arrays`` atomically (a temporary file in the same folder, then replace)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def _load_npz(path: str | os.PathLike, *names: str) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return [npz[name] for name in names]
    except (OSError, KeyError, ValueError) as exc:
        raise ModelFormatError(f"Could not read the out-of-distribution reference {path}: {exc}. "
                               "Recalibrate with `toolkit calibrate MODEL_DIR`.") from exc


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
        return cls(mean.astype(np.float32), *_ppca(x - mean, n_components), tuple(int(d) for d in np.shape(batch)[1:]))

    def distance(self, batch: np.ndarray) -> np.ndarray:
        return _mahalanobis(_downsample(batch) - self.mean, self.components, self.variances, self.noise_variance)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the reference atomically (a temporary file in the same folder, then replace)."""
        return _save_npz(path, mean=self.mean, components=self.components, variances=self.variances,
                         noise_variance=np.float64(self.noise_variance), input_shape=np.asarray(self.input_shape))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PixelDensity":
        mean, components, variances, noise, shape = _load_npz(path, "mean", "components", "variances",
                                                              "noise_variance", "input_shape")
        return cls(mean, components, variances, float(noise), tuple(int(d) for d in shape))


def _unit(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@dataclasses.dataclass
class FeatureDensity:
    """Class-conditional Gaussians with one shared covariance (a probabilistic PCA of the
    within-class spread) over the model's pooled features, L2-normalised, of the training images.
    :meth:`distance` is the Mahalanobis distance to the nearest class mean, per dimension.

    Measured on ants/bees (EfficientNet-Lite0 features): normalising the features is what makes
    it work: raw features put flat colours and upscaled digits nearer the training images than
    held-out ants; normalised, every generated kind lies beyond the held-out images."""

    class_means: np.ndarray  # (C, D)
    components: np.ndarray  # (k, D)
    variances: np.ndarray  # (k,)
    noise_variance: float

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, n_components: int = FEATURE_COMPONENTS) -> "FeatureDensity":
        """``features`` (N, D) of training images and their class (label or predicted class)."""
        x, labels = _unit(features), np.asarray(labels)
        if len(x) < 3:
            raise DataError(f"Expected at least 3 training images to model the features. Received {len(x)}.")
        classes = np.unique(labels)
        means = np.stack([x[labels == c].mean(axis=0) for c in classes])
        spread = x - means[np.searchsorted(classes, labels)]
        return cls(means.astype(np.float32), *_ppca(spread - spread.mean(axis=0), n_components))

    def distance(self, features: np.ndarray) -> np.ndarray:
        x = _unit(features)
        return np.min([_mahalanobis(x - mean, self.components, self.variances, self.noise_variance)
                       for mean in self.class_means], axis=0)

    def save(self, path: str | os.PathLike) -> Path:
        return _save_npz(path, class_means=self.class_means, components=self.components, variances=self.variances,
                         noise_variance=np.float64(self.noise_variance))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureDensity":
        means, components, variances, noise = _load_npz(path, "class_means", "components", "variances",
                                                         "noise_variance")
        return cls(means, components, variances, float(noise))


def roughness(batch: np.ndarray) -> np.ndarray:
    """Per image of (N, H, W, C) raw pixels: the mean absolute Laplacian of its grey levels over
    their standard deviation (+1). Needs no reference: independent pixel noise scores about 3.5
    whatever its amplitude (the 5-point Laplacian of white noise), photos well under 1 (smooth
    regions), flat colours 0. Measured on 200 crops of scikit-image photos: at most 0.48; noise
    3.35 or more."""
    from .data.drawings import channel_mean

    grey = channel_mean(np.asarray(batch, np.float32))
    if min(grey.shape[1:3]) < 3:
        return np.zeros(len(grey))
    lap = np.abs(4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1] - grey[:, 1:-1, :-2]
                 - grey[:, 1:-1, 2:])
    return (lap.mean(axis=(1, 2)) / (grey.std(axis=(1, 2)) + 1.0)).astype(np.float64)


# ---------------------------------------------------------------------------- the calibration


@dataclasses.dataclass
class Calibration:
    """A temperature and the "not sure" rule: an input is flagged when its feature distance is
    above ``feature_threshold`` or its pixel distance above ``distance_threshold`` (it looks
    unlike the training images), or its top temperature-scaled probability is below
    ``probability_threshold``.

    The feature distance needs the model's pooled features, which a model file that returns only
    probabilities (the ``.tflite``) cannot give: for it, ``without_features`` holds thresholds
    (max probability, pixel distance) calibrated by the same procedure without that score, and
    :meth:`assess` says in ``checked`` which scores it used."""

    temperature: float = 1.0
    probability_threshold: float = 0.0
    distance_threshold: float | None = None
    density: PixelDensity | None = None
    report: dict = dataclasses.field(default_factory=dict)
    feature_threshold: float | None = None
    features: FeatureDensity | None = None
    without_features: dict | None = None  # {"max_probability": p, "pixel_distance": d or None}
    roughness_threshold: float | None = None  # :func:`roughness` above it: noise, unlike any photo
    unlike: str = UNLIKE  # the reason given for an input far from the training data

    @property
    def uses_features(self) -> bool:
        return self.features is not None and self.feature_threshold is not None

    def scaled(self, probs: np.ndarray) -> np.ndarray:
        return scale_probabilities(probs, self.temperature)

    def scores(self, batch: np.ndarray, probs: np.ndarray, features: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = {"max_probability": self.scaled(probs).max(axis=-1)}
        if self.density is not None:
            out["pixel_distance"] = self.density.distance(batch)
        if self.features is not None and features is not None:
            out["feature_distance"] = self.features.distance(features)
        if self.roughness_threshold is not None:
            out["roughness"] = roughness(batch)
        return out

    def fallback(self) -> "Calibration":
        """The rule for when the pooled features are not available: this calibration without the
        feature score, with the thresholds calibrated for that case."""
        if not self.uses_features:
            return self
        rule = self.without_features or {}
        distance = rule.get("pixel_distance")
        return dataclasses.replace(self, probability_threshold=float(rule.get("max_probability") or 0.0),
                                   distance_threshold=None if distance is None else float(distance),
                                   feature_threshold=None, features=None, without_features=None)

    def checks(self) -> list[str]:
        """The scores this rule reads."""
        return ["max_probability"] + (["pixel_distance"] if self.density is not None and
                                      self.distance_threshold is not None else []) + (
            ["feature_distance"] if self.uses_features else []) + (
            ["roughness"] if self.roughness_threshold is not None else [])

    def flags(self, batch: np.ndarray, probs: np.ndarray, features: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """(unlike the training images, not confident) per sample. Without ``features``, a rule
        that needs them uses :meth:`fallback`."""
        if self.uses_features and features is None:
            return self.fallback().flags(batch, probs)
        scores = self.scores(batch, probs, features)
        unlike = np.zeros(len(probs), bool)
        if self.distance_threshold is not None and "pixel_distance" in scores:
            unlike |= scores["pixel_distance"] > self.distance_threshold
        if self.feature_threshold is not None and "feature_distance" in scores:
            unlike |= scores["feature_distance"] > self.feature_threshold
        if "roughness" in scores:
            unlike |= scores["roughness"] > self.roughness_threshold
        return unlike, scores["max_probability"] < self.probability_threshold

    def assess(self, batch: np.ndarray, probs: np.ndarray, features: np.ndarray | None = None) -> list[dict]:
        """Per sample: ``in_domain`` (None when no distance is checked), ``not_sure``, ``why``
        (None when sure) and ``checked`` (the scores used: without ``features``, a rule that
        needs them falls back to the scores it can compute; see :meth:`fallback`)."""
        rule = self.fallback() if self.uses_features and features is None else self
        unlike, unsure = rule.flags(batch, probs, features)
        checked = rule.checks()
        measured = len(checked) > 1
        return [{"in_domain": bool(not u) if measured else None, "not_sure": bool(u or s),
                 "why": self.unlike if u else (UNSURE.format(threshold=rule.probability_threshold) if s else None),
                 "checked": checked}
                for u, s in zip(unlike, unsure)]

    # ------------------------------------------------------------------ card and files
    def to_card(self) -> dict:
        threshold = {"max_probability": self.probability_threshold, "pixel_distance": self.distance_threshold}
        if self.features is not None:
            threshold["feature_distance"] = self.feature_threshold
        if self.roughness_threshold is not None:
            threshold["roughness"] = self.roughness_threshold
        section = {"temperature": self.temperature, "score": " or ".join(self.checks()), "threshold": threshold,
                   "reference_file": DENSITY_FILE if self.density is not None else None,
                   **({"unlike": self.unlike} if self.unlike != UNLIKE else {})}
        if self.features is not None:
            section["feature_reference_file"] = FEATURE_FILE
            section["without_features"] = {
                "threshold": self.without_features,
                "used_by": "model files that return only the probabilities (the .tflite files): they cannot give "
                           "the pooled features, so they check only " + " and ".join(self.fallback().checks())}
        return {**section, **self.report}

    def save_references(self, directory: str | os.PathLike) -> None:
        """Write the reference files the card names into ``directory``."""
        if self.density is not None:
            self.density.save(Path(directory) / DENSITY_FILE)
        if self.features is not None:
            self.features.save(Path(directory) / FEATURE_FILE)

    @classmethod
    def from_card(cls, section: dict | None, directory: str | os.PathLike | None) -> "Calibration | None":
        """The calibration a card records (its reference files read from ``directory``), or None."""
        if not section:
            return None
        threshold = section.get("threshold") or {}

        def reference(key, kind):
            name = section.get(key)
            if name and directory is not None and (Path(directory) / Path(name).name).is_file():
                return kind.load(Path(directory) / Path(name).name)
            return None

        density, features = reference("reference_file", PixelDensity), reference("feature_reference_file", FeatureDensity)
        fallback = (section.get("without_features") or {}).get("threshold")
        report = {k: v for k, v in section.items() if k not in (
            "temperature", "score", "threshold", "reference_file", "feature_reference_file", "without_features",
            "unlike")}
        calibration = cls(float(section.get("temperature", 1.0)), float(threshold.get("max_probability") or 0.0),
                          threshold.get("pixel_distance") if density is not None else None, density, report,
                          threshold.get("feature_distance"), features, fallback, threshold.get("roughness"),
                          str(section.get("unlike") or UNLIKE))
        if features is None and threshold.get("feature_distance") is not None:  # its file is missing
            calibration.features = calibration.feature_threshold = None
            rule = fallback or {}
            calibration.probability_threshold = float(rule.get("max_probability") or 0.0)
            calibration.distance_threshold = rule.get("pixel_distance") if density is not None else None
        return calibration


def _rates(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if len(flags) else 0.0


def _search(val: dict, ood: dict, max_flagged: float, ood_goal: float, steps: int, use: tuple[str, ...]):
    """The thresholds on precomputed scores (name -> array; ``val``: held-out, ``ood``: kind ->
    scores): quantiles of the held-out scores, flagging at most ``max_flagged`` of them. Among
    the rules flagging at least ``ood_goal`` of the generated inputs, the one flagging the fewest
    held-out images wins; when none reaches it, the one flagging the most generated inputs.
    Where there are two distance scores, either may be left out (tried first, so it stays out
    when it adds nothing).
    Returns (thresholds, in-domain share flagged, share flagged per kind)."""
    import itertools

    grid = np.linspace(0, max_flagged, steps)
    options = {"max_probability": [float(np.quantile(val["max_probability"], r)) if r > 0 else 0.0 for r in grid]}
    for name in use:
        options[name] = [None] * (len(use) > 1) + [float(np.quantile(val[name], 1 - r)) for r in grid]

    def flagged(scores, rule):
        out = scores["max_probability"] < rule["max_probability"]
        for name in use:
            if rule[name] is not None:
                out = out | (scores[name] > rule[name])
        return out

    best = None
    for values in itertools.product(*options.values()):
        rule = dict(zip(options, values))
        in_flagged = _rates(flagged(val, rule))
        if in_flagged > max_flagged:
            continue
        by_kind = {kind: _rates(flagged(scores, rule)) for kind, scores in ood.items()}
        key = (min(float(np.mean(list(by_kind.values()))) if by_kind else 0.0, ood_goal), -in_flagged)
        if best is None or key > best[0]:
            best = (key, rule, in_flagged, by_kind)
    return best[1:]


def calibrate(val_probs: np.ndarray, val_y: np.ndarray, val_batch: np.ndarray, reference: np.ndarray | None,
              ood: dict[str, tuple], max_flagged: float = 0.05, min_ood_flagged: float = 0.9,
              ood_goal: float = 0.95, steps: int = 11, *, val_features: np.ndarray | None = None,
              reference_features: tuple[np.ndarray, np.ndarray] | None = None, what: str = "images",
              unlike: str = UNLIKE) -> Calibration:
    """Fit the temperature and the thresholds.

    ``val_*``: held-out in-domain data (probabilities, labels, prepared inputs, and pooled
    features where the model has them); ``reference``: prepared training images for the pixel
    distance (None: no pixel score); ``reference_features``: (pooled features, class) of training
    images for the feature distance (None: no feature score); ``ood``: kind -> (prepared inputs,
    probabilities[, features]) of generated out-of-distribution inputs.
    Thresholds are quantiles of the held-out scores, flagging at most ``max_flagged`` of the
    held-out images; among the rules flagging at least ``ood_goal`` of the generated inputs, the
    one flagging the fewest held-out images wins (the margin keeps unseen in-domain images under
    ``max_flagged``); when none reaches it, the one flagging the most generated inputs. With
    features, a second rule without them is calibrated the same way, for model files that return
    only probabilities. A warning when fewer than ``min_ood_flagged`` of the generated inputs are
    flagged. ``what`` the inputs are in messages ("images", "recordings"); ``unlike``: the reason
    "not sure" gives for an input far from the training data.
    """
    import warnings

    val_y = np.asarray(val_y, np.int64)
    if len(val_y) < 2:
        raise DataError(f"Expected at least 2 held-out {what} to calibrate on (20 or more for useful thresholds). "
                        f"Received {len(val_y)}. Pass more validation data.")
    if len(val_y) < 20:
        warnings.warn(f"Calibrating on only {len(val_y)} held-out {what}: the 'not sure' thresholds are rough. "
                      "Pass 20 or more.", stacklevel=3)
    temperature = fit_temperature(val_probs, val_y)
    density = PixelDensity.fit(reference) if reference is not None else None
    features = None
    ood_has_features = all(len(v) > 2 and v[2] is not None for v in ood.values())
    if reference_features is not None and val_features is not None and ood_has_features:
        features = FeatureDensity.fit(*reference_features)
    base = Calibration(temperature, density=density, features=features, unlike=unlike)
    val_scores = base.scores(val_batch, val_probs, val_features)
    ood_scores = {kind: base.scores(b, p, v[0] if v else None) for kind, (b, p, *v) in ood.items()}
    pixel = ("pixel_distance",) if density is not None else ()
    rule, in_flagged, flagged = _search(val_scores, ood_scores, max_flagged, ood_goal, steps,
                                        pixel + (("feature_distance",) if features is not None else ()))
    chosen = dataclasses.replace(base, probability_threshold=rule["max_probability"],
                                 distance_threshold=rule.get("pixel_distance"),
                                 feature_threshold=rule.get("feature_distance"))
    if chosen.feature_threshold is None:
        chosen.features = None
    fallback_report = {}
    if chosen.uses_features:
        fallback, fallback_in, fallback_ood = _search(val_scores, ood_scores, max_flagged, ood_goal, steps, pixel)
        chosen.without_features = {"max_probability": fallback["max_probability"],
                                   "pixel_distance": fallback.get("pixel_distance")}
        fallback_report = {"without_features_in_domain_flagged": fallback_in,
                           "without_features_ood_flagged": float(np.mean(list(fallback_ood.values()))),
                           "without_features_ood_flagged_by_kind": fallback_ood}
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
        **fallback_report,
        "n_in_domain": int(len(val_y)),
        "n_ood": int(sum(len(v[1]) for v in ood.values())),
        "n_reference": int(len(reference)) if reference is not None else 0,
        **({"n_feature_reference": int(len(reference_features[0]))} if features is not None else {}),
        "max_flagged": max_flagged,
        "temperature_fitted": bool(np.any(val_probs.argmax(axis=-1) != val_y)),
        **({} if np.any(val_probs.argmax(axis=-1) != val_y) else {"temperature_note": (
            f"none of the held-out {what} was misclassified, so the likelihood would only grow as T -> 0: "
            "T stays 1")}),
        "measured_on": f"held-out validation {what} (not the test split) and generated out-of-distribution inputs",
    }
    if ood_rate is not None and ood_rate < min_ood_flagged:
        warnings.warn(f"Only {ood_rate:.2f} of the generated out-of-distribution inputs are flagged "
                      f"(goal {min_ood_flagged}); 'not sure' will miss some inputs unlike the training {what}.",
                      stacklevel=3)
    return chosen


def calibrate_without_labels(val_probs: np.ndarray, val_batch: np.ndarray, ood: dict[str, tuple],
                             max_flagged: float = 0.05, ood_goal: float = 0.95, steps: int = 11,
                             measured_on: str = "", noise_kinds: tuple[str, ...] = ()) -> Calibration:
    """A max-probability "not sure" threshold for a model with no labelled held-out data of its
    own classes (the 1000-class ImageNet model: only unlabelled in-domain photos): temperature 1
    (nothing to fit it on), the threshold a quantile of ``val_probs``' top probabilities flagging
    at most ``max_flagged`` of them, chosen as :func:`calibrate` does against ``ood`` (kind ->
    (inputs, probabilities)). ``noise_kinds``: the ``ood`` kinds of pixel noise; with them a
    :func:`roughness` threshold is added, halfway between the roughest in-domain image and the
    smoothest noise image (a softmax model is often confident on noise: the ImageNet model's top
    probability on uniform noise is as high as on many crops of real photos). The report says
    what it was measured on."""
    val_probs = np.asarray(val_probs)
    if len(val_probs) < 2:
        raise DataError(f"Expected at least 2 in-domain images to calibrate on (20 or more for useful thresholds). "
                        f"Received {len(val_probs)}.")
    base = Calibration(1.0)
    val_scores = base.scores(val_batch, val_probs)
    ood_scores = {kind: base.scores(b, p) for kind, (b, p, *_) in ood.items()}
    rule, in_flagged, flagged = _search(val_scores, ood_scores, max_flagged, ood_goal, steps, ())
    chosen = dataclasses.replace(base, probability_threshold=rule["max_probability"])
    if noise_kinds:
        noisy = np.concatenate([roughness(ood[kind][0]) for kind in noise_kinds])
        in_domain = roughness(val_batch)
        chosen.roughness_threshold = float((in_domain.max() + noisy.min()) / 2)
        flagged = {kind: _rates(np.logical_or(*chosen.flags(b, p))) for kind, (b, p, *_) in ood.items()}
        in_flagged = _rates(np.logical_or(*chosen.flags(val_batch, val_probs)))
    chosen.report = {
        "in_domain_flagged": in_flagged,
        "ood_flagged": float(np.mean(list(flagged.values()))) if flagged else None,
        "ood_flagged_by_kind": flagged,
        "n_in_domain": int(len(val_probs)),
        "n_ood": int(sum(len(v[1]) for v in ood.values())),
        "max_flagged": max_flagged,
        "temperature_fitted": False,
        "temperature_note": "no labelled held-out data of the model's classes: T stays 1",
        "measured_on": measured_on or "unlabelled in-domain images and generated out-of-distribution inputs",
    }
    return chosen
