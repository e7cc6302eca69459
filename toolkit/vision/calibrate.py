"""Calibration of an image classifier (``ImageClassifier.calibrate``): which held-out images,
which training images and which generated inputs :func:`toolkit.calibration.calibrate` sees."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..calibration import Calibration, calibrate, ood_images
from ..data.images import BUILTIN_IMAGE_SETS, ImageData, Splits, load_digits, resolve_image_data, split_indices
from ..errors import DataError


def validation_part(train: ImageData, fraction: float, seed: int) -> tuple[ImageData, ImageData]:
    """(rest, held-out) of a training split: the draw ``ImageClassifier.fit`` makes for early
    stopping when it gets no validation data (same fraction, same seed)."""
    rest, held = split_indices(train.y, fraction, seed)
    return train.subset(rest), train.subset(held)


def _resolve(task: Any, validation_data: Any, kept: np.ndarray | None) -> tuple[ImageData, np.ndarray | None]:
    """(held-out labelled images, training images for the pixel reference: ``kept`` or remade)."""
    height, width, channels = task.input_shape_
    if isinstance(validation_data, str) and validation_data in BUILTIN_IMAGE_SETS:
        validation_data = load_digits()  # its train split's held-out part; never its test split
    if validation_data is None:
        validation_data = task.reload_data()
        if validation_data is None:
            raise DataError("This model's card names no training data to remake its held-out split from. "
                            "Pass validation_data=... (held-out labelled images, e.g. a folder).")
    if isinstance(validation_data, Splits):
        train = resolve_image_data(validation_data.train, "train", (height, width), channels, task.class_names_)
        rest, held = validation_part(train, task.config.validation_split, task.config.seed)
        return held, rest.x
    held = resolve_image_data(validation_data, "test", (height, width), channels, task.class_names_)
    if kept is None:
        splits = task.reload_data()
        kept = None if splits is None else validation_part(
            resolve_image_data(splits.train, "train", (height, width), channels, task.class_names_),
            task.config.validation_split, task.config.seed)[0].x
    return held, kept


def generated_inputs(task: Any, seed: int = 0, n: int = 40) -> dict[str, list[np.ndarray]]:
    """The generated out-of-distribution kinds for ``task``: noise, flat colours, stripes and
    photos, plus upscaled digits unless it was trained on digits."""
    side = int(min(max(max(task.input_shape_[:2]), 32), 256))
    trained_on_digits = (task.data_spec_ or {}).get("source") == "digits"
    return ood_images(n=n, seed=seed, size=side, digits=not trained_on_digits)


def calibrate_classifier(task: Any, validation_data: Any = None, ood: Any = None, max_flagged: float = 0.05,
                         reference: np.ndarray | None = None) -> Calibration:
    """Temperature and "not sure" thresholds for a fitted :class:`ImageClassifier`.

    ``validation_data``: held-out labelled images, or :class:`Splits` (the held-out part of its
    training split that ``fit`` used for early stopping), or None (that part, remade from the
    data the card records). ``ood``: kind -> list of raw images, a list of raw images, or None
    (:func:`generated_inputs`). ``reference``: training images for the pixel distance and, where
    the model has a "pool" layer, the feature distance (grouped by the class the model predicts
    for them; default: the training split remade from the card). Never the test split: it stays
    for measuring.
    """
    held, reference = _resolve(task, validation_data, reference)
    if ood is None:
        ood = generated_inputs(task, seed=task.config.seed)
    elif not isinstance(ood, dict):
        ood = {"given": ood}
    prepared = {}
    for kind, images in ood.items():
        batch = task.prepare(images)
        prepared[kind] = (batch, *task.probabilities_and_features(batch))
    val_probs, val_features = task.probabilities_and_features(held.x)
    reference_features = None
    if reference is not None and val_features is not None:
        probs, features = task.probabilities_and_features(reference)
        reference_features = (features, probs.argmax(axis=-1))
    return calibrate(val_probs, held.y, held.x, reference, prepared, max_flagged=max_flagged,
                     val_features=val_features, reference_features=reference_features)
