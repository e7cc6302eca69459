"""Anomaly detection in sensor series: a robust autoencoder over sliding windows.

>>> det = AnomalyDetector().fit(synthetic_sensor(2000, seed=0, anomalies=False))  # clean data
>>> test = synthetic_sensor(2000, seed=1)          # spikes, level shifts and flat lines, labelled
>>> det.evaluate(test)                             # labels from the frame's is_anomaly column
{'n_flagged': ..., 'threshold': ..., 'precision': ..., 'recall': ..., 'f1': ..., 'event_recall': ...}
>>> det.detect(test)                               # ts, temperature, score, anomaly

How a series is scored (the same in Keras, in :class:`TFLiteAnomalyDetector` and on a phone):

1. Cut the series (T, F) into every window of ``window`` consecutive points (stride 1).
2. The model takes RAW windows (batch, window, F) float32, standardises them with the training
   data's mean and std (inside the model), reconstructs them through a small bottleneck and
   returns the per-step error (batch, window): the squared error of the standardised values,
   averaged over the features.
3. A point's score is the median of the errors it got in the windows covering it (the median
   keeps an anomaly from raising the scores of its normal neighbours); the point is an anomaly
   when its score exceeds ``threshold_`` = ``threshold_factor`` x the ``threshold_quantile``
   quantile of the scores of the training series (default 2 x the 99th percentile: robust to
   1% of anomalies in the training data, with a margin for unseen normal data).

Training is robust (denoising): half of the training windows get a random segment offset or
held constant, and the model learns to reconstruct the clean window, so it does not follow
anomalies and its errors stay where they are. Series shorter than one window cannot be scored.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ExportPlan, Task, register_task
from ..config import (SERIES_OPTIONS, check_choice, check_int, check_number, out_option, series_source, setting,
                      strategy_setting, verbose_option)
from ..distributed import in_strategy_scope
from ..data.anomaly import (ANOMALY_KINDS, GENERATED_SERIES, AnomalySeries, OptionalColumn, as_anomaly_series,
                            load_anomaly_data, synthetic_sensor)
from ..errors import DataError, ExportError, ModelFormatError, ToolkitError
from ..serving import traced

__all__ = ["ANOMALY_KINDS", "ANOMALY_MODELS", "GENERATED_SERIES", "AnomalyDetector", "AnomalyDetectorConfig",
           "anomaly_metrics", "load_anomaly_data", "synthetic_sensor"]

ANOMALY_MODELS = ("lstm", "conv1d")
CHUNK = 1024  # windows per model call


def _windows(values: np.ndarray, window: int) -> np.ndarray:
    """Every window of ``window`` points, stride 1: (T - window + 1, window, F), a read-only view."""
    if len(values) < window:
        raise DataError(f"Expected a series of at least window={window} points. Received {len(values)} points. "
                        f"Pass a longer series (>= {window} points) or train with a smaller window.")
    return np.lib.stride_tricks.sliding_window_view(values, (window, values.shape[1]))[:, 0]


def _point_scores(errors: np.ndarray, length: int) -> np.ndarray:
    """Per-window errors (N, W) -> per-point scores (T,): the median of the errors a point got in
    the windows covering it (W of them inside the series, fewer near its ends)."""
    n, window = errors.shape
    k = np.arange(window)[None, :]
    out = np.empty(length)
    for a in range(0, length, 65536):
        s = np.arange(a, min(length, a + 65536))[:, None] - k  # the window starting at s holds the point at k
        inside = (s >= 0) & (s < n)
        out[a : a + len(s)] = np.nanmedian(np.where(inside, errors[np.clip(s, 0, n - 1), k], np.nan), axis=1)
    return out


def anomaly_metrics(flags: Any, labels: Any, scores: Any = None) -> dict:
    """Point-wise precision / recall / F1; ``event_recall``: the share of labelled events (runs of
    consecutive anomalous points) with at least one flagged point; with ``scores``, the average
    precision of the ranking (threshold-free). Labels without anomalies give only the counts."""
    flags, labels = np.asarray(flags, bool), np.asarray(labels, bool)
    if not labels.any():  # recall is undefined: only the counts
        return {"n_events": 0, "n_anomalies": 0}
    tp = int(np.sum(flags & labels))
    precision, recall = tp / max(1, int(flags.sum())), tp / max(1, int(labels.sum()))
    edges = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    events = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
    out = {"precision": precision, "recall": recall,
           "f1": 2 * precision * recall / (precision + recall) if tp else 0.0,
           "event_recall": float(np.mean([flags[a:b].any() for a, b in events])) if events else 0.0,
           "n_events": len(events), "n_anomalies": int(labels.sum())}
    if scores is not None:
        hits = labels[np.argsort(-np.asarray(scores), kind="stable")]
        out["average_precision"] = float(np.mean(np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)))
    return {k: float(v) if isinstance(v, float) else v for k, v in out.items()}


# ====================================================================== scoring (Keras and TFLite)
class AnomalyScoring:
    """score / predict / detect / evaluate on top of ``window_errors(windows (N, W, F)) -> (N, W)``."""

    window: int
    threshold_: float | None
    columns_: list | None
    time_column_: str | None

    def window_errors(self, windows: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _series(self, data: Any) -> AnomalySeries:
        return as_anomaly_series(data, self.columns_, None if self.time_column_ is None else OptionalColumn(self.time_column_))

    def _scores(self, values: np.ndarray) -> np.ndarray:
        windows = _windows(values, self.window)
        errors = [self.window_errors(np.ascontiguousarray(windows[i : i + CHUNK])) for i in range(0, len(windows), CHUNK)]
        return _point_scores(np.concatenate(errors), len(values))

    def score(self, data: Any) -> np.ndarray:
        """Per-point anomaly scores, float (T,); a 3-D array (N, T, F) of N series gives (N, T)."""
        if isinstance(data, np.ndarray) and data.ndim == 3:
            return np.stack([self.score(x) for x in data])
        return self._scores(self._series(data).values)

    def predict(self, data: Any) -> np.ndarray:
        """Anomaly flags (bool). One sample is a whole series -> (T,): an array (T,) or (T, F), a
        DataFrame, a pandas Series, a SeriesData or a CSV path. A batch is a 3-D array (N, T, F) of
        series -> (N, T). Each series needs at least ``window`` points; one window (window, F)
        gives flags for its own points."""
        return self.score(data) > self.threshold_

    def detect(self, data: Any):
        """A DataFrame: the time column (or ``time``: steps), the value columns, ``score`` and
        ``anomaly`` (bool), one row per point."""
        import pandas as pd

        series = self._series(data)
        scores = self._scores(series.values)
        frame = pd.DataFrame({series.time_name or "time": series.time})
        for i, name in enumerate(series.columns):
            frame[name] = series.values[:, i]
        frame["score"], frame["anomaly"] = scores, scores > self.threshold_
        return frame

    def evaluate(self, data: Any, labels: Any = None) -> dict:
        """``n_points``, ``n_flagged``, ``share_flagged`` and ``threshold``; with labels (``labels``,
        one 0/1 per point, or the frame's ``is_anomaly``/``anomaly``/``label`` column) also
        point-wise ``precision``/``recall``/``f1``, ``event_recall``, ``average_precision``,
        ``n_events`` and ``n_anomalies`` (see :func:`anomaly_metrics`)."""
        series = self._series(data)
        scores = self._scores(series.values)
        flags = scores > self.threshold_
        out = {"n_points": len(flags), "n_flagged": int(flags.sum()), "share_flagged": float(flags.mean()),
               "threshold": float(self.threshold_)}
        labels = series.labels if labels is None else np.asarray(labels).reshape(-1)
        if labels is not None:
            if len(labels) != len(flags):
                raise DataError(f"Expected one label per point ({len(flags)}). Received {len(labels)} labels.")
            out.update(anomaly_metrics(flags, np.asarray(labels).astype(bool), scores))
        return out


# ====================================================================== Keras parts
_KERAS: dict = {}


def _keras_parts() -> dict:
    """The custom layers (registered on first use, before building or loading) and the trainer's
    batches."""
    if _KERAS:
        return _KERAS
    import keras

    @keras.saving.register_keras_serializable(package="toolkit")
    class AnomalyStandardize(keras.layers.Layer):
        """(x - mean) / std per feature, with the training data's statistics in the config."""

        def __init__(self, mean, std, **kwargs):
            super().__init__(**kwargs)
            self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]

        def call(self, x):
            return (x - np.asarray(self.mean, np.float32)) * (1.0 / np.asarray(self.std, np.float32))

        def get_config(self):
            return {**super().get_config(), "mean": self.mean, "std": self.std}

    @keras.saving.register_keras_serializable(package="toolkit")
    class ReconstructionError(keras.layers.Layer):
        """[target, reconstruction], each (B, W, F) -> mean squared error over features (B, W)."""

        def call(self, inputs):
            return keras.ops.mean(keras.ops.square(inputs[0] - inputs[1]), axis=-1)

    class Batches(keras.utils.PyDataset):
        """Shuffled training windows, corrupted afresh each epoch: ((corrupted, clean), zeros)."""

        def __init__(self, x, cfg, scale):
            super().__init__()
            self.x, self.cfg, self.scale = x, cfg, scale.astype(np.float32)
            self.rng = np.random.default_rng(cfg.seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return -(-len(self.x) // self.cfg.batch_size)

        def __getitem__(self, i):
            clean = self.x[np.sort(self.order[i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size])]
            noisy = _corrupt(clean, self.cfg.corruption, self.scale, self.rng)
            return (noisy, clean), np.zeros(clean.shape[:2], np.float32)

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(self.x))

    _KERAS.update(AnomalyStandardize=AnomalyStandardize, ReconstructionError=ReconstructionError, Batches=Batches)
    return _KERAS


def _corrupt(clean: np.ndarray, rate: float, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Robust-training input: ``rate`` of the windows get one random segment (one point 30% of the
    time, else 2 to window/2 points) offset by N(0, 3 std), or held at its first value."""
    out = clean.copy()
    n, w, f = out.shape
    for i in np.flatnonzero(rng.random(n) < rate):
        length = 1 if rng.random() < 0.3 else int(rng.integers(2, w // 2 + 1))
        start = int(rng.integers(0, w - length + 1))
        if rng.random() < 0.5:
            out[i, start : start + length] += rng.normal(0, 3, f) * scale
        else:
            out[i, start : start + length] = out[i, start]
    return out


def _build(cfg: "AnomalyDetectorConfig", n_features: int, mean, std):
    """(model, trainer): raw window -> per-step errors, and, sharing its layers,
    (corrupted window, clean window) -> per-step errors of the clean window's reconstruction."""
    import keras
    from keras import layers

    parts = _keras_parts()
    standardize = parts["AnomalyStandardize"](mean, std, name="standardize")
    if cfg.model == "lstm":
        stack = [layers.LSTM(cfg.units, name="encoder"), layers.Dense(cfg.latent, name="latent"),
                 layers.RepeatVector(cfg.window, name="repeat"),
                 layers.LSTM(cfg.units, return_sequences=True, name="decoder")]
    else:
        conv = dict(kernel_size=5, strides=2, padding="same", activation="relu")
        stack = [layers.Conv1D(cfg.units, name="encoder_0", **conv), layers.Conv1D(cfg.units, name="encoder_1", **conv),
                 layers.Flatten(name="flatten"), layers.Dense(cfg.latent, name="latent"),
                 layers.Dense(cfg.window // 4 * cfg.units, activation="relu", name="expand"),
                 layers.Reshape((cfg.window // 4, cfg.units), name="unflatten"),
                 layers.Conv1DTranspose(cfg.units, name="decoder_0", **conv),
                 layers.Conv1DTranspose(cfg.units, name="decoder_1", **conv)]
    stack.append(layers.Dense(n_features, name="reconstruction"))
    error = parts["ReconstructionError"](name="reconstruction_error")

    def reconstruct(z):
        for layer in stack:
            z = layer(z)
        return z

    window = keras.Input((cfg.window, n_features), name="window")
    z = standardize(window)
    model = keras.Model(window, error([z, reconstruct(z)]), name=f"anomaly_autoencoder_{cfg.model}")
    noisy, clean = keras.Input((cfg.window, n_features)), keras.Input((cfg.window, n_features))
    trainer = keras.Model([noisy, clean], error([standardize(clean), reconstruct(standardize(noisy))]))
    return model, trainer


def _unrolled_copy(model):
    """The model with its LSTM layers unrolled (same weights), so TFLite needs builtin ops only."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.LSTM):
            config["unroll"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


# ====================================================================== config
@dataclasses.dataclass(frozen=True)
class AnomalyDetectorConfig:
    """Settings of an :class:`AnomalyDetector`; make variants with ``dataclasses.replace``.

    model: ``"lstm"`` (LSTM encoder -> latent -> repeated -> LSTM decoder) or ``"conv1d"`` (two
        strided Conv1D -> latent -> two Conv1DTranspose; ``window`` must be a multiple of 4).
    window: points per window (48 hourly points: two daily cycles).
    units / latent: width of the recurrent or convolutional layers / of the bottleneck.
    epochs / batch_size / learning_rate / patience: Adam, early stopping on the last
        ``validation_split`` of the training series (by time; best weights restored).
    corruption: share of training windows corrupted for robust training (0: a plain autoencoder).
    threshold_quantile / threshold_factor: ``threshold_`` = factor x this quantile of the
        training series' point scores.
    seed: seeds the weights, the shuffling and the corruption.
    """

    model: str = setting("lstm", "lstm or conv1d (window a multiple of 4) autoencoder", choices=ANOMALY_MODELS)
    window: int = setting(48, "points per window", tune=(8, 128))
    units: int = setting(32, "width of the recurrent or convolutional layers", tune=(8, 128))
    latent: int = setting(8, "size of the bottleneck", tune=(2, 32))
    epochs: int = setting(40, "early stopping may end sooner", tune=(5, 100))
    batch_size: int = setting(64, "windows per training step", tune=(16, 256))
    learning_rate: float = setting(3e-3, "Adam's learning rate", tune=(1e-4, 1e-2))
    patience: int = setting(5, "early-stopping patience in epochs", tune=(2, 20))
    corruption: float = setting(0.5, "share of training windows corrupted for robust training (0: plain)",
                                tune=(0.0, 0.8))
    threshold_quantile: float = setting(0.99, "quantile of the training scores the threshold starts from",
                                        tune=(0.9, 0.999))
    threshold_factor: float = setting(2.0, "threshold = factor x that quantile", tune=(1.0, 4.0))
    validation_split: float = setting(0.2, "last share of the training series for early stopping")
    seed: int = setting(0, "seeds the weights, the shuffling and the corruption")
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        check_choice("model", self.model, ANOMALY_MODELS)
        check_int(self, "window", "units", "latent", "epochs", "batch_size", "patience")
        check_int(self, "seed", low=0)
        if self.window < 4 or (self.model == "conv1d" and self.window % 4):
            raise ValueError(f"window must be >= 4 (and a multiple of 4 for conv1d). Received {self.window}.")
        check_number(self, "learning_rate", 0, 1, low_closed=False)
        check_number(self, "corruption", 0, 1)
        check_number(self, "threshold_quantile", 0.5, 1)
        check_number(self, "threshold_factor", 0, 100, low_closed=False)
        check_number(self, "validation_split", 0, 0.5)


# ====================================================================== task
@register_task("anomaly_detector", aliases=("anomaly",))
class AnomalyDetector(AnomalyScoring, Task):
    """Robust-autoencoder anomaly detector over sliding windows of a (multivariate) series.

    ``fit`` takes (mostly) normal data. ``score``/``predict``/``detect``/``evaluate`` take a
    series: numpy (T,) or (T, F), a DataFrame (value columns: the training ones; at fit time
    ``target``/``features``, or every numeric column but the time and label columns), a pandas
    Series, a SeriesData or a CSV path. ``model_`` maps raw windows (B, window, F) float32 to
    per-step reconstruction errors (B, window); see the module docstring for the scoring.
    """

    tags = frozenset({"anomaly_detector"})
    input_kind = "series"
    explain_methods = ("shap", "lime")
    runner = "toolkit.timeseries.lite:TFLiteAnomalyDetector"
    recipe_options = (*SERIES_OPTIONS, out_option(), verbose_option(0))

    config_class = AnomalyDetectorConfig
    compression_refusal = ("the autoencoder's standardization and reconstruction-error layers are toolkit "
                           "layers (AnomalyStandardize, ReconstructionError) without tf_keras twins, and it is "
                           "not a classifier")

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, **options: Any) -> dict:
        """Fit on the series (its label column, if any, only scores the result), save to ``out``;
        returns {out, threshold, metrics}."""
        from ..config import config_and_options

        config, opts = config_and_options(cls.config_class, cls.recipe_options, options)
        series, labels = load_anomaly_data(opts["data"], **series_source(opts))
        detector = cls(config).fit(series, verbose=opts["verbose"])
        detector.data_spec_ = dict(series.spec)
        detector.metrics_ = {"train_" + k: v for k, v in detector.evaluate(series, labels=labels).items()}
        detector.command_ = command
        directory = detector.save(out)
        return {"out": str(directory), "threshold": detector.threshold_, "metrics": detector.metrics_}

    def __init__(self, config: AnomalyDetectorConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.threshold_: float | None = None
        self.columns_: list | None = None
        self.time_column_: str | None = None
        self.normalization_: dict = {}
        self.training_: dict = {}
        self._serve = None

    @property
    def window(self) -> int:
        return self.config.window

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "AnomalyDetector":
        _keras_parts()  # register the custom layers before Keras reads the model
        return super().load(directory)

    def _series(self, data: Any) -> AnomalySeries:
        return super()._series(self.load_data(data))

    def window_errors(self, windows: np.ndarray) -> np.ndarray:
        if self._serve is None:
            import tensorflow as tf

            model = self.model_
            spec = tf.TensorSpec((None, self.window, len(self.columns_)), tf.float32)
            self._serve = traced(model, spec)
        return self._serve(windows).numpy()

    @in_strategy_scope  # windows are batches of arrays: sharded by element
    def fit(self, data: Any, validation_data: Any = None, time_column: str | None = None, target: str | None = None,
            features: list | None = None, verbose: int = 0, **overrides: Any) -> "AnomalyDetector":
        """Train on a (mostly) normal series and set ``threshold_``. Returns ``self``.

        Early stopping watches the last ``validation_split`` of the series, or ``validation_data``
        (another series with the same columns). ``time_column``/``target``/``features`` pick the
        columns of a DataFrame or CSV; later calls read the same columns.
        """
        import keras

        if overrides:
            self.config = dataclasses.replace(self.config, **overrides)
        cfg, start = self.config, time.perf_counter()
        series = as_anomaly_series(data, None, time_column, target, features)
        values, w = series.values, cfg.window
        if series.labels is not None and series.labels.any():
            warnings.warn(f"{int(series.labels.sum())} of the {len(values)} training points are labelled anomalies; "
                          "fit() expects (mostly) normal data, which sets the threshold.", stacklevel=2)
        if validation_data is not None:
            optional = None if series.time_name is None else OptionalColumn(series.time_name)
            train, val = values, as_anomaly_series(validation_data, series.columns, optional).values
        else:
            n_val = int(len(values) * cfg.validation_split)
            train, val = (values[:-n_val], values[-n_val:]) if n_val >= w and len(values) - n_val >= w else (values, None)
        x = np.ascontiguousarray(_windows(train, w))
        if len(x) < 2 * cfg.batch_size:
            warnings.warn(f"Only {len(x)} training windows; a longer normal series gives a more reliable model "
                          "and threshold.", stacklevel=2)
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std > 1e-6 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        keras.utils.set_random_seed(cfg.seed)
        self.model_, trainer = _build(cfg, values.shape[1], mean, std)
        # Errors >= 0, so the mean absolute error against zeros is the mean squared reconstruction error.
        trainer.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="mean_absolute_error")
        val_data = None if val is None else ((_windows(val, w),) * 2, np.zeros((len(val) - w + 1, w), np.float32))
        stop = keras.callbacks.EarlyStopping(monitor="val_loss" if val_data else "loss", patience=cfg.patience,
                                             restore_best_weights=True)
        history = trainer.fit(_keras_parts()["Batches"](x, cfg, std), epochs=cfg.epochs, validation_data=val_data,
                              callbacks=[stop], verbose=verbose)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.columns_, self.time_column_, self._serve = list(series.columns), series.time_name, None
        self.normalization_ = {"mean": mean.tolist(), "std": std.tolist()}
        scores = self._scores(values)
        self.threshold_ = float(cfg.threshold_factor * np.quantile(scores, cfg.threshold_quantile))
        self.data_spec_ = {"time_column": self.time_column_, **series.spec, "columns": self.columns_,
                           "n_points": len(values)}
        self.training_ = {"epochs_run": len(self.history_["loss"]), "n_windows": len(x),
                          "n_validation_windows": 0 if val is None else len(val) - w + 1,
                          "seconds": round(time.perf_counter() - start, 2)}
        self.metrics_ = {"train_share_flagged": float(np.mean(scores > self.threshold_))}
        self.tflite_, self.directory_ = [], None
        return self

    def load_data(self, source: Any) -> Any:
        """A CSV path, a generated or built-in name -> a DataFrame with this model's columns (and
        ``is_anomaly`` when the source has labels), loaded like the training data; other data as is."""
        import pandas as pd

        self._check_fitted()
        if not isinstance(source, (str, os.PathLike)):
            return source
        spec = self.data_spec_ or {}
        series, labels = load_anomaly_data(source, False if spec.get("time_column") is False else None,
                                           self.columns_[0], self.columns_[1:] or None, spec.get("resample"))
        frame = series.to_frame()
        name = series.spec.get("time_column")
        frame = frame.rename_axis(name if isinstance(name, str) else "time").reset_index(
            drop=not isinstance(frame.index, pd.DatetimeIndex))
        if labels is not None:
            frame["is_anomaly"] = labels.astype(np.int64)
        return frame

    def reload_data(self) -> Any:
        """The training series again when the card says where it came from (generated, a CSV path
        or a built-in name), else None."""
        spec = dict(self.data_spec_ or {})
        if spec.get("source") == "synthetic_sensor":
            return synthetic_sensor(spec["n"], spec["seed"], spec["anomalies"], spec["kinds"])
        source = spec.get("source")
        if isinstance(source, str) and source not in ("array", "dataframe", "series"):
            return self.load_data(source)
        return None

    def explain(self, x: Any = None, method: str | None = None, **_: Any):
        raise ToolkitError("AnomalyDetector has no explain(): its scores are already per point. Use detect(data) for "
                           "each point's score, or model_ for the per-window reconstruction errors.")

    # ================================================================== save / load
    def _card_extra(self) -> dict:
        w, f = self.window, len(self.columns_)
        return {
            "input": {"dtype": "float32", "shape": [w, f], "columns": self.columns_, "time_column": self.time_column_,
                      "description": f"raw values of {w} consecutive points (every window of the series, stride 1)"},
            "output": {"dtype": "float32", "shape": [w], "description": "per-step reconstruction error: squared error "
                       "of the standardised values, mean over features"},
            "threshold": self.threshold_,
            "scoring": "point score = median of its errors over the windows covering it; anomaly if score > threshold",
            "normalization": self.normalization_,
            "training": self.training_,
        }

    def _load_extra(self, directory: Path, card: dict) -> None:
        try:
            self.threshold_ = float(card["threshold"])
            self.columns_ = list(card["input"]["columns"])
            self.time_column_ = card["input"].get("time_column")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{directory} lacks the threshold or columns of an anomaly detector ({exc}). "
                                   "Re-save the model.") from exc
        self.normalization_ = dict(card.get("normalization") or {})
        self.training_ = dict(card.get("training") or {})
        self._serve = None

    # ================================================================== export
    def _export_plan(self, data: Any, quantization: str, **options: Any) -> ExportPlan:
        """The file takes raw windows float32 (1, window, F) (int8 for ``int8``; any batch after a
        resize) and returns per-step errors (1, window) (LSTMs unrolled); score points as in the
        module docstring and compare with the card's ``threshold``. ``data`` (default
        :meth:`reload_data`) gives up to 256 check windows (and the int8 calibration)."""
        data = self.reload_data() if data is None else data
        if data is None:
            raise ExportError("Pass data=... (a series like the training data) to check the export on.")
        windows = _windows(self._series(data).values, self.window)
        check = np.ascontiguousarray(windows[np.linspace(0, len(windows) - 1, min(256, len(windows))).astype(int)])
        return ExportPlan(_unrolled_copy(self.model_), representative=check, check=(check, data), sample=check[:1])

    def _export_checks(self, runner: Any, plan: ExportPlan) -> dict:
        """The largest difference to Keras, flag agreement and the file's metrics on the data."""
        check, data = plan.check
        keras_err, lite_err = self.window_errors(check), runner.window_errors(check)
        difference = float(np.max(np.abs(keras_err - lite_err)))
        return {
            "input": {"dtype": runner.session.input_dtype(), "shape": [1, self.window, len(self.columns_)],
                      "columns": self.columns_, "quantization": runner.session.quantization["input"]},
            "output": {"dtype": "float32", "shape": [1, self.window], "description": "per-step reconstruction error"},
            "threshold": self.threshold_,
            "max_abs_difference": difference,
            "relative_difference": difference / max(float(np.max(np.abs(keras_err))), 1e-12),
            "flag_agreement": float(np.mean((keras_err > self.threshold_) == (lite_err > self.threshold_))),
            "n_check_windows": len(check),
            "metrics": runner.evaluate(data),
        }
