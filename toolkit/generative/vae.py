"""Variational autoencoder: a convolutional encoder to a mean and log-variance, the
reparameterisation trick, a decoder; reconstruction + KL loss with an optional KL warm-up.

>>> vae = VAE(VAEConfig(latent_dim=8)).fit("digits")     # digits upsampled to 16x16
>>> vae.predict(images)              # deterministic reconstructions (the mean latent), raw pixels
>>> vae.generate(16, seed=0)         # new images from z ~ N(0, I)
>>> vae.interpolate(a, b, steps=8)   # decoded points on the line between two encodings
>>> vae.traverse(dim=0)              # one latent dimension swept from -3 to 3
>>> vae.explain(method="traversal")  # every dimension swept: a grid, and how much each one matters
>>> vae.export("my_vae", quantization="float16")   # the decoder: z in, raw pixels out

Images enter and leave as raw pixels 0-255 (NHWC float32); the models rescale to 0-1 inside.
The saved ``model.keras`` is the deterministic autoencoder (pixels -> mean latent -> pixels),
whose nested ``encoder`` (outputs ``z_mean`` and ``z_log_var``) and ``decoder`` models are
reached as ``vae.encoder_`` and ``vae.decoder_``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from ..base import ExportPlan, register_task
from ..config import check_non_negative, check_positive, setting, strategy_setting
from ..distributed import record_scaling
from ..errors import DataError
from ..explain import Explanation
from ..serving import traced
from .common import PARITY_SAMPLES, GenerativeTask, check_common, image_grid, latent_batch, latent_input
from ..data.generative import DEFAULT_IMAGE_SIZE
from .runner import SamplerMixin

TRAVERSAL_SPAN = 3.0
DEFAULT_TRAVERSAL_STEPS = 9


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Settings of a :class:`VAE`.

    latent_dim: size of the latent space. image_size: (height, width) the images are resized to
    (digits: 16x16, upsampled from 8x8; sides divisible by 2 ** len(filters)). channels: 1 or 3
    (default: the data's). filters: convolutions of the encoder (each halves the size; the
    decoder mirrors them). beta: weight of the KL term; kl_warmup_epochs: the KL weight rises
    linearly from 0 to beta over these epochs (0: no warm-up). patience: early stopping on the
    validation loss once the warm-up is over (best weights restored).
    """

    latent_dim: int = setting(8, "size of the latent space", tune=(2, 64))
    image_size: tuple[int, int] = setting(DEFAULT_IMAGE_SIZE, "height [width] the images are resized to")
    channels: int | None = setting(None, "1 (grayscale) or 3 (RGB); default: 1 for digits, 3 for folders",
                                   choices=(1, 3))
    filters: tuple[int, ...] = setting((32, 64), "encoder convolutions, each halving the size (the decoder mirrors "
                                                 "them)")
    hidden_units: int = setting(128, "dense layer between the convolutions and the latent space", tune=(32, 512))
    beta: float = setting(1.0, "weight of the KL term", tune=(0.1, 4.0))
    kl_warmup_epochs: int = setting(10, "the KL weight rises from 0 to beta over these epochs (0: no warm-up)",
                                    tune=(0, 30))
    epochs: int = setting(80, "early stopping may end sooner", tune=(10, 200))
    batch_size: int = setting(64, "images per training step", tune=(16, 256))
    learning_rate: float = setting(1e-3, "Adam's learning rate", tune=(1e-4, 1e-2))
    patience: int = setting(10, "early-stopping patience in epochs (after the warm-up)", tune=(3, 30))
    validation_split: float = setting(0.1, "share of the training images for early stopping")
    seed: int = setting(0, "seeds the weights, the split and the shuffling")
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        if not self.filters or min(self.filters) < 1:
            raise ValueError(f"filters must be one or more positive ints. Received {self.filters}.")
        check_common(self, downsamplings=len(self.filters))
        check_positive(self, "latent_dim", "hidden_units", "patience")
        check_non_negative(self, "beta", "kl_warmup_epochs")


def _build(cfg: VAEConfig, shape: tuple[int, int, int]):
    """(encoder, decoder, autoencoder) as functional Keras models."""
    import keras
    from keras import layers

    height, width, channels = shape
    pixels = keras.Input(shape, name="pixels")
    x = layers.Rescaling(1 / 255.0, name="rescale")(pixels)
    for i, f in enumerate(cfg.filters):
        x = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name=f"conv_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(cfg.hidden_units, activation="relu", name="hidden")(x)
    z_mean = layers.Dense(cfg.latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(cfg.latent_dim, name="z_log_var")(x)
    encoder = keras.Model(pixels, [z_mean, z_log_var], name="encoder")

    factor = 2 ** len(cfg.filters)
    z = keras.Input((cfg.latent_dim,), name="z")
    y = layers.Dense(cfg.hidden_units, activation="relu", name="hidden")(z)
    y = layers.Dense((height // factor) * (width // factor) * cfg.filters[-1], activation="relu", name="expand")(y)
    y = layers.Reshape((height // factor, width // factor, cfg.filters[-1]), name="reshape")(y)
    for i, f in enumerate(reversed(cfg.filters)):
        y = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu", name=f"deconv_{i}")(y)
    y = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", name="image")(y)
    y = layers.Rescaling(255.0, name="to_pixels")(y)
    decoder = keras.Model(z, y, name="decoder")

    inputs = keras.Input(shape, name="pixels")
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)[0]), name="vae")
    return encoder, decoder, autoencoder


def _trainer_class():
    import keras
    import tensorflow as tf
    from keras import ops

    class VAETrainer(keras.Model):
        """Trains an encoder and decoder with the ELBO (reconstruction cross-entropy summed over
        pixels + beta x KL to N(0, I)); ``beta`` is a variable a warm-up callback raises."""

        def __init__(self, encoder, decoder, seed: int, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.decoder = encoder, decoder
            self.beta = keras.Variable(0.0, trainable=False, name="beta")
            self.seed_generator = keras.random.SeedGenerator(seed)
            self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "reconstruction_loss", "kl_loss")]

        @property
        def metrics(self):
            return self.trackers

        def _elbo(self, x, training):
            z_mean, z_log_var = self.encoder(x, training=training)
            eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
            z = z_mean + ops.exp(0.5 * z_log_var) * eps
            recon = self.decoder(z, training=training)
            bce = ops.binary_crossentropy(x / 255.0, ops.clip(recon / 255.0, 1e-7, 1 - 1e-7))
            reconstruction = ops.mean(ops.sum(bce, axis=(1, 2, 3)))
            kl = ops.mean(ops.sum(-0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var)), axis=1))
            return reconstruction + self.beta * kl, reconstruction, kl

        def _report(self, values):
            for tracker, value in zip(self.trackers, values):
                tracker.update_state(value)
            return {t.name: t.result() for t in self.trackers}

        def train_step(self, data):
            x = data[0] if isinstance(data, tuple) else data
            with tf.GradientTape() as tape:
                values = self._elbo(x, True)
            grads = tape.gradient(values[0], self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            return self._report(values)

        def test_step(self, data):
            x = data[0] if isinstance(data, tuple) else data
            return self._report(self._elbo(x, False))

    return VAETrainer


@register_task("vae")
class VAE(SamplerMixin, GenerativeTask):
    """Variational autoencoder on images (see the module docstring)."""

    tags = frozenset({"generator", "image_to_image"})
    input_kind = "image"
    explain_methods = ("traversal",)

    config_class = VAEConfig
    conditional_ = False

    def __init__(self, config: VAEConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self._encode_fn = self._decode_fn = None

    @property
    def latent_dim_(self) -> int:
        return self.config.latent_dim

    @property
    def encoder_(self):
        self._check_fitted()
        return self.model_.get_layer("encoder")

    @property
    def decoder_(self):
        self._check_fitted()
        return self.model_.get_layer("decoder")

    # ================================================================== fit
    def fit(self, data: Any, validation_data: Any = None, verbose: int = 0, callbacks: list | None = None,
            **overrides: Any) -> "VAE":
        """Train on ``data`` (``"digits"``: its train split; a folder; images; Splits). Without
        ``validation_data``, ``validation_split`` of the images is held out for early stopping."""
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
            encoder, decoder, self.model_ = _build(cfg, self.input_shape_)
            trainer = _trainer_class()(encoder, decoder, cfg.seed)
            trainer.built = True  # its parts are built; under a strategy Keras would trace a call() it has not
            trainer.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
        self._encode_fn = self._decode_fn = None

        def dataset(x, shuffle):
            ds = tf.data.Dataset.from_tensor_slices(x.astype(np.float32))
            if shuffle:
                ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
            return ds.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)

        warmup = cfg.kl_warmup_epochs

        class KLWarmUp(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                trainer.beta.assign(cfg.beta * (min(1.0, (epoch + 1) / warmup) if warmup else 1.0))

        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True,
                                             start_from_epoch=warmup)
        start = time.perf_counter()
        history = trainer.fit(dataset(train.x, True), validation_data=dataset(val.x, False), epochs=cfg.epochs,
                              callbacks=[KLWarmUp(), stop, *(callbacks or [])], verbose=verbose,
                              shuffle=False)
        self._finish_fit(history, start)
        return self

    # ================================================================== latent space
    def _serving(self):
        if self._decode_fn is None:
            import tensorflow as tf

            height, width, channels = self.input_shape_
            self._encode_fn = traced(self.encoder_, tf.TensorSpec((None, height, width, channels), tf.float32))
            self._decode_fn = traced(self.decoder_, tf.TensorSpec((None, self.latent_dim_), tf.float32))
        return self._encode_fn, self._decode_fn

    def encode(self, images: Any, return_log_var: bool = False):
        """The mean latent vector of each image, (N, latent_dim); with ``return_log_var`` also
        the log-variance."""
        batch = self.model_images(images)
        encode = self._serving()[0]
        parts = [encode(batch[i : i + 512]) for i in range(0, len(batch), 512)]
        z_mean = np.concatenate([p[0].numpy() for p in parts])
        if return_log_var:
            return z_mean, np.concatenate([p[1].numpy() for p in parts])
        return z_mean

    def decode(self, z: Any) -> np.ndarray:
        """Images (raw pixels, (N, H, W, C)) from latent vectors (latent_dim,) or (N, latent_dim)."""
        self._check_fitted()
        z = latent_input(z, self.latent_dim_)
        decode = self._serving()[1]
        return np.concatenate([decode(z[i : i + 512]).numpy() for i in range(0, len(z), 512)])

    def _from_latent(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        return self.decode(z)

    def predict(self, x: Any) -> np.ndarray:
        """Deterministic reconstructions (decoded mean latents) of one image or a batch."""
        return self.decode(self.encode(x))

    def interpolate(self, a: Any, b: Any, steps: int = 8) -> np.ndarray:
        """``steps`` images decoded along the straight line between the encodings of images a and b."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise DataError(f"Expected steps >= 2 for an interpolation. Received {steps!r}.")
        start, end = self._one_encoding(a, "a"), self._one_encoding(b, "b")
        t = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)[:, None]
        return self.decode((1 - t) * start + t * end)

    def _one_encoding(self, image: Any, name: str) -> np.ndarray:
        z = self.encode(image)
        if len(z) != 1:
            raise DataError(f"Expected one image for {name}. Received a batch of {len(z)}.")
        return z[0]

    def traverse(self, dim: int, image: Any = None, steps: int = DEFAULT_TRAVERSAL_STEPS,
                 span: float = TRAVERSAL_SPAN) -> np.ndarray:
        """Images decoded while latent dimension ``dim`` sweeps from -span to +span, the others
        held at the encoding of ``image`` (default: the origin)."""
        return self._traversals([dim], image, steps, span)[0]

    def _traversals(self, dims, image, steps, span) -> np.ndarray:
        self._check_fitted()
        for dim in dims:
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 0 <= dim < self.latent_dim_:
                raise DataError(f"Unknown latent dimension {dim!r}. Expected 0-{self.latent_dim_ - 1}.")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise DataError(f"Expected steps >= 2. Received {steps!r}.")
        base = self._one_encoding(image, "image") if image is not None else np.zeros(self.latent_dim_, np.float32)
        values = np.linspace(-span, span, int(steps), dtype=np.float32)
        z = np.repeat(base[None], len(dims) * len(values), axis=0)
        for row, dim in enumerate(dims):
            z[row * len(values) : (row + 1) * len(values), dim] = values
        return self.decode(z).reshape(len(dims), len(values), *self.input_shape_)

    # ================================================================== evaluate
    def evaluate(self, data: Any, n_samples: int = 360, seed: int = 0) -> dict[str, Any]:
        """On ``data``'s test part: reconstruction error (MSE, PSNR, SSIM) and the ELBO terms; for
        digits models also the FID for digits of ``n_samples`` samples and of the reconstructions,
        with the real-vs-real and noise references, and the samples' diversity."""
        from . import metrics as gm

        test = self._test_data(data)
        z_mean, z_log_var = self.encode(test.x, return_log_var=True)
        recon = self.decode(z_mean)  # what predict() gives
        clean, back = test.x / 255.0, recon / 255.0
        bce = -(clean * np.log(np.clip(back, 1e-7, 1)) + (1 - clean) * np.log(np.clip(1 - back, 1e-7, 1)))
        out: dict[str, Any] = {
            "reconstruction_mse": float(np.mean((clean - back) ** 2)),
            "reconstruction_psnr": gm.psnr(test.x, recon),
            "reconstruction_ssim": gm.ssim(test.x, recon),
            "reconstruction_loss": float(bce.sum(axis=(1, 2, 3)).mean()),
            "kl_loss": float(np.mean(np.sum(-0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var)), axis=1))),
            "n_test": int(len(test)),
        }
        samples = self.generate(n_samples, seed=seed)
        if self._is_digits():
            out.update(gm.digits_report(samples, test.x, seed))
            out["fid_reconstructions"] = gm.fid_digits(recon[: out["fid_samples"]], test.x[: out["fid_samples"]])
        else:
            out.update(gm.diversity_report(samples, test.x))
        return out

    # ================================================================== explain
    def explain(self, x: Any = None, method: str = "traversal", target: Any = None, budget: int | None = None,
                seed: int = 0) -> Explanation:
        """Latent traversals: every latent dimension (or ``target``: one or a list) swept from -3 to
        3 in ``budget`` steps (default 9) around the encoding of image ``x`` (default: the origin).
        ``attributions`` holds how much each dimension changes the image (mean absolute pixel
        change along its sweep, 0-1 scale); ``image`` is the grid, one row per dimension."""
        if method != "traversal":
            raise ValueError(f"Unknown explanation method {method!r} for a VAE. Valid methods: ['traversal'].")
        dims = list(range(self.latent_dim_)) if target is None else (
            [target] if np.ndim(target) == 0 else list(target))
        dims = [int(d) if isinstance(d, str) and d.isdigit() else d for d in dims]
        steps = int(budget if budget is not None else DEFAULT_TRAVERSAL_STEPS)
        start = time.perf_counter()
        rows = self._traversals(dims, x, steps, TRAVERSAL_SPAN)
        effect = np.abs(np.diff(rows / 255.0, axis=1)).sum(axis=1).mean(axis=(1, 2, 3))
        seconds = time.perf_counter() - start
        grid = image_grid(rows.reshape(-1, *self.input_shape_), cols=steps, width=64 * steps)
        return Explanation(effect.astype(np.float32), "traversal", dims if target is not None else "all dimensions",
                           seconds, grid, steps, extra={"dims": dims, "span": TRAVERSAL_SPAN,
                                                        "values": np.linspace(-TRAVERSAL_SPAN, TRAVERSAL_SPAN, steps).round(3).tolist()})

    # ================================================================== save / load / export
    def _card_extra(self) -> dict:
        out = super()._card_extra()
        out["latent"] = {"dim": self.latent_dim_, "prior": "standard normal N(0, I)"}
        out["input"] = {**self._image_card(), "description": "raw pixels; the model rescales to 0-1 itself"}
        out["output"] = {"shape": list(self.input_shape_), "range": [0, 255],
                         "description": "reconstruction from the mean latent, raw pixels"}
        return out

    def _export_plan(self, data: Any, quantization: str, seed: int = 0) -> ExportPlan:
        """The decoder (``z`` float32 (1, latent_dim) from N(0, I) -> raw pixels (1, H, W, C)), checked
        against Keras on ``PARITY_SAMPLES`` (256) latent vectors drawn with ``seed``. ``data`` is not
        needed (accepted for the CLI)."""
        z = latent_batch(PARITY_SAMPLES, self.latent_dim_, seed)
        description = {
            "inputs": [{"name": "z", "shape": [1, self.latent_dim_], "dtype": "float32",
                        "distribution": "standard normal N(0, 1) per dimension (the prior); an encoding for "
                                        "reconstructions"}],
            "output": {"shape": [1, *self.input_shape_], "dtype": "float32", "range": [0, 255],
                       "description": "decoded image, raw pixels"},
        }
        return self._image_export_plan(self.decoder_, "decoder", {"z": z}, description)
