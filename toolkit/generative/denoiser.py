"""Denoising autoencoder: a small convolutional encoder-decoder with a skip connection that learns
to remove Gaussian or salt-and-pepper noise, measured by PSNR and SSIM before and after.

>>> den = Denoiser(DenoiserConfig(noise=0.3)).fit("digits")   # fresh noise on every batch
>>> den.evaluate("digits")           # PSNR / SSIM of noisy and denoised test images, and the gains
>>> den.predict(noisy_images)        # raw pixels in (any size; resized to the model's), clean out
>>> den.export("my_denoiser", quantization="float16")   # raw noisy pixels in, clean pixels out

Noise levels are on the 0-1 pixel scale: ``gaussian`` adds N(0, noise) (0.3 = 76.5 grey levels)
and clips; ``salt_and_pepper`` sets a share ``noise`` of the pixels to black or white.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from ..base import ExportPlan, register_task
from ..config import check_positive, setting, strategy_setting
from ..distributed import record_scaling
from ..data.generative import DEFAULT_IMAGE_SIZE, NOISE_TYPES, add_noise, check_noise
from ..errors import DataError
from ..explain import Explanation, overlay, to_display_rgb
from ..serving import traced
from .common import PARITY_SAMPLES, GenerativeTask, check_common

DENOISER_METHODS = ("residual",)


@dataclasses.dataclass(frozen=True)
class DenoiserConfig:
    """Settings of a :class:`Denoiser`.

    noise / noise_type: the corruption it learns to remove (0-1 scale; ``gaussian`` or
    ``salt_and_pepper``). image_size / channels: the model's input (digits: 16x16, one channel;
    folders: 3 channels unless channels=1). filters: channels of the two resolutions of the
    encoder-decoder. patience: early stopping on the validation loss (best weights restored).
    """

    noise: float = setting(0.3, "gaussian: sigma on the 0-1 pixel scale; salt_and_pepper: share of pixels",
                           tune=(0.05, 0.5))
    noise_type: str = setting("gaussian", "the corruption it learns to remove", choices=NOISE_TYPES)
    image_size: tuple[int, int] = setting(DEFAULT_IMAGE_SIZE, "height [width] the images are resized to")
    channels: int | None = setting(None, "1 (grayscale) or 3 (RGB); default: 1 for digits, 3 for folders",
                                   choices=(1, 3))
    filters: tuple[int, int] = setting((32, 64), "channels of the encoder-decoder's two resolutions")
    epochs: int = setting(40, "early stopping may end sooner", tune=(5, 100))
    batch_size: int = setting(32, "images per training step", tune=(8, 128))
    learning_rate: float = setting(2e-3, "Adam's learning rate", tune=(1e-4, 1e-2))
    patience: int = setting(6, "early-stopping patience in epochs", tune=(2, 20))
    validation_split: float = setting(0.1, "share of the training images for early stopping")
    seed: int = setting(0, "seeds the weights, the noise and the shuffling")
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        check_noise(self.noise, self.noise_type)
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        if len(self.filters) != 2 or min(self.filters) < 1:
            raise ValueError(f"filters must be two positive ints. Received {self.filters}.")
        check_common(self, downsamplings=1)
        check_positive(self, "patience")


def _build(cfg: DenoiserConfig, shape: tuple[int, int, int]):
    """(core on 0-1 images, model on raw pixels wrapping it)."""
    import keras
    from keras import layers

    f0, f1 = cfg.filters
    unit = keras.Input(shape, name="noisy")
    skip = layers.Conv2D(f0, 3, padding="same", activation="relu", name="conv_0")(unit)
    skip = layers.Conv2D(f0, 3, padding="same", activation="relu", name="conv_1")(skip)
    x = layers.Conv2D(f1, 3, strides=2, padding="same", activation="relu", name="down")(skip)
    x = layers.Conv2D(f1, 3, padding="same", activation="relu", name="conv_2")(x)
    x = layers.Conv2DTranspose(f0, 3, strides=2, padding="same", activation="relu", name="up")(x)
    x = layers.Concatenate(name="skip")([x, skip])
    x = layers.Conv2D(f0, 3, padding="same", activation="relu", name="conv_3")(x)
    clean = layers.Conv2D(shape[-1], 3, padding="same", activation="sigmoid", name="clean")(x)
    core = keras.Model(unit, clean, name="denoiser_core")

    pixels = keras.Input(shape, name="pixels")
    x = layers.Rescaling(1 / 255.0, name="rescale")(pixels)
    model = keras.Model(pixels, layers.Rescaling(255.0, name="to_pixels")(core(x)), name="denoiser")
    return core, model


def _noisy_batches(images: np.ndarray, cfg: DenoiserConfig, shuffle: bool):
    """A keras PyDataset of (noisy, clean) batches on the 0-1 scale; training draws fresh noise
    every epoch, validation the same noise every time."""
    import keras

    class NoisyBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0
            self.order = np.arange(len(images))

        def __len__(self):
            return math.ceil(len(images) / cfg.batch_size)

        def __getitem__(self, index):
            pick = self.order[index * cfg.batch_size : (index + 1) * cfg.batch_size]
            rng = np.random.default_rng([cfg.seed, self.epoch if shuffle else 0, index])
            clean = images[pick]
            return add_noise(clean, cfg.noise, cfg.noise_type, rng) / 255.0, clean / 255.0

        def on_epoch_end(self):
            if shuffle:
                self.epoch += 1
                self.order = np.random.default_rng([cfg.seed, self.epoch]).permutation(len(images))

    batches = NoisyBatches()
    if shuffle:
        batches.order = np.random.default_rng([cfg.seed, 0]).permutation(len(images))
    return batches


@register_task("denoiser")
class Denoiser(GenerativeTask):
    """Denoising autoencoder on images (see the module docstring)."""

    tags = frozenset({"image_to_image"})
    input_kind = "image"
    explain_methods = ("residual",)

    config_class = DenoiserConfig

    def __init__(self, config: DenoiserConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self._serve = None

    # ================================================================== fit
    def fit(self, data: Any, validation_data: Any = None, verbose: int = 0, callbacks: list | None = None,
            **overrides: Any) -> "Denoiser":
        """Train on clean images ``data`` (``"digits"``: its train split; a folder; images; Splits);
        noise of the configured kind is drawn afresh for every batch. Without ``validation_data``,
        ``validation_split`` of the images is held out for early stopping."""
        import keras
        import tensorflow as tf

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        train, val = self._training_split(data, validation_data)
        record_scaling(self, cfg.batch_size, cfg.learning_rate)  # checked and recorded in the card
        strategy = cfg.strategy or tf.distribute.get_strategy()
        with strategy.scope():
            core, self.model_ = _build(cfg, self.input_shape_)
            core.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="mse")
        self._serve = None
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
        reduce = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, cfg.patience // 2),
                                                   min_lr=cfg.learning_rate / 100)
        start = time.perf_counter()
        history = core.fit(_noisy_batches(train.x, cfg, True), validation_data=_noisy_batches(val.x, cfg, False),
                           epochs=cfg.epochs, callbacks=[stop, reduce, *(callbacks or [])], verbose=verbose)
        self._finish_fit(history, start)
        return self

    # ================================================================== predict
    def _denoise(self, batch: np.ndarray) -> np.ndarray:
        if self._serve is None:
            import tensorflow as tf

            self._serve = traced(self.model_, tf.TensorSpec((None, *self.input_shape_), tf.float32))
        return np.concatenate([self._serve(batch[i : i + 256]).numpy() for i in range(0, len(batch), 256)])

    def predict(self, x: Any) -> np.ndarray:
        """Clean images (raw pixels 0-255, (N, H, W, C) at the model's size) from noisy ones (raw
        pixels, one image or a batch, any size: resized to the model's input)."""
        return self._denoise(self.model_images(x))

    def add_noise(self, images: Any, noise: float | None = None, noise_type: str | None = None,
                  seed: int | None = 0) -> np.ndarray:
        """``images`` at the model's size with the configured (or the given) noise added."""
        cfg = self.config
        return add_noise(self.model_images(images), cfg.noise if noise is None else noise, noise_type or cfg.noise_type,
                         seed)

    # ================================================================== evaluate
    def evaluate(self, data: Any, noise: float | None = None, noise_type: str | None = None,
                 seed: int = 0) -> dict[str, float]:
        """Corrupt ``data``'s test part with the configured noise (or ``noise`` / ``noise_type``;
        a fixed ``seed``), denoise it, and report PSNR (dB) and SSIM of the noisy and the denoised
        images against the clean ones, and the gains."""
        from .metrics import restoration_report

        test = self._test_data(data)
        cfg = self.config
        noise = cfg.noise if noise is None else noise
        noise_type = noise_type or cfg.noise_type
        noisy = add_noise(test.x, noise, noise_type, seed)
        report = restoration_report(test.x, noisy, self._denoise(noisy))
        return {**report, "noise": noise, "noise_type": noise_type, "n_test": int(len(test))}

    # ================================================================== explain
    def explain(self, x: Any, method: str = "residual", target: Any = None, budget: int | None = None,
                seed: int = 0) -> Explanation:
        """What the model removed from image ``x``: ``attributions`` is the absolute difference
        between input and output (0-1 scale, (H, W)); ``image`` shows input | output | the removed
        part over the input."""
        if method not in DENOISER_METHODS:
            raise ValueError(f"Unknown explanation method {method!r} for a denoiser. Valid methods: "
                             f"{list(DENOISER_METHODS)}.")
        batch = self.model_images(x)
        if len(batch) != 1:
            raise DataError(f"explain() takes one image. Received a batch of {len(batch)}.")
        start = time.perf_counter()
        clean = self._denoise(batch)
        removed = np.abs(batch[0] - clean[0]).mean(axis=-1) / 255.0
        seconds = time.perf_counter() - start
        picture = np.concatenate([to_display_rgb(batch[0]), to_display_rgb(clean[0]), overlay(batch[0], removed)],
                                 axis=1)
        return Explanation(removed.astype(np.float32), "residual", "removed noise", seconds, picture, None,
                           extra={"mean_removed": float(removed.mean())})

    # ================================================================== save / load / export
    def _card_extra(self) -> dict:
        out = super()._card_extra()
        cfg = self.config
        out["noise"] = {"type": cfg.noise_type, "level": cfg.noise, "scale": "0-1 pixels"}
        out["input"] = {**self._image_card(), "description": "noisy raw pixels; the model rescales to 0-1 itself"}
        out["output"] = {"shape": list(self.input_shape_), "dtype": "float32", "range": [0, 255],
                         "description": "denoised image, raw pixels"}
        return out

    def _export_plan(self, data: Any, quantization: str, seed: int = 0) -> ExportPlan:
        """The denoiser (``pixels`` float32 (1, H, W, C) noisy raw pixels -> clean raw pixels), checked
        against Keras (0-1 scale) on up to 256 noisy test images of ``data`` (default: the training
        data's test split), with the file's PSNR on them."""
        from .metrics import psnr

        data = self.reload_data() if data is None else data
        if data is None:
            rng = np.random.default_rng(seed)
            clean = np.round(self.background_.astype(np.float32)) if self.background_ is not None else \
                rng.uniform(0, 255, (32, *self.input_shape_)).astype(np.float32)
        else:
            clean = self._test_data(data).x[:PARITY_SAMPLES]
        noisy = self.add_noise(clean, seed=seed)
        description = {
            "inputs": [{"name": "pixels", "shape": [1, *self.input_shape_], "dtype": "float32", "range": [0, 255],
                        "description": f"noisy raw pixels ({self.config.noise_type} noise, level "
                                       f"{self.config.noise})"}],
            "output": {"shape": [1, *self.input_shape_], "dtype": "float32", "range": [0, 255],
                       "description": "denoised image, raw pixels"},
        }
        quality = lambda lite: {"psnr_noisy": psnr(clean, noisy),  # noqa: E731
                                "psnr_denoised": psnr(clean, lite.run(pixels=noisy)), "noise": self.config.noise,
                                "noise_type": self.config.noise_type}
        return self._image_export_plan(self.model_, "denoiser", {"pixels": noisy}, description, extra=quality)
