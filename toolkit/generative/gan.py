"""DCGAN, optionally conditioned on the label, trained with a custom ``train_step`` (Keras 3 style:
a ``keras.Model`` subclass overriding ``compile`` and ``train_step``, losses tracked by
``keras.metrics.Mean``).

>>> gan = GAN(GANConfig(conditional=True)).fit("digits")      # digits upsampled to 16x16
>>> gan.generate(16, label=7, seed=0)      # sixteen 7s, raw pixels 0-255
>>> gan.predict(z, labels)                 # images from given noise vectors (what the TFLite file does)
>>> gan.evaluate("digits")                 # FID for digits, label accuracy, diversity (mode collapse)
>>> gan.explain(image, method="shap")      # which pixels make the discriminator call it real

The generator maps ``noise`` (latent_dim floats from N(0, 1)) and, when conditional, ``label``
(an int32 class id, embedded and concatenated to the noise) to raw pixels. The discriminator sees
pixels and, when conditional, the label as an extra image channel (a learned embedding of the
label reshaped to H x W), and returns a real/fake logit, plus class logits when ``aux_weight`` > 0
(an auxiliary classifier, as in AC-GAN). When conditional it also learns to call real images with
a wrong label fake (``mismatch_weight``, a matching-aware discriminator). Measured on digits (40
epochs; share of samples the shipped classifier reads as the requested digit, FID for digits):
label channel + auxiliary classifier at learning rate 2e-4: 0.90, 3.4; + wrong-label loss: 1.00,
1.8; at 5e-4 without it: 0.96, 1.9; at 5e-4 with it (the defaults): 1.00, 1.7.

The usual guards: Adam with beta_1 = 0.5, separate learning rates for the two networks (TTUR),
one-sided label smoothing (real targets 1 - label_smoothing), dropout in the discriminator. A
sample grid is rendered every ``sample_every`` epochs (kept in ``sample_grids_`` and saved to
``samples/`` in the model folder; written at once to ``samples_dir`` when given).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ExportPlan, load_keras_model, register_task
from ..config import check_non_negative, check_positive, check_range, setting, strategy_setting
from ..distributed import record_scaling
from ..errors import DataError, ModelFormatError
from ..explain import Explanation, lime_image, overlay, shap_gradient
from ..serving import traced
from ..storage import atomic_write_bytes, sha256_file
from .common import (
    PARITY_SAMPLES,
    GenerativeTask,
    check_common,
    image_grid,
    label_ids,
    latent_batch,
    latent_input,
    sample_grid_callback,
)
from ..data.generative import DEFAULT_IMAGE_SIZE
from .runner import SamplerMixin

DISCRIMINATOR_FILE = "discriminator.keras"
SAMPLES_FOLDER = "samples"
GAN_METHODS = ("shap", "lime")
DEFAULT_BUDGETS = {"shap": 100, "lime": 300}
GRID_COLUMNS = 10


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """Settings of a :class:`GAN`.

    latent_dim: size of the noise vector. conditional: condition both networks on the label.
    image_size / channels: as for the VAE (digits: 16x16, one channel). generator_filters: the
    transposed convolutions (each doubles the size); discriminator_filters: the strided
    convolutions. learning_rate / discriminator_learning_rate: Adam rates of the generator and
    the discriminator (default: the same; a larger discriminator rate is the TTUR recipe).
    label_smoothing: real targets are 1 - label_smoothing. aux_weight: weight of the auxiliary
    classification loss (conditional only; 0 turns the classifier head off). mismatch_weight:
    weight of the loss on real images shown with a wrong label, which the discriminator must call
    fake (conditional only; 0: off). sample_every:
    epochs between sample grids; samples_dir: a folder to write them to during training.
    """

    latent_dim: int = setting(32, "size of the noise vector", tune=(8, 128))
    conditional: bool = setting(False, "condition on the label (needs labelled data)")
    image_size: tuple[int, int] = setting(DEFAULT_IMAGE_SIZE, "height [width] the images are resized to")
    channels: int | None = setting(None, "1 (grayscale) or 3 (RGB); default: 1 for digits, 3 for folders",
                                   choices=(1, 3))
    generator_filters: tuple[int, ...] = setting((64, 32), "the generator's transposed convolutions (each doubles "
                                                           "the size)")
    discriminator_filters: tuple[int, ...] = setting((64, 128), "the discriminator's strided convolutions")
    embedding_dim: int = setting(16, "size of the label embedding (conditional)", tune=(4, 64))
    epochs: int = setting(40, "training epochs", tune=(10, 200))
    batch_size: int = setting(64, "images per training step", tune=(16, 256))
    learning_rate: float = setting(5e-4, "the generator's Adam learning rate", tune=(1e-4, 2e-3))
    discriminator_learning_rate: float | None = setting(None, "TTUR: a separate discriminator rate "
                                                              "(default: --learning-rate)", tune=(1e-4, 4e-3))
    beta_1: float = setting(0.5, "Adam's beta_1 for both networks")
    label_smoothing: float = setting(0.1, "real targets are 1 - this", tune=(0.0, 0.3))
    aux_weight: float = setting(1.0, "auxiliary classifier loss weight (conditional; 0: off)", tune=(0.0, 2.0))
    mismatch_weight: float = setting(1.0, "weight of the loss on real images with a wrong label (conditional; 0: off)",
                                     tune=(0.0, 2.0))
    dropout: float = setting(0.3, "dropout in the discriminator", tune=(0.0, 0.5))
    sample_every: int = setting(10, "epochs between sample grids")
    samples_dir: str | None = setting(None, "also write the sample grids here during training (they are saved in "
                                            "OUT/samples/ anyway)")
    seed: int = setting(0, "seeds the weights and the noise")
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        for name in ("generator_filters", "discriminator_filters"):
            value = tuple(int(f) for f in getattr(self, name))
            if not value or min(value) < 1:
                raise ValueError(f"{name} must be one or more positive ints. Received {value}.")
            object.__setattr__(self, name, value)
        check_common(self, downsamplings=max(len(self.generator_filters), len(self.discriminator_filters)))
        check_positive(self, "latent_dim", "embedding_dim", "sample_every", "beta_1")
        check_non_negative(self, "mismatch_weight", "aux_weight")
        if self.discriminator_learning_rate is not None:
            check_positive(self, "discriminator_learning_rate")
        check_range("label_smoothing", self.label_smoothing, 0, 0.5, high_closed=False)
        check_range("dropout", self.dropout, 0, 1, high_closed=False)
        if self.samples_dir is not None:
            object.__setattr__(self, "samples_dir", str(self.samples_dir))


def _build(cfg: GANConfig, shape: tuple[int, int, int], n_classes: int):
    """(generator, discriminator) as functional Keras models."""
    import keras
    from keras import layers

    height, width, channels = shape
    factor = 2 ** len(cfg.generator_filters)
    noise = keras.Input((cfg.latent_dim,), name="noise")
    inputs = [noise]
    x = noise
    if cfg.conditional:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        x = layers.Concatenate(name="noise_and_label")(
            [noise, layers.Embedding(n_classes, cfg.embedding_dim, name="label_embedding")(label)])
    x = layers.Dense((height // factor) * (width // factor) * cfg.generator_filters[0], use_bias=False,
                     name="project")(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.LeakyReLU(0.2, name="project_act")(x)
    x = layers.Reshape((height // factor, width // factor, cfg.generator_filters[0]), name="reshape")(x)
    for i, f in enumerate(cfg.generator_filters):
        x = layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=False, name=f"up_{i}")(x)
        x = layers.BatchNormalization(name=f"up_{i}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"up_{i}_act")(x)
    x = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", name="image")(x)
    pixels_out = layers.Rescaling(255.0, name="to_pixels")(x)
    generator = keras.Model(inputs if cfg.conditional else noise, pixels_out, name="generator")

    pixels = keras.Input(shape, name="pixels")
    d_inputs = [pixels]
    y = layers.Rescaling(1 / 255.0, name="rescale")(pixels)
    if cfg.conditional:
        d_label = keras.Input((), dtype="int32", name="label")
        d_inputs.append(d_label)
        plane = layers.Embedding(n_classes, height * width, name="label_plane")(d_label)
        y = layers.Concatenate(name="image_and_label")([y, layers.Reshape((height, width, 1), name="label_map")(plane)])
    for i, f in enumerate(cfg.discriminator_filters):
        y = layers.Conv2D(f, 4, strides=2, padding="same", name=f"down_{i}")(y)
        y = layers.LeakyReLU(0.2, name=f"down_{i}_act")(y)
    y = layers.Flatten(name="flatten")(y)
    y = layers.Dropout(cfg.dropout, seed=cfg.seed, name="dropout")(y)
    outputs = [layers.Dense(1, name="real_logit")(y)]
    if cfg.conditional and cfg.aux_weight > 0:
        outputs.append(layers.Dense(n_classes, name="class_logits")(y))
    discriminator = keras.Model(d_inputs if cfg.conditional else pixels,
                                outputs if len(outputs) > 1 else outputs[0], name="discriminator")
    return generator, discriminator


def _trainer_class():
    import keras
    import tensorflow as tf
    from keras import ops

    class GANTrainer(keras.Model):
        """One discriminator step and one generator step per batch (the Keras DCGAN recipe)."""

        def __init__(self, generator, discriminator, latent_dim: int, conditional: bool, aux: bool,
                     n_classes: int, seed: int, **kwargs):
            super().__init__(**kwargs)
            self.generator, self.discriminator = generator, discriminator
            self.latent_dim, self.conditional, self.aux, self.n_classes = latent_dim, conditional, aux, n_classes
            self.seed_generator = keras.random.SeedGenerator(seed)

        def compile(self, d_optimizer, g_optimizer, label_smoothing: float, aux_weight: float,
                    mismatch_weight: float):
            super().compile()
            self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
            self.label_smoothing, self.aux_weight, self.mismatch_weight = label_smoothing, aux_weight, mismatch_weight
            self.trackers = {n: keras.metrics.Mean(name=n) for n in ("d_loss", "g_loss", "d_real", "d_fake")}
            if self.aux:
                self.trackers["aux_accuracy_fake"] = keras.metrics.Mean(name="aux_accuracy_fake")

        @property
        def metrics(self):
            return list(self.trackers.values())

        def _judge(self, images, labels, training):
            out = self.discriminator([images, labels] if self.conditional else images, training=training)
            return (out[0], out[1]) if self.aux else (out, None)

        def _generate(self, z, labels, training):
            return self.generator([z, labels] if self.conditional else z, training=training)

        def _classify_loss(self, labels, logits):
            return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))

        def train_step(self, data):
            real, labels = data
            labels = ops.cast(labels, "int32")
            batch = ops.shape(real)[0]
            bce = lambda target, logits: ops.mean(  # noqa: E731
                ops.binary_crossentropy(target, logits, from_logits=True))

            z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
            fake = self._generate(z, labels, True)
            with tf.GradientTape() as tape:
                real_logit, real_class = self._judge(real, labels, True)
                fake_logit, fake_class = self._judge(fake, labels, True)
                d_loss = (bce(ops.full_like(real_logit, 1.0 - self.label_smoothing), real_logit)
                          + bce(ops.zeros_like(fake_logit), fake_logit))
                if self.aux:
                    d_loss += self.aux_weight * self._classify_loss(labels, real_class)
                if self.conditional and self.mismatch_weight:
                    # Real images shown with a wrong label are fakes too (a matching-aware discriminator).
                    shift = keras.random.randint((batch,), 1, self.n_classes, seed=self.seed_generator)
                    wrong_logit, _ = self._judge(real, (labels + ops.cast(shift, "int32")) % self.n_classes, True)
                    d_loss += self.mismatch_weight * bce(ops.zeros_like(wrong_logit), wrong_logit)
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

            z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                fake = self._generate(z, labels, True)
                fake_logit, fake_class = self._judge(fake, labels, True)
                g_loss = bce(ops.ones_like(fake_logit), fake_logit)
                if self.aux:
                    g_loss += self.aux_weight * self._classify_loss(labels, fake_class)
            grads = tape.gradient(g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

            values = {"d_loss": d_loss, "g_loss": g_loss, "d_real": ops.mean(ops.sigmoid(real_logit)),
                      "d_fake": ops.mean(ops.sigmoid(fake_logit))}
            if self.aux:
                hits = ops.cast(ops.equal(ops.argmax(fake_class, axis=-1), labels), "float32")
                values["aux_accuracy_fake"] = ops.mean(hits)
            for name, value in values.items():
                self.trackers[name].update_state(value)
            return {name: tracker.result() for name, tracker in self.trackers.items()}

    return GANTrainer


def _constant_label(label: int):
    """A layer feeding one fixed label with every image (explanation models only; never saved)."""
    import keras

    class ConstantLabel(keras.layers.Layer):
        def call(self, images):
            return keras.ops.full((keras.ops.shape(images)[0],), label, dtype="int32")

    return ConstantLabel(name="constant_label")


@register_task("gan")
class GAN(SamplerMixin, GenerativeTask):
    """DCGAN on images, optionally conditional (see the module docstring)."""

    tags = frozenset({"generator"})
    input_kind = "image"
    explain_methods = ("shap", "lime")

    config_class = GANConfig

    def __init__(self, config: GANConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.discriminator_ = None
        self.sample_grids_: dict[int, bytes] = {}
        self._generate_fn = None
        self._judges: dict[int | None, Any] = {}
        self._discriminator_file: dict | None = None

    @property
    def latent_dim_(self) -> int:
        return self.config.latent_dim

    @property
    def conditional_(self) -> bool:
        return self.config.conditional

    # ================================================================== fit
    def fit(self, data: Any, verbose: int = 0, callbacks: list | None = None, **overrides: Any) -> "GAN":
        """Train on ``data`` (``"digits"``: its train split; a folder; images; ``(images, labels)``)."""
        import keras
        import tensorflow as tf

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        train = self._training_data(data)
        if cfg.conditional and len(self.class_names_) < 2:
            raise DataError(
                "A conditional GAN needs labelled images of at least 2 classes: 'digits', a folder with one "
                f"subfolder per class, or (images, labels). Received {len(self.class_names_)} class(es)."
            )
        if len(train) < cfg.batch_size // 4:
            raise DataError(f"Expected at least {cfg.batch_size // 4} images to train a GAN with batch_size "
                            f"{cfg.batch_size}. Received {len(train)}.")
        n_classes = max(1, len(self.class_names_))
        aux = cfg.conditional and cfg.aux_weight > 0
        record_scaling(self, cfg.batch_size, cfg.learning_rate)  # checked and recorded in the card
        strategy = cfg.strategy or tf.distribute.get_strategy()
        with strategy.scope():
            self.model_, self.discriminator_ = _build(cfg, self.input_shape_, n_classes)
            trainer = _trainer_class()(self.model_, self.discriminator_, cfg.latent_dim, cfg.conditional, aux,
                                       n_classes, cfg.seed)
            trainer.built = True  # its parts are built; under a strategy Keras would trace a call() it has not
            adam = lambda rate: keras.optimizers.Adam(rate, beta_1=cfg.beta_1)  # noqa: E731
            trainer.compile(adam(cfg.discriminator_learning_rate or cfg.learning_rate), adam(cfg.learning_rate),
                            cfg.label_smoothing, cfg.aux_weight, cfg.mismatch_weight)
        self._generate_fn, self._judges = None, {}
        ds = tf.data.Dataset.from_tensor_slices((train.x.astype(np.float32), train.y.astype(np.int32)))
        ds = ds.shuffle(len(train), seed=cfg.seed, reshuffle_each_iteration=True)
        ds = ds.batch(cfg.batch_size, drop_remainder=len(train) >= cfg.batch_size).prefetch(tf.data.AUTOTUNE)
        self.sample_grids_ = {}
        if cfg.samples_dir:
            Path(cfg.samples_dir).mkdir(parents=True, exist_ok=True)
        grids = sample_grid_callback(self.sample_grid, cfg.sample_every, cfg.samples_dir, self.sample_grids_)
        start = time.perf_counter()
        history = trainer.fit(ds, epochs=cfg.epochs, callbacks=[grids, *(callbacks or [])], verbose=verbose,
                              shuffle=False)
        self._finish_fit(history, start)
        return self

    # ================================================================== generate / predict
    def _serving(self):
        if self._generate_fn is None:
            import tensorflow as tf

            specs = [tf.TensorSpec((None, self.latent_dim_), tf.float32)]
            if self.conditional_:
                specs.append(tf.TensorSpec((None,), tf.int32))
            self._generate_fn = traced(self.model_, *specs)
        return self._generate_fn

    def _from_latent(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        self._check_fitted()
        fn = self._serving()
        parts = []
        for i in range(0, len(z), 512):
            args = (z[i : i + 512],) + ((labels[i : i + 512],) if self.conditional_ else ())
            parts.append(fn(*args).numpy())
        return np.concatenate(parts)

    def predict(self, z: Any, labels: Any = None) -> np.ndarray:
        """Images (raw pixels, (N, H, W, C)) from noise vectors (latent_dim,) or (N, latent_dim)
        and, for a conditional GAN, their labels (names or ids; one, or one per vector)."""
        self._check_fitted()
        z = latent_input(z, self.latent_dim_)
        if self.conditional_:
            if labels is None:
                raise DataError(f"This GAN is conditional: pass labels=... (one of {self.class_names_}, or one per "
                                "noise vector), or use generate(n, label=...).")
            return self._from_latent(z, label_ids(labels, len(z), self.class_names_))
        if labels is not None:
            raise DataError("This GAN is unconditional: it takes no labels. Train with conditional=True for labels.")
        return self._from_latent(z, None)

    def sample_grid(self, seed: int = 0) -> np.ndarray:
        """A grid of samples from fixed noise (uint8 RGB): one row per class when conditional."""
        self._check_fitted()
        noise = latent_batch(GRID_COLUMNS, self.latent_dim_, seed)
        rows = len(self.class_names_) if self.conditional_ else GRID_COLUMNS
        z = np.tile(noise, (rows, 1))
        labels = np.repeat(np.arange(rows), GRID_COLUMNS).astype(np.int32) if self.conditional_ else None
        return image_grid(self._from_latent(z, labels), cols=GRID_COLUMNS)

    # ================================================================== evaluate
    def evaluate(self, data: Any, n_samples: int = 360, seed: int = 0) -> dict[str, Any]:
        """Quality of ``n_samples`` samples against ``data``'s test part. Digits models: the FID for
        digits beside its real-vs-real and noise references, the diversity and how many digits the
        classifier sees (``mode_collapse`` flags a collapse) and, when conditional, the share of
        samples the classifier labels as the requested digit (overall and per digit) and the
        samples' diversity within each digit against the real images' (``mode_collapse`` also
        when that ratio is below 0.5: one image per label). Other data: the diversity against the
        real images."""
        from . import metrics as gm

        test = self._test_data(data)
        labels = label_ids(None, n_samples, self.class_names_) if self.conditional_ else None
        samples = self.generate(n_samples, label=labels, seed=seed)
        if not self._is_digits():
            return {**gm.diversity_report(samples, test.x), "n_samples": n_samples}
        out: dict[str, Any] = gm.digits_report(samples, test.x, seed)
        if self.conditional_:
            judged = gm.digits_judge().labels(samples)
            requested = np.array([int(self.class_names_[i]) for i in labels])
            out["label_accuracy"] = float(np.mean(judged == requested))
            out["label_accuracy_per_class"] = {
                name: float(np.mean(judged[labels == i] == int(name))) for i, name in enumerate(self.class_names_)}
            out["diversity_within_class_ratio"] = gm.within_class_diversity(samples, labels, test.x, test.y)
            out["mode_collapse"] = out["mode_collapse"] or out["diversity_within_class_ratio"] < 0.5
        out["n_samples"] = n_samples
        return out

    # ================================================================== explain
    def realness(self, images: Any, label: Any = None) -> np.ndarray:
        """The discriminator's probability that each image is real (as ``label``, a class name or
        index, which a conditional GAN needs)."""
        batch = self.model_images(images)
        if self.conditional_ and label is None:
            raise DataError(f"This GAN is conditional: pass the label to judge the images as (one of "
                            f"{self.class_names_}).")
        return self._judge_fn(self._explain_label(batch, label))(batch).numpy()[:, 0]

    def _explain_label(self, batch: np.ndarray, label: Any) -> int | None:
        if not self.conditional_:
            if label is not None:
                raise DataError("This GAN is unconditional: its discriminator takes no label.")
            return None
        if label is not None:
            return int(label_ids(label, 1, self.class_names_)[0])
        # Default: the label under which the discriminator finds the image most plausible.
        k = len(self.class_names_)
        out = self._discriminator()([np.repeat(batch[:1], k, axis=0), np.arange(k, dtype=np.int32)], training=False)
        return int(np.argmax(np.asarray(out[0] if isinstance(out, (list, tuple)) else out)[:, 0]))

    def _discriminator(self):
        if self.discriminator_ is None:
            raise ModelFormatError("This GAN has no discriminator (it was not saved with one). Re-train it.")
        return self.discriminator_

    def _judge_model(self, label: int | None):
        """pixels -> P(real) for a fixed label: the model SHAP differentiates and LIME queries."""
        import keras

        pixels = keras.Input(self.input_shape_, name="pixels")
        out = self._discriminator()([pixels, _constant_label(label)(pixels)] if self.conditional_ else pixels)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return keras.Model(pixels, keras.layers.Activation("sigmoid", name="p_real")(out))

    def _judge_fn(self, label: int | None):
        if label not in self._judges:
            import tensorflow as tf

            model = self._judge_model(label)
            self._judges[label] = (model, traced(model, tf.TensorSpec((None, *self.input_shape_), tf.float32)))
        return self._judges[label][1]

    def explain(self, x: Any, method: str = "shap", target: Any = None, budget: int | None = None,
                seed: int = 0) -> Explanation:
        """Which pixels make the discriminator call image ``x`` real: SHAP expected gradients (on
        the Keras discriminator, against the stored real images) or LIME (superpixels). For a
        conditional GAN ``target`` is the label to judge the image as (default: the label the
        discriminator finds most plausible). Red supports "real", blue "fake"."""
        if method not in GAN_METHODS:
            raise ValueError(f"Unknown explanation method {method!r} for a GAN. Valid methods: {list(GAN_METHODS)}.")
        batch = self.model_images(x)
        if len(batch) != 1:
            raise DataError(f"explain() takes one image. Received a batch of {len(batch)}.")
        budget = int(budget if budget is not None else DEFAULT_BUDGETS[method])
        if budget < 1:
            raise ValueError(f"budget must be >= 1. Received {budget}.")
        label = self._explain_label(batch, target)
        judge = self._judge_fn(label)
        p_real = float(judge(batch).numpy()[0, 0])
        start = time.perf_counter()
        if method == "shap":
            background = (self.background_ if self.background_ is not None else np.zeros_like(batch)).astype(np.float32)
            attributions = shap_gradient(self._judges[label][0], batch, 0, background, budget, seed)
        else:
            def proba(images):
                p = judge(images.astype(np.float32)).numpy()
                return np.concatenate([1 - p, p], axis=1)

            hide = 0.0 if self.input_meta_.get("polarity") == "light_on_dark" else None
            attributions = lime_image(proba, batch, 1, budget, hide_color=hide, seed=seed)
        seconds = time.perf_counter() - start
        name = self.class_names_[label] if label is not None else None
        return Explanation(attributions, method, "real" if name is None else f"real {name}", seconds,
                           overlay(batch[0], attributions, signed=True), budget,
                           extra={"p_real": p_real, "label": name})

    # ================================================================== save / load / export
    def _card_extra(self) -> dict:
        out = super()._card_extra()
        out["conditional"] = self.conditional_
        out["input"] = self._generator_inputs()
        out["output"] = {"shape": list(self.input_shape_), "dtype": "float32", "range": [0, 255],
                         "description": "generated image, raw pixels"}
        out["discriminator"] = self._discriminator_file
        return out

    def _generator_inputs(self) -> list[dict]:
        inputs = [{"name": "noise", "shape": [self.latent_dim_], "dtype": "float32",
                   "distribution": "standard normal N(0, 1), independent per entry"}]
        if self.conditional_:
            inputs.append({"name": "label", "shape": [], "dtype": "int32",
                           "range": [0, len(self.class_names_) - 1], "labels": list(self.class_names_),
                           "description": "the class to generate: an index into labels"})
        return inputs

    def _save_extra(self, directory: Path) -> None:
        super()._save_extra(directory)
        if self.discriminator_ is not None:
            path = directory / DISCRIMINATOR_FILE
            self.discriminator_.save(path)
            self._discriminator_file = {"file": DISCRIMINATOR_FILE, "size_bytes": path.stat().st_size,
                                        "sha256": sha256_file(path)}
        for epoch, data in sorted(self.sample_grids_.items()):
            atomic_write_bytes(directory / SAMPLES_FOLDER / f"epoch_{epoch:03d}.png", data)

    def _load_extra(self, directory: Path, card: dict) -> None:
        super()._load_extra(directory, card)
        entry = card.get("discriminator")
        if entry:  # the file must match its card, like model.keras
            self._discriminator_file = entry
            self.discriminator_ = load_keras_model(directory, {"model": entry})
        samples = directory / SAMPLES_FOLDER
        if samples.is_dir():
            self.sample_grids_ = {int(p.stem.split("_")[-1]): p.read_bytes()
                                  for p in sorted(samples.glob("epoch_*.png"))}

    def _export_plan(self, data: Any, quantization: str, seed: int = 0) -> ExportPlan:
        """The generator: inputs ``noise`` float32 (1, latent_dim) from N(0, 1) and, when conditional,
        ``label`` int32 (1,); output raw pixels (1, H, W, C); checked against Keras on 256 inputs
        drawn with ``seed``. ``data`` is not needed (accepted for the CLI)."""
        z = latent_batch(PARITY_SAMPLES, self.latent_dim_, seed)
        inputs = {"noise": z}
        if self.conditional_:
            inputs["label"] = label_ids(None, PARITY_SAMPLES, self.class_names_)
        described = [{**spec, "shape": [1, *spec["shape"]]} for spec in self._generator_inputs()]
        description = {"inputs": described,
                       "output": {"shape": [1, *self.input_shape_], "dtype": "float32", "range": [0, 255],
                                  "description": "generated image, raw pixels"}}
        return self._image_export_plan(self.model_, "generator", inputs, description)
