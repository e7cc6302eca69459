"""Image data: the built-in digits set, image folders, numpy arrays, and their splits.

All images are handed to models as float32 NHWC arrays of *raw pixels* in [0, 255]; resizing
and rescaling to what a backbone wants happen inside the model.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
MIN_IMAGE_SIDE = 8
MAX_IMAGE_PIXELS = 40_000_000
BUILTIN_IMAGE_SETS = ("digits",)
DIGITS_SPEC = {"source": "digits", "test_size": 0.2, "seed": 42}


@dataclasses.dataclass
class ImageData:
    """A labelled set of images: ``x`` is (N, H, W, C) float32 raw pixels, ``y`` int class ids."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    files: list[str] | None = None
    meta: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> "ImageData":
        files = [self.files[i] for i in index] if self.files is not None else None
        return ImageData(self.x[index], self.y[index], list(self.class_names), files, dict(self.meta))


@dataclasses.dataclass
class Splits:
    """Train and test parts of one data source, and how to make them again (``spec``)."""

    train: ImageData
    test: ImageData
    spec: dict

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


# --------------------------------------------------------------------------- built-in sets


def load_digits(test_size: float = 0.2, random_state: int = 42) -> Splits:
    """scikit-learn's 8x8 digits as raw pixels (0-16 scaled by 255/16), split 80/20 stratified."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images.astype("float32") * (255.0 / 16.0))[..., None]
    y = bunch.target.astype("int64")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=random_state, stratify=y)
    names = [str(i) for i in range(10)]
    meta = {"polarity": "light_on_dark", "source": "digits", "augment": "shift"}
    spec = {**DIGITS_SPEC, "test_size": test_size, "seed": random_state}
    return Splits(ImageData(x_tr, y_tr, names, meta=meta), ImageData(x_te, y_te, names, meta=dict(meta)), spec)


# --------------------------------------------------------------------------- reading files


#: At most this many images are decoded at once in the whole process (every caller of
#: :func:`read_image`: CLI, apps, loaders), so concurrent uploads cannot add up their peaks.
MAX_CONCURRENT_DECODES = 2
_DECODE_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
#: After a decode this large (pixels), freed heap pages are handed back to the system.
TRIM_AFTER_PIXELS = 4_000_000


def _give_memory_back() -> None:
    """Return freed heap pages to the system (glibc's ``malloc_trim``); a no-op elsewhere."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def image_size_of(source: str | os.PathLike | bytes) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        label = "the upload" if isinstance(source, bytes) else str(source)
        raise DataError(f"{label} is not a readable image ({type(exc).__name__}). Expected a PNG, JPEG, BMP or "
                        "GIF file.") from exc


def read_image(source: str | os.PathLike | bytes, name: str | None = None,
               target_size: Sequence[int] | None = None) -> np.ndarray:
    """Read one image file (or its bytes) into an (H, W, C) uint8 array with C = 1 or 3.

    RGBA and palette images are composited on white; EXIF rotation is applied; a GIF gives its
    first frame. Every failure is a :class:`DataError` naming the file.

    ``target_size`` (height, width) is the size the caller resizes to (a model's input): the
    image is then reduced while decoding (JPEG) or right after (other formats), by a whole
    factor that keeps both sides at least as large as the target, so a camera photo for a
    224x224 model never stays in memory at full size. The header's size is checked before any
    pixel is decoded (at most :data:`MAX_IMAGE_PIXELS`, after JPEG's reduction); at most
    :data:`MAX_CONCURRENT_DECODES` images are decoded at once in the process, and a large
    decode gives its memory back to the system.
    """
    from PIL import Image, UnidentifiedImageError

    label = name or (str(source) if not isinstance(source, bytes) else "the upload")
    if isinstance(source, bytes):
        if len(source) == 0:
            raise DataError(f"{label} is empty (0 bytes). Expected a PNG, JPEG, BMP or GIF image.")
        opened: Any = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"Image file not found: {label}. Check the path.")
        if path.is_dir():
            raise DataError(f"Expected an image file. Received a folder: {label}.")
        if path.stat().st_size == 0:
            raise DataError(f"{label} is empty (0 bytes). Expected a PNG, JPEG, BMP or GIF image.")
        opened = path
    target = None if target_size is None else (max(1, int(target_size[0])), max(1, int(target_size[1])))
    decoded = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _DECODE_SLOTS, Image.open(opened) as img:
                decoded = _check_header(img, label, target)
                arr = _decode(img, target)
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{label} is not a readable image. Expected a PNG, JPEG, BMP or GIF file."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{label} could not be decoded ({exc}). The file may be truncated or corrupt.") from exc
    finally:
        if decoded > TRIM_AFTER_PIXELS:
            _give_memory_back()
    if min(arr.shape[:2]) < MIN_IMAGE_SIDE:
        raise DataError(
            f"{label} is too small: {arr.shape[1]}x{arr.shape[0]} pixels. Expected at least "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}."
        )
    return arr


def _check_header(img, label: str, target: tuple[int, int] | None) -> int:
    """The pixels a decode of ``img`` will hold (JPEG reduced while decoding by ``draft``);
    a DataError before decoding when that is over :data:`MAX_IMAGE_PIXELS`."""
    width, height = img.size
    if img.format == "JPEG":
        if target is not None:  # the smallest 1/2, 1/4, 1/8 scale still covering the target
            img.draft(img.mode, (min(width, target[1]), min(height, target[0])))
        elif width * height > MAX_IMAGE_PIXELS:  # a camera's 50-megapixel JPEG at 1/2, 1/4 or 1/8 scale
            scale = int(np.ceil(np.sqrt(width * height / MAX_IMAGE_PIXELS)))
            img.draft(img.mode, (width // scale, height // scale))
        width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{label} is too large: {width}x{height} pixels. Expected at most "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels. Downscale it first."
        )
    return width * height


def _decode(img, target: tuple[int, int] | None) -> np.ndarray:
    """Decode the first frame, reduce it toward ``target``, apply EXIF rotation and convert to
    L or RGB, dropping each larger intermediate as soon as the next exists."""
    from PIL import Image

    img.seek(0)
    img.load()
    turn = _EXIF_TURNS.get(img.getexif().get(0x0112, 1))  # read before reduce(), which drops the EXIF
    if img.mode in ("1", "P", "PA", "I;16", "I;16B", "I;16L", "CMYK", "YCbCr", "LAB", "HSV"):
        img = _convert(img)  # Image.reduce needs L, LA, RGB(A), I or F
    if target is not None:
        height, width = target if turn not in _SWAPS else target[::-1]  # the target is upright
        factor = min(img.size[0] // width, img.size[1] // height)
        if factor >= 2:
            img = img.reduce(factor)
    if turn is not None:
        img = img.transpose(getattr(Image.Transpose, turn))
    img = _convert(img)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


#: EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_EXIF_TURNS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
               7: "TRANSVERSE", 8: "ROTATE_90"}
_SWAPS = ("TRANSPOSE", "ROTATE_270", "TRANSVERSE", "ROTATE_90")


def _convert(img):
    """L or RGB (transparency composited on white)."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("1", "I", "F"):
        return img.convert("L")
    if img.mode == "I;16":
        return img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize an (H, W, C) array to ``size`` = (height, width): area averaging when shrinking."""
    import cv2

    height, width = int(size[0]), int(size[1])
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] > height or image.shape[1] > width
    out = cv2.resize(
        np.ascontiguousarray(image, dtype=np.float32),
        (width, height),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    if out.ndim == 2:
        out = out[..., None]
    return out


def _check_channels(image: np.ndarray, name: str) -> None:
    if image.shape[-1] not in (1, 3):
        raise DataError(
            f"Expected an image with 1 or 3 channels. Received: shape={tuple(image.shape)} for {name}. "
            "Convert it to RGB (or grayscale) first."
        )


def convert_channels(image: np.ndarray, channels: int, name: str = "the image") -> np.ndarray:
    """Convert an (H, W, C) array between 1 and 3 channels; 4 channels is an error."""
    _check_channels(image, name)
    have = image.shape[-1]
    if have == channels:
        return image
    if channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return (image.astype(np.float32) @ weights)[..., None]
    return np.repeat(image, 3, axis=-1)


# --------------------------------------------------------------------------- folders


def _class_folders(root: Path) -> list[Path]:
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))),
        key=lambda d: d.name,
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (f for f in folder.rglob("*") if f.is_file() and not any(p.startswith(".") for p in f.relative_to(folder).parts)),
        key=lambda f: str(f),
    )


def load_image_folder(
    path: str | os.PathLike,
    image_size: Sequence[int] = (96, 96),
    channels: int = 3,
    class_names: Sequence[str] | None = None,
) -> ImageData:
    """Load ``path/<class>/<image>`` into memory, resized to ``image_size`` with ``channels``.

    ``class_names`` fixes the label order (for evaluating a trained model on another folder);
    the folder may then hold a subset of those classes.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"Data folder not found: {str(root)!r}. Expected a folder with one subfolder per class.")
    if not root.is_dir():
        raise DataError(f"Expected a folder with one subfolder per class. Received a file: {str(root)!r}.")
    folders = _class_folders(root)
    if not folders:
        raise DataError(
            f"{str(root)!r} has no class subfolders. Expected one subfolder per class, e.g. "
            f"{root}/cat/*.jpg and {root}/dog/*.jpg."
        )
    found = [d.name for d in folders]
    if class_names is None:
        if len(found) < 2:
            raise DataError(
                f"{str(root)!r} has one class ({found[0]!r}). A classifier needs at least 2 class subfolders."
            )
        names = found
    else:
        names = list(class_names)
        unknown = sorted(set(found) - set(names))
        if unknown:
            raise DataError(
                f"{str(root)!r} has classes the model does not know: {unknown}. The model's classes are {names}."
            )
    xs, ys, files = [], [], []
    for folder in folders:
        images = _image_files(folder)
        if not images:
            raise DataError(f"Class folder {str(folder)!r} is empty. Add images or remove the folder.")
        for f in images:
            if f.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    f"{str(f)!r} is not an image file. Expected {', '.join(IMAGE_EXTENSIONS)}; "
                    "remove the file or move it out of the data folder."
                )
            arr = convert_channels(read_image(f), channels, name=str(f))
            xs.append(resize_image(arr, image_size).astype(np.float32))
            ys.append(names.index(folder.name))
            files.append(str(f))
    x = np.stack(xs).astype(np.float32)
    meta = {"source": str(root.resolve()), "augment": "photos"}
    return ImageData(x, np.asarray(ys, dtype=np.int64), names, files, meta)


# --------------------------------------------------------------------------- arrays


def image_batch(images: Any, channels: int | None = None, image_size: Sequence[int] | None = None) -> np.ndarray:
    """Turn one image or a batch (arrays, PIL images or file paths) into float32 NHWC raw pixels.

    With ``channels``/``image_size`` given (the model's input), images are converted and
    resized to fit; values must lie in [0, 255].
    """
    if isinstance(images, (str, os.PathLike, bytes)):
        images = [images]
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise DataError("Received an empty list of images. Pass at least one image.")
        if all(isinstance(i, (str, os.PathLike, bytes)) for i in images):
            arrays = [read_image(i, target_size=image_size) for i in images]  # reduced while decoding
        else:
            arrays = [_as_single_image(np.asarray(i), f"image {k}") for k, i in enumerate(images)]
        if channels is None or image_size is None:
            shapes = {a.shape for a in arrays}
            if len(shapes) > 1:
                raise DataError(
                    f"Expected images of one shape. Received shapes {sorted(shapes)}. Resize them to one size "
                    "(an image folder does this for you)."
                )
        batch = [_fit(a, channels, image_size, f"image {k}") for k, a in enumerate(arrays)]
        return np.stack(batch).astype(np.float32)
    if hasattr(images, "convert") and hasattr(images, "size"):  # a PIL image
        images = np.asarray(images)
    arr = np.asarray(images)
    if arr.dtype == object:
        raise DataError("Expected images of one shape. Received a ragged array; pass a list of arrays instead.")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)):
        return _fit(_as_single_image(arr, "the image"), channels, image_size, "the image")[None].astype(np.float32)
    if arr.ndim == 3:  # a batch of grayscale images
        arr = arr[..., None]
    if arr.ndim != 4:
        raise DataError(
            f"Expected one image (H, W) / (H, W, C) or a batch (N, H, W, C). Received shape={arr.shape}."
        )
    _check_values(arr, "the images")
    if arr.shape[0] == 0:
        raise DataError("Received an empty batch of images. Pass at least one image.")
    if channels is None and image_size is None:
        _check_channels(arr, "the images")
        return arr.astype(np.float32)
    return np.stack([_fit(a, channels, image_size, f"image {k}") for k, a in enumerate(arr)]).astype(np.float32)


def _as_single_image(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise DataError(f"Expected an image of shape (H, W) or (H, W, C). Received shape={arr.shape} for {name}.")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    _check_values(arr, name)
    return arr


def _check_values(arr: np.ndarray, name: str) -> None:
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"Expected numeric pixel values. Received dtype={arr.dtype} for {name}.")
    if arr.size == 0:
        raise DataError(f"Received an empty image (shape={arr.shape}) for {name}.")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values. Expected raw pixels in [0, 255].")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -0.01 or hi > 255.01:  # tolerate float round-off of computed images
        raise DataError(
            f"Expected raw pixel values in [0, 255]. Received values in [{lo:g}, {hi:g}] for {name}. "
            "Pass unnormalised pixels: the model rescales them itself."
        )
    if np.issubdtype(arr.dtype, np.floating) and 0 < hi <= 1.0:
        warnings.warn(
            f"{name} has values in [0, 1]; the model expects raw pixels in [0, 255]. Multiply by 255 if "
            "these are normalised images.",
            stacklevel=4,
        )


def _fit(arr: np.ndarray, channels: int | None, image_size: Sequence[int] | None, name: str) -> np.ndarray:
    arr = convert_channels(arr, channels or arr.shape[-1], name)
    if image_size is not None:
        limit = min(MIN_IMAGE_SIDE, *image_size)
        if min(arr.shape[:2]) < limit:
            raise DataError(
                f"{name} is too small: {arr.shape[1]}x{arr.shape[0]} pixels. Expected at least {limit}x{limit}."
            )
        arr = resize_image(arr, image_size)
    return np.clip(arr, 0, 255).astype(np.float32)


def labelled_arrays(x: Any, y: Any, class_names: Sequence[str] | None = None) -> ImageData:
    """Validate ``(x, y)`` arrays and map labels (ints or strings) to class ids."""
    if isinstance(x, (list, tuple)) and len(x) and not isinstance(x[0], (str, os.PathLike)):
        shapes = [np.shape(i) for i in x]
        if len(set(shapes)) > 1:
            first = shapes[0]
            bad = next(k for k, s in enumerate(shapes) if s != first)
            raise DataError(
                f"Expected images of one shape. Image 0 has shape {first} but image {bad} has shape "
                f"{shapes[bad]}. Resize them to one size first."
            )
    x = image_batch(x)
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"Expected labels of shape (N,). Received shape={y.shape}. Pass class ids or names, not one-hot.")
    if len(y) != len(x):
        raise DataError(f"Expected one label per image. Received {len(x)} images and {len(y)} labels.")
    if y.dtype.kind in "iu":
        if y.min() < 0:
            raise DataError(f"Expected class ids >= 0. Received {int(y.min())}.")
        names = list(class_names) if class_names is not None else [str(i) for i in range(int(y.max()) + 1)]
        if int(y.max()) >= len(names):
            raise DataError(f"Label {int(y.max())} is out of range for {len(names)} classes {names}.")
        ids = y.astype(np.int64)
    else:
        labels = y.astype(str)
        names = list(class_names) if class_names is not None else sorted(set(labels.tolist()))
        unknown = sorted(set(labels.tolist()) - set(names))
        if unknown:
            raise DataError(f"Unknown labels {unknown[:10]}. Expected one of {names}.")
        ids = np.array([names.index(v) for v in labels], dtype=np.int64)
    return ImageData(x, ids, names)


def resolve_image_data(
    data: Any,
    role: str = "train",
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
    class_names: Sequence[str] | None = None,
) -> ImageData:
    """Turn any accepted data form into :class:`ImageData`.

    ``"digits"`` gives its train split for ``role="train"`` and its test split for
    ``role="test"``; a folder or ``(x, y)`` arrays are used whole.
    """
    if isinstance(data, ImageData):
        result = data
    elif isinstance(data, Splits):
        result = data.train if role == "train" else data.test
    elif isinstance(data, str) and data in BUILTIN_IMAGE_SETS:
        splits = load_digits()
        result = splits.train if role == "train" else splits.test
    elif isinstance(data, (str, os.PathLike)):
        if channels is None:
            channels = 3
        result = load_image_folder(data, image_size or (96, 96), channels, class_names)
    elif isinstance(data, tuple) and len(data) == 2:
        result = labelled_arrays(data[0], data[1], class_names)
    else:
        raise DataError(
            "Expected image data as 'digits', a folder path with one subfolder per class, or a tuple "
            f"(images, labels). Received {type(data).__name__}."
        )
    if class_names is not None and list(result.class_names) != list(class_names):
        # Re-map labels by name onto the model's class order.
        unknown = sorted(set(result.class_names) - set(class_names))
        if unknown:
            raise DataError(f"The data has classes the model does not know: {unknown}. Model classes: {list(class_names)}.")
        mapping = np.array([list(class_names).index(n) for n in result.class_names])
        result = ImageData(result.x, mapping[result.y], list(class_names), result.files, result.meta)
    if channels is not None or image_size is not None:
        if result.x.shape[-1] != (channels or result.x.shape[-1]) or (
            image_size is not None and tuple(result.x.shape[1:3]) != tuple(image_size)
        ):
            x = image_batch(result.x, channels or result.x.shape[-1], image_size or result.x.shape[1:3])
            result = ImageData(x, result.y, result.class_names, result.files, result.meta)
    return result


def load_splits(
    source: Any,
    image_size: Sequence[int] = (96, 96),
    test_size: float = 0.2,
    seed: int = 42,
    test_data: Any = None,
) -> Splits:
    """Train/test splits of a source: digits' fixed split, or a stratified split of a folder."""
    if isinstance(source, str) and source in BUILTIN_IMAGE_SETS:
        check_builtin_split(source, test_size, test_data)
        return load_digits()
    full = resolve_image_data(source, "train", image_size=image_size if isinstance(source, (str, os.PathLike)) else None)
    spec: dict = {"source": str(Path(source).resolve()) if isinstance(source, (str, os.PathLike)) else "arrays"}
    if isinstance(source, (str, os.PathLike)):
        spec["image_size"] = list(image_size)
    if test_data is not None:
        test = resolve_image_data(test_data, "test", image_size=full.x.shape[1:3], channels=full.x.shape[-1],
                                  class_names=full.class_names)
        if isinstance(test_data, (str, os.PathLike)):
            spec["test_source"] = str(Path(test_data).resolve())
        return Splits(full, test, spec)
    train_idx, test_idx = split_indices(full.y, test_size, seed)
    spec.update({"test_size": test_size, "seed": seed})
    return Splits(full.subset(train_idx), full.subset(test_idx), spec)


def check_builtin_split(source: str, test_size: float | None, test_data: Any = None) -> None:
    """A built-in set keeps its fixed split (every model is compared on the same test images):
    a DataError when another ``test_size`` or a ``test_data`` is asked of it."""
    fixed = DIGITS_SPEC["test_size"]
    if test_data is not None:
        raise DataError(f"{source!r} has a fixed test split; a separate test set was also given. Drop --test-data "
                        "(or train on a folder of your own images).")
    if test_size is not None and not np.isclose(float(test_size), fixed):
        raise DataError(f"{source!r} has a fixed test split of {fixed:g} (its models are all compared on the same "
                        f"test images). Received test_size={test_size!r}. Drop --test-size, or train on a folder "
                        "to choose the split.")


def split_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (when every class has >= 2 samples) split of indices into (rest, held-out)."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise DataError(f"Expected a split fraction between 0 and 1. Received {fraction}.")
    index = np.arange(len(y))
    counts = np.bincount(y)
    n_held = int(np.ceil(fraction * len(y)))
    stratify = y if counts[counts > 0].min() >= 2 and n_held >= len(counts[counts > 0]) else None
    if stratify is None:
        warnings.warn(
            "Some classes have too few images for a stratified split; splitting at random. "
            "Add images so that every class has at least 2 per split.",
            stacklevel=3,
        )
    if len(y) < 2:
        raise DataError(f"Expected at least 2 images to split. Received {len(y)}.")
    rest, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(rest), np.sort(held)
