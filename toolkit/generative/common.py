"""What the three generative tasks share: configuration checks, data, latent sampling, image
grids, the sample-grid callback and the TFLite export's parity check."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..base import ExportPlan, Task, target_index
from ..config import (RecipeOption, check_fraction, check_positive, config_and_options, out_option, test_size_option,
                      verbose_option)
from ..data.generative import UNLABELLED, data_spec, image_splits, reload_splits, resolve_images
from ..data.images import ImageData, Splits, image_batch, split_indices
from ..errors import DataError, ExportError
from ..plotting import training_curves_png
from ..storage import atomic_write, atomic_write_bytes

PARITY_SAMPLES = 256
BACKGROUND_FILE = "background.npz"
BACKGROUND_SAMPLES = 32


# ---------------------------------------------------------------------- config checks


def check_common(config: Any, downsamplings: int = 2) -> None:
    """Validate (and normalise) the fields every generative config has."""
    size = config.image_size
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    step = 2**downsamplings
    if len(size) != 2 or min(size) < 8 or any(s % step for s in size):
        raise ValueError(f"image_size must be (height, width) with sides >= 8 divisible by {step}. Received {size}.")
    object.__setattr__(config, "image_size", size)
    if config.channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None (from the data). Received {config.channels!r}.")
    check_positive(config, "epochs", "batch_size", "learning_rate")
    if getattr(config, "validation_split", None) is not None:  # a GAN has none
        check_fraction(config, "validation_split")




# ---------------------------------------------------------------------- sampling


def check_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise DataError(f"Expected a number of samples n >= 1. Received n={n!r}.")
    if n > 10_000:
        raise DataError(f"Expected at most 10000 samples at once. Received n={n}. Generate in batches.")
    return int(n)


def latent_batch(n: int, latent_dim: int, seed: int | None = None) -> np.ndarray:
    """``n`` latent vectors drawn from the standard normal N(0, I), float32 (n, latent_dim)."""
    return np.random.default_rng(seed).standard_normal((check_count(n), latent_dim)).astype(np.float32)


def label_ids(labels: Any, n: int, class_names: Sequence[str]) -> np.ndarray:
    """Class ids (int32, shape (n,)) from a label name or id, a list of them, or None (0, 1, 2, ...
    in turn)."""
    names = list(class_names)
    if labels is None:
        return (np.arange(n) % len(names)).astype(np.int32)
    values = [labels] * n if np.ndim(labels) == 0 else list(np.asarray(labels).ravel())
    if len(values) != n:
        raise DataError(f"Expected one label per sample: {n}. Received {len(values)} labels.")
    return np.asarray([target_index(value, names, what="label") for value in values], dtype=np.int32)


def latent_input(z: Any, latent_dim: int) -> np.ndarray:
    """One latent vector (latent_dim,) or a batch (N, latent_dim) as float32 (N, latent_dim)."""
    arr = np.asarray(z, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != latent_dim or len(arr) == 0:
        raise DataError(f"Expected latent vectors of shape ({latent_dim},) or (N, {latent_dim}). "
                        f"Received shape={np.shape(z)}.")
    if not np.all(np.isfinite(arr)):
        raise DataError("The latent vectors contain NaN or infinite values.")
    return arr


# ---------------------------------------------------------------------- grids and files


def image_grid(images: np.ndarray, cols: int | None = None, width: int = 512, pad: int = 1) -> np.ndarray:
    """Raw-pixel images (N, H, W, C) tiled into one uint8 RGB picture about ``width`` pixels wide
    (nearest-neighbour upscaling; a grey line between the tiles)."""
    x = np.clip(np.round(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)
    if x.ndim == 3:
        x = x[None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    n, h, w, _ = x.shape
    cols = int(cols or math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 96, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = x[k]
    scale = max(1, width // grid.shape[1])
    return np.kron(grid, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else grid


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_images(images: np.ndarray, path: str | os.PathLike, cols: int | None = None) -> Path:
    """Write images: ``.npy`` (the raw float32 pixels, N x H x W x C) or ``.png`` / ``.jpg``
    (one image as itself, several as a grid)."""
    path = Path(path)
    suffix = path.suffix.lower()
    images = np.asarray(images, dtype=np.float32)
    if suffix == ".npy":
        return atomic_write(path, lambda tmp: np.save(tmp, images))
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise DataError(f"Expected an output file ending in .png, .jpg or .npy. Received {str(path)!r}.")
    if len(images) == 1:
        picture = np.clip(np.round(images[0]), 0, 255).astype(np.uint8)
        picture = picture[..., 0] if picture.shape[-1] == 1 else picture
    else:
        picture = image_grid(images, cols)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG" if suffix != ".png" else "PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def sample_grid_callback(render, every: int, directory: str | os.PathLike | None, store: dict):
    """A Keras callback that renders a sample grid (``render() -> uint8 image``) after every
    ``every`` epochs and the last one: the PNG goes into ``store`` (epoch -> bytes) and, when
    ``directory`` is given, to ``directory/samples_epoch_NNN.png`` at once."""
    import keras

    class SampleGrid(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            last = epoch + 1 == self.params.get("epochs")
            if (epoch + 1) % every and not last:
                return
            data = png_bytes(render())
            store[epoch + 1] = data
            if directory is not None:
                atomic_write_bytes(Path(directory) / f"samples_epoch_{epoch + 1:03d}.png", data)

    return SampleGrid()


# ---------------------------------------------------------------------- the task base


class GenerativeTask(Task):
    """Data, card fields, save/load of the extras and TFLite export shared by the three tasks."""

    quantizations = ("float32", "float16", "dynamic")
    refused_quantizations = {"int8": "its outputs are images whose quality int8 would cut, and the float16 file "
                                     "is already half the size; choose float16 or dynamic"}
    runner = "toolkit.generative.runner:TFLiteImageModel"
    recipe_options = (
        RecipeOption("data", "'digits' (8x8, upsampled to --image-size), a folder of images (or one subfolder per "
                     "class)", required=True),
        out_option(),
        test_size_option("share of a folder held out for evaluation"),
        verbose_option(0),
    )

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, **options: Any) -> dict:
        """Fit on ``data`` (held-out test split), evaluate on the test split, save to ``out``;
        returns {out, epochs, seconds, metrics}."""
        config, opts = config_and_options(cls.config_class, cls.recipe_options, options)
        model = cls(config)
        splits = image_splits(opts["data"], config.image_size, config.channels, test_size=opts["test_size"], seed=42)
        model.fit(splits, verbose=opts["verbose"])
        model.metrics_ = {"test_" + k: v for k, v in model.evaluate(splits).items()}
        model.command_ = command
        directory = model.save(out)
        return {"out": str(directory), "epochs": model.card()["training"]["epochs_run"],
                "seconds": model.train_seconds_, "metrics": model.metrics_}

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.input_shape_: tuple[int, int, int] | None = None
        self.class_names_: list[str] = []
        self.input_meta_: dict = {}
        self.background_: np.ndarray | None = None
        self.train_seconds_: float | None = None

    # ------------------------------------------------------------------ data
    def _training_data(self, data: Any) -> ImageData:
        cfg = self.config
        train = resolve_images(data, "train", cfg.image_size, cfg.channels)
        self.input_shape_ = tuple(int(d) for d in train.x.shape[1:])
        self.class_names_ = [] if train.class_names == [UNLABELLED] else list(train.class_names)
        self.input_meta_ = {k: v for k, v in train.meta.items() if k == "polarity"}
        self.data_spec_ = data_spec(data, cfg.image_size)
        rng = np.random.default_rng(cfg.seed)
        pick = np.sort(rng.choice(len(train), min(BACKGROUND_SAMPLES, len(train)), replace=False))
        self.background_ = np.round(train.x[pick]).astype(np.uint8)
        self.metrics_, self.tflite_, self.directory_ = {}, [], None
        return train

    def _training_split(self, data: Any, validation_data: Any) -> tuple[ImageData, ImageData]:
        """(train, validation): ``validation_data``, or ``validation_split`` of ``data`` held out."""
        train = self._training_data(data)
        if validation_data is not None:
            return train, self._validation_data(validation_data)
        if len(train) < 10:
            raise DataError(f"Expected at least 10 images to train a {type(self).__name__}. Received {len(train)}.")
        rest, held = split_indices(train.y, self.config.validation_split, self.config.seed)
        return train.subset(rest), train.subset(held)

    def _finish_fit(self, history, start: float) -> None:
        import time

        self.train_seconds_ = round(time.perf_counter() - start, 1)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    def _test_data(self, data: Any) -> ImageData:
        """``data``'s test part (digits, Splits) or all of it, at the model's size and channels."""
        self._check_fitted()
        return self._validation_data(data)

    def _validation_data(self, data: Any) -> ImageData:
        return resolve_images(data, "test", self.input_shape_[:2], self.input_shape_[-1])

    def reload_data(self) -> Splits | None:
        """The train/test splits recorded in the card (digits, or a folder still there), else None."""
        if self.input_shape_ is None:
            return None
        return reload_splits(self.data_spec_, self.input_shape_[:2], self.input_shape_[-1])

    def _is_digits(self) -> bool:
        return (self.data_spec_ or {}).get("source") == "digits"

    def model_images(self, x: Any) -> np.ndarray:
        """Raw images of any size and 1/3 channels as the model's (N, H, W, C) input."""
        self._check_fitted()
        height, width, channels = self.input_shape_
        return image_batch(x, channels=channels, image_size=(height, width))

    # ------------------------------------------------------------------ card / files
    def _image_card(self) -> dict:
        height, width, channels = self.input_shape_
        return {
            "shape": [height, width, channels],
            "dtype": "float32",
            "range": [0, 255],
            "layout": "NHWC",
            **self.input_meta_,
        }

    def _card_extra(self) -> dict:
        out = {"labels": list(self.class_names_), "image": self._image_card()}
        out["training"] = {"seconds": self.train_seconds_,
                           "epochs_run": len(next(iter((self.history_ or {"": []}).values())))}
        return out

    def _save_extra(self, directory: Path) -> None:
        if self.background_ is not None:
            np.savez_compressed(directory / BACKGROUND_FILE, x=self.background_)
        if self.history_:
            (directory / "training_curves.png").write_bytes(training_curves_png(self.history_, panels=None))

    def _load_extra(self, directory: Path, card: dict) -> None:
        self.class_names_ = list(card.get("labels") or [])
        self.input_shape_ = tuple(int(d) for d in card["image"]["shape"])
        self.input_meta_ = {k: v for k, v in card["image"].items() if k == "polarity"}
        self.train_seconds_ = (card.get("training") or {}).get("seconds")
        background = directory / BACKGROUND_FILE
        if background.is_file():
            with np.load(background) as npz:
                self.background_ = npz["x"]

    # ------------------------------------------------------------------ export
    def _image_export_plan(self, model, kind: str, inputs: dict[str, np.ndarray], description: dict,
                           extra=None) -> ExportPlan:
        """The plan of exporting ``model`` (the decoder, generator or denoiser), checked against
        Keras on ``inputs`` (named arrays, one row per check sample); ``extra(runner)`` adds numbers."""
        check = {"kind": kind, "inputs": inputs, "description": description, "extra": extra}
        return ExportPlan(model, check=check, sample={k: v[:1] for k, v in inputs.items()})

    def _export_checks(self, runner, plan: ExportPlan) -> dict:
        """The largest and mean pixel error of the file against Keras (0-1 scale)."""
        check = plan.check
        description, inputs = check["description"], check["inputs"]
        names = [spec["name"] for spec in description["inputs"]]
        if sorted(runner.input_names) != sorted(names):
            raise ExportError(f"The exported file's inputs {runner.input_names} are not the model's {names}.")
        ordered = [inputs[name] for name in names]  # a few hundred rows: one call
        keras_out = np.asarray(plan.model(ordered if len(ordered) > 1 else ordered[0], training=False))
        error = np.abs(runner.run(**inputs).astype(np.float64) - keras_out) / 255.0
        return {
            "kind": check["kind"],
            **description,
            "max_abs_pixel_error": float(error.max()),
            "mean_abs_pixel_error": float(error.mean()),
            "n_check": int(len(ordered[0])),
            **(check["extra"](runner) if check["extra"] else {}),
        }
