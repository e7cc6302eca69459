"""Quality of generated and restored images: an FID for digits, the share of samples a classifier
labels as the requested digit, diversity (mode collapse), PSNR and SSIM.

**FID for digits.** The Frechet distance between Gaussians fitted to the penultimate-layer
features (the 128 global-average-pooled channels feeding the softmax) of the shipped digits
classifier ``saved_models/vision/digits_cnn``, which takes 8x8 raw pixels 0-255, light strokes on
black. Generated 16x16 images are downscaled to 8x8 by area averaging (their raw 0-255 pixels
stay 0-255). Every distance is computed on the same number of images (default 360, the size of
the digits test split) so that the numbers compare fairly; the small-sample bias of the Frechet
distance is then the same for each. Two reference points:

- real vs real: the digits *train* images (a seeded random subset of that size) against the test
  images; a perfect generator would score about this;
- noise: uniform noise images (pixels 0-255) against the test images; anything useful scores
  far below it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.images import resize_image
from ..errors import DataError, ModelFormatError

REPO = Path(__file__).resolve().parent.parent.parent
DIGITS_CLASSIFIER = REPO / "saved_models" / "vision" / "digits_cnn"
FEATURE_LAYER = "pool"  # GlobalAveragePooling2D: its output feeds dropout and the softmax
CLASSIFIER_SIZE = (8, 8)
FID_SAMPLES = 360
MAX_PSNR = 100.0

_JUDGES: dict[str, "DigitsJudge"] = {}
_LOCK = threading.Lock()


class DigitsJudge:
    """The shipped digits classifier, used to score images: its labels and penultimate features."""

    def __init__(self, directory: str | Path | None = None):
        import keras
        import tensorflow as tf

        from ..base import load
        from ..serving import traced

        directory = Path(directory or DIGITS_CLASSIFIER)
        if not (directory / "card.json").is_file():
            raise ModelFormatError(
                f"The digits metrics (FID for digits, label accuracy) need the shipped digits classifier at "
                f"{directory}, which is missing. Run `make models` (or `toolkit train vision --data digits --out "
                f"{directory}`) first."
            )
        self.classifier = load(directory)
        model = self.classifier.model_
        both = keras.Model(model.inputs, [model.get_layer(FEATURE_LAYER).output, model.outputs[0]])
        self._run = traced(both, tf.TensorSpec((None, *CLASSIFIER_SIZE, 1), tf.float32))

    @staticmethod
    def classifier_input(images: np.ndarray) -> np.ndarray:
        """Raw-pixel images of any size (1 or 3 channels) as the classifier's 8x8x1 input."""
        return np.stack([resize_image(img, CLASSIFIER_SIZE) for img in _gray(images)])  # area averaging

    def features_and_probs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.classifier_input(images)
        feats, probs = [], []
        for i in range(0, len(x), 512):
            f, p = self._run(x[i : i + 512])
            feats.append(f.numpy())
            probs.append(p.numpy())
        return np.concatenate(feats).astype(np.float64), np.concatenate(probs)

    def features(self, images: np.ndarray) -> np.ndarray:
        return self.features_and_probs(images)[0]

    def labels(self, images: np.ndarray) -> np.ndarray:
        return np.argmax(self.features_and_probs(images)[1], axis=-1)


def digits_judge(directory: str | Path | None = None) -> DigitsJudge:
    """The judge for ``directory`` (default: the shipped classifier), loaded once per process."""
    key = str(Path(directory or DIGITS_CLASSIFIER).resolve())
    with _LOCK:
        if key not in _JUDGES:
            _JUDGES[key] = DigitsJudge(key)
        return _JUDGES[key]


def _gray(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"Expected images (N, H, W, 1 or 3). Received shape={x.shape}.")
    if x.shape[-1] == 3:
        x = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return np.clip(x, 0, 255)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples):
    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

    The trace of the matrix square root is computed from the eigenvalues of the symmetric
    S1^(1/2) S2 S1^(1/2), which have the same square roots' sum, so singular covariances (dead
    features) need no regularisation.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(s1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    trace_root = float(np.sum(np.sqrt(np.clip(cross, 0, None))))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_root)


def noise_images(n: int, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Uniform noise images, raw pixels 0-255: the FID's noise baseline."""
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype(np.float32)


def fid_digits(generated: np.ndarray, real: np.ndarray, judge: DigitsJudge | None = None) -> float:
    """The FID for digits between two image sets (use equal sizes to compare numbers)."""
    judge = judge or digits_judge()
    return frechet_distance(judge.features(generated), judge.features(real))


def fid_report(generated: np.ndarray, test: np.ndarray, train: np.ndarray, n: int = FID_SAMPLES, seed: int = 0,
               judge: DigitsJudge | None = None) -> dict[str, float]:
    """The FID for digits of ``generated`` against the test images, beside the two references:
    real vs real (train images against the same test images) and noise. Every set has the same
    size: ``n`` or the smallest set."""
    judge = judge or digits_judge()
    rng = np.random.default_rng(seed)
    n = min(n, len(generated), len(test), len(train))
    test, train = _take(test, n, rng), _take(train, n, rng)
    reference = judge.features(test)
    distance = lambda images: frechet_distance(judge.features(images), reference)  # noqa: E731
    return {
        "fid": distance(np.asarray(generated)[:n]),
        "fid_real_vs_real": distance(train),
        "fid_noise_baseline": distance(noise_images(n, test.shape[1:], seed)),
        "fid_samples": n,
    }


def digits_report(samples: np.ndarray, test: np.ndarray, seed: int = 0) -> dict:
    """For models of digits: :func:`fid_report` (the digits train split is the real-vs-real
    reference) and the samples' diversity, with the classes the classifier sees in them."""
    from ..data.generative import digits_splits

    judge = digits_judge()
    train = digits_splits(test.shape[1:3]).train.x
    out = fid_report(samples, test, train, seed=seed, judge=judge)
    out.update(diversity_report(samples, test, judge.labels(samples), n_classes=10))
    return out


def _take(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(images) <= n:
        return np.asarray(images)
    return np.asarray(images)[np.sort(rng.choice(len(images), n, replace=False))]


def label_accuracy(images: np.ndarray, requested: np.ndarray, judge: DigitsJudge | None = None) -> float:
    """Share of images the digits classifier labels as the requested digit."""
    judge = judge or digits_judge()
    return float(np.mean(judge.labels(images) == np.asarray(requested)))


def diversity(images: np.ndarray, pairs: int = 2000, seed: int = 0) -> float:
    """Mean RMS difference (0-1 scale) between random pairs of distinct images: near 0 when a
    generator collapses to a few outputs."""
    x = np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0
    if len(x) < 2:
        raise DataError(f"Diversity needs at least 2 images. Received {len(x)}.")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), pairs)
    j = (i + rng.integers(1, len(x), pairs)) % len(x)  # never the same image
    return float(np.mean(np.sqrt(np.mean((x[i] - x[j]) ** 2, axis=1))))


def diversity_report(generated: np.ndarray, real: np.ndarray, labels: np.ndarray | None = None,
                     n_classes: int | None = None) -> dict:
    """Diversity of samples against real images, and (with classifier labels) how many classes
    the samples cover. ``mode_collapse`` is True when samples are less than half as diverse as
    real images, or cover fewer than half of the classes."""
    ours, theirs = diversity(generated), diversity(real)
    out = {"diversity": ours, "diversity_real": theirs, "diversity_ratio": ours / max(theirs, 1e-12)}
    collapsed = out["diversity_ratio"] < 0.5
    if labels is not None and n_classes:
        counts = np.bincount(np.asarray(labels), minlength=n_classes) / len(labels)
        nonzero = counts[counts > 0]
        out["distinct_labels"] = int(len(nonzero))
        out["label_entropy"] = float(-(nonzero * np.log(nonzero)).sum() / np.log(n_classes))
        collapsed = collapsed or len(nonzero) < n_classes / 2
    out["mode_collapse"] = bool(collapsed)
    return out


def within_class_diversity(samples: np.ndarray, sample_labels: np.ndarray, real: np.ndarray,
                           real_labels: np.ndarray) -> float:
    """Mean over classes of (diversity of the samples of a class / diversity of its real images):
    a conditional generator that draws one image per label scores near 0 even when its labels
    differ."""
    ratios = []
    for label in np.unique(sample_labels):
        ours, theirs = samples[sample_labels == label], real[real_labels == label]
        if len(ours) >= 2 and len(theirs) >= 2:
            ratios.append(diversity(ours, pairs=500) / max(diversity(theirs, pairs=500), 1e-12))
    if not ratios:
        raise DataError("Within-class diversity needs at least 2 samples and 2 real images of some class.")
    return float(np.mean(ratios))


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    """Mean PSNR in dB of raw-pixel images (on the 0-1 scale, peak 1); identical images count 100 dB."""
    import tensorflow as tf

    a, b = (tf.convert_to_tensor(np.asarray(v, np.float32) / 255.0) for v in (clean, other))
    return float(tf.reduce_mean(tf.minimum(tf.image.psnr(a, b, max_val=1.0), MAX_PSNR)))


def ssim(clean: np.ndarray, other: np.ndarray) -> float:
    """Mean SSIM of raw-pixel images (Gaussian window of up to 11 pixels)."""
    import tensorflow as tf

    a, b = (tf.convert_to_tensor(np.asarray(v, np.float32) / 255.0) for v in (clean, other))
    size = int(min(11, a.shape[1], a.shape[2]))
    return float(tf.reduce_mean(tf.image.ssim(a, b, max_val=1.0, filter_size=size)))


def restoration_report(clean: np.ndarray, noisy: np.ndarray, restored: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of the noisy and of the restored images against the clean ones, and the gains."""
    out = {
        "psnr_noisy": psnr(clean, noisy),
        "psnr_denoised": psnr(clean, restored),
        "ssim_noisy": ssim(clean, noisy),
        "ssim_denoised": ssim(clean, restored),
    }
    out["psnr_gain_db"] = out["psnr_denoised"] - out["psnr_noisy"]
    out["ssim_gain"] = out["ssim_denoised"] - out["ssim_noisy"]
    return out
