"""Image data for the generative models: digits upsampled to 16x16, image folders, numpy arrays.

Like everywhere in the toolkit, images enter and leave the models as float32 NHWC *raw pixels*
in [0, 255]; the models rescale to [0, 1] inside (their losses, the noise levels and the parity
errors are on that 0-1 scale).

- ``"digits"``: scikit-learn's 8x8 digits (the same stratified 80/20 split as vision, seed 42),
  upsampled to the model's ``image_size`` (default 16x16) with bilinear interpolation, one
  channel, light strokes on black. ``image_size=(32, 32)`` works the same.
- a folder: either one subfolder per class (labels, as for vision; one class is enough) or image
  files directly in it (no labels); every image is read, converted to the model's channels and
  resized (area averaging when shrinking, bilinear when enlarging).
- arrays: ``(N, H, W[, C])`` raw pixels (no labels), or a tuple ``(images, labels)``.

Bad data gets the same :class:`~toolkit.errors.DataError` messages as vision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .images import (
    BUILTIN_IMAGE_SETS,
    DIGITS_SPEC,
    IMAGE_EXTENSIONS,
    ImageData,
    Splits,
    check_builtin_split,
    convert_channels,
    image_batch,
    labelled_arrays,
    load_digits,
    load_image_folder,
    read_image,
    resize_image,
    split_indices,
)
from ..errors import DataError

DEFAULT_IMAGE_SIZE = (16, 16)
NOISE_TYPES = ("gaussian", "salt_and_pepper")
UNLABELLED = "images"  # the one class name of unlabelled data


def digits_splits(image_size: Sequence[int] = DEFAULT_IMAGE_SIZE) -> Splits:
    """The digits train/test split (vision's), upsampled to ``image_size``, raw pixels 0-255."""
    splits = load_digits()
    size = tuple(int(s) for s in image_size)
    parts = []
    for part in (splits.train, splits.test):
        x = image_batch(part.x, channels=1, image_size=size)
        parts.append(ImageData(x, part.y, part.class_names, meta=dict(part.meta)))
    return Splits(parts[0], parts[1], {**splits.spec, "image_size": list(size)})


def _is_builtin(data: Any) -> bool:
    return isinstance(data, str) and data in BUILTIN_IMAGE_SETS


def load_images(path: str | os.PathLike, image_size: Sequence[int], channels: int = 3) -> ImageData:
    """A folder of images: ``path/<class>/*`` (labelled) or ``path/*`` (unlabelled)."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"Data folder not found: {str(root)!r}. Expected a folder of images, or one subfolder "
                        "per class.")
    if not root.is_dir():
        raise DataError(f"Expected a folder of images. Received a file: {str(root)!r}.")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))
    if classes:
        return load_image_folder(root, image_size, channels, class_names=classes)
    files = sorted(f for f in root.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        raise DataError(f"{str(root)!r} is empty. Expected image files ({', '.join(IMAGE_EXTENSIONS)}) or one "
                        "subfolder of images per class.")
    images = []
    for f in files:
        if f.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"{str(f)!r} is not an image file. Expected {', '.join(IMAGE_EXTENSIONS)}; remove the "
                            "file or move it out of the data folder.")
        images.append(resize_image(convert_channels(read_image(f), channels, name=str(f)), image_size))
    x = np.clip(np.stack(images), 0, 255).astype(np.float32)
    return ImageData(x, np.zeros(len(x), np.int64), [UNLABELLED], [str(f) for f in files],
                     {"source": str(root.resolve())})


def resolve_images(data: Any, role: str = "train", image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
                   channels: int | None = None) -> ImageData:
    """Any accepted data form as :class:`ImageData` of raw pixels at ``image_size`` with ``channels``.

    ``"digits"`` and :class:`Splits` give their ``role`` part (``"train"`` or ``"test"``); a
    folder, arrays or ``(images, labels)`` are used whole. Unlabelled images get the one class
    ``"images"`` (label 0).
    """
    size = tuple(int(s) for s in image_size)
    if _is_builtin(data):
        splits = digits_splits(size)
        result = splits.train if role == "train" else splits.test
    elif isinstance(data, Splits):
        result = data.train if role == "train" else data.test
    elif isinstance(data, ImageData):
        result = data
    elif isinstance(data, (str, os.PathLike)):
        result = load_images(data, size, channels or 3)
    elif isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], (str, os.PathLike)):
        result = labelled_arrays(data[0], data[1])
    elif isinstance(data, (np.ndarray, list)) or hasattr(data, "__array__"):
        x = image_batch(data)
        result = ImageData(x, np.zeros(len(x), np.int64), [UNLABELLED])
    else:
        raise DataError(
            "Expected image data as 'digits', a folder of images (or one subfolder per class), an array of "
            f"images (N, H, W[, C]) or a tuple (images, labels). Received {type(data).__name__}."
        )
    channels = channels or result.x.shape[-1]
    if result.x.shape[-1] != channels or tuple(result.x.shape[1:3]) != size:
        x = image_batch(result.x, channels=channels, image_size=size)
        result = ImageData(x, result.y, result.class_names, result.files, result.meta)
    if len(result) == 0:
        raise DataError("Received no images. Pass at least one image.")
    return result


def image_splits(source: Any, image_size: Sequence[int] = DEFAULT_IMAGE_SIZE, channels: int | None = None,
                 test_size: float = 0.2, seed: int = 42) -> Splits:
    """Train and test parts of a source: digits' fixed split, else a (stratified) random split."""
    if _is_builtin(source):
        check_builtin_split(source, test_size)
        return digits_splits(image_size)
    if isinstance(source, Splits):
        return Splits(resolve_images(source, "train", image_size, channels),
                      resolve_images(source, "test", image_size, channels), dict(source.spec))
    full = resolve_images(source, "train", image_size, channels)
    train_idx, test_idx = split_indices(full.y, test_size, seed)
    spec = {"source": str(Path(source).resolve()) if isinstance(source, (str, os.PathLike)) else "arrays",
            "test_size": test_size, "seed": seed, "image_size": [int(s) for s in image_size]}
    return Splits(full.subset(train_idx), full.subset(test_idx), spec)


def data_spec(data: Any, image_size: Sequence[int]) -> dict:
    """How to make the data again (recorded in the card): digits, a folder, or arrays."""
    if isinstance(data, Splits):
        return dict(data.spec)
    if _is_builtin(data):
        return {**DIGITS_SPEC, "image_size": [int(s) for s in image_size]}
    if isinstance(data, (str, os.PathLike)):
        return {"source": str(Path(data).resolve()), "test_size": None, "image_size": [int(s) for s in image_size]}
    return {"source": "arrays"}


def reload_splits(spec: dict | None, image_size: Sequence[int], channels: int) -> Splits | None:
    """The splits a card's ``data`` names, made again; None for arrays or a folder that moved."""
    spec = spec or {}
    source = spec.get("source")
    if source == "digits":
        return digits_splits(image_size)
    if source and source != "arrays" and Path(source).is_dir() and spec.get("test_size"):
        return image_splits(source, image_size, channels, spec["test_size"], spec.get("seed", 42))
    return None


# --------------------------------------------------------------------------- noise


def check_noise(noise: float, noise_type: str) -> None:
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"Unknown noise type {noise_type!r}. Valid types: {list(NOISE_TYPES)}.")
    if not 0 <= noise <= (1 if noise_type == "salt_and_pepper" else 2):
        limit = "a share of pixels in [0, 1]" if noise_type == "salt_and_pepper" else "a sigma in [0, 2]"
        raise ValueError(f"noise for {noise_type} must be {limit} (on the 0-1 pixel scale). Received {noise!r}.")


def add_noise(images: np.ndarray, noise: float = 0.3, noise_type: str = "gaussian",
              seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Noisy copies of raw-pixel images (0-255), clipped to the pixel range.

    ``gaussian``: normal noise of standard deviation ``noise`` on the 0-1 scale (0.3 = 76.5
    levels). ``salt_and_pepper``: a share ``noise`` of the pixels set to black or white (half
    each; all channels of a pixel together).
    """
    check_noise(noise, noise_type)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x = np.asarray(images, dtype=np.float32)
    if noise_type == "gaussian":
        return np.clip(x + rng.normal(0.0, noise * 255.0, x.shape).astype(np.float32), 0, 255)
    hit = rng.random(x.shape[:-1]) < noise
    salt = rng.random(x.shape[:-1]) < 0.5
    out = x.copy()
    out[hit & salt] = 255.0
    out[hit & ~salt] = 0.0
    return out
