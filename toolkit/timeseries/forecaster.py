"""Forecasting: direct multi-step models over windows, with quantile intervals and honest baselines.

The Keras model takes a raw window of the last ``window`` rows, shape (batch, window, F), column
0 the target and then the features, and returns the p10 / p50 / p90 forecasts of the target for
the next ``horizon`` steps, shape (batch, horizon, 3). Scaling (fitted on the training part only)
is inside the model, so a phone feeds raw values and reads raw forecasts:

- ``WindowScaler`` turns the window into the target relative to its last value, the target's
  level and the features, each divided by its training standard deviation;
- a core network (``lstm``, ``gru``, ``conv1d``, ``transformer`` or the ``dense`` baseline) plus
  a linear autoregressive path over the same scaled window;
- ``QuantileHead`` adds the last value back and orders the quantiles (p10 <= p50 <= p90).

The quantiles are trained with the pinball loss and then calibrated on the validation windows
(conformalized quantile regression, Romano et al. 2019): each step's interval is widened or
narrowed so that 80% of the validation targets fall inside it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..base import ExportPlan, Task, register_task
from ..config import (SERIES_OPTIONS, check_choice, check_non_negative, check_positive, check_range,
                      out_option, series_source, setting, strategy_setting, verbose_option)
from ..data.series import (SeriesData, future_times, load_series, load_series_like, make_windows, min_length_error,
                           reload_series)
from ..distributed import in_strategy_scope
from ..errors import DataError
from ..serving import traced
from .baselines import BacktestResult, backtest, detect_seasonality, forecast_metrics, rolling_cutoffs
from .blend import BLENDS, export_model, fit_blend
from .classical import CLASSICAL
from .ensemble import PICKS, Pick, combine, half_widths, member_forecasts, refresh_members, validation_pick
from .other_series import OtherSeries
from .layers import LOG_RANGE, QUANTILES, build_network, forecaster_layers, use_log

MODELS = ("lstm", "gru", "conv1d", "transformer", "dense", "nbeats")
NETWORK_CHOICES = (*MODELS, *BLENDS)  # a blend: the mean of several architectures (.blend)
TRANSFORMS = ("auto", "log", "none")
COVERAGE = QUANTILES[2] - QUANTILES[0]
BACKGROUND_FILE, LAST_WINDOW_FILE = "background.npy", "last_window.npy"
BACKGROUND_SIZE = 50
MIN_TRAIN_WINDOWS = 8
MIN_EPOCH_STEPS = 32  # training steps per Keras epoch at least (see _fit_network)
STEPS_PER_EXECUTION = 16  # training steps per traced call (small series: the Python overhead dominates)
PICKED = "picked"  # the backtest row of the picked forecaster (pick="auto") when it is not the network alone


@dataclasses.dataclass(frozen=True)
class ForecasterConfig:
    """Settings of a :class:`Forecaster`; make variants with ``dataclasses.replace``.

    model: ``"lstm"``, ``"gru"``, ``"conv1d"`` (dilated causal convolutions), ``"transformer"``
        (self-attention with learned positions), ``"dense"`` (a multilayer perceptron baseline) or
        ``"nbeats"`` (N-BEATS trend + generic blocks on the window's changes); ``"lstm+nbeats"``
        averages an LSTM and an N-BEATS forecaster, each trained on its own (:mod:`.blend`).
    horizon: steps forecast at once (direct multi-step output).
    window: past rows the model sees; ``None`` picks season + 2 when the series has a season
        (detected or ``seasonality``), else max(horizon, 8).
    transform: ``"log"`` trains on the log of a positive target; ``"auto"`` does when its max /
        min exceeds ``LOG_RANGE``.
    seasonality: season length for seasonal naive and MASE; ``None`` detects it (ACF).
    units / dropout / noise: size of the core network, dropout after it, Gaussian noise on its
        scaled input (both regularise small series).
    test_size: share (or count) of the series held out for the backtest by ``toolkit train``.
    validation_split: the latest share of the training windows, for early stopping and for
        calibrating the intervals.
    """

    model: str = setting("lstm", "network: lstm, gru, conv1d, transformer, dense, nbeats or lstm+nbeats (their mean)",
                         choices=NETWORK_CHOICES)
    horizon: int = setting(10, "steps forecast at once", tune=(1, 48))
    window: int | None = setting(None, "past rows the model sees (default: season + 2, or max(horizon, 8))", tune=(4, 96))
    seasonality: int | None = setting(None, "season length for seasonal naive and MASE (default: detected)")
    units: int = setting(16, "size of the network", tune=(4, 128))
    dropout: float = setting(0.2, "dropout after the core network", tune=(0.0, 0.5))
    noise: float = setting(0.05, "Gaussian noise on the scaled input while training", tune=(0.0, 0.2))
    epochs: int = setting(200, "early stopping may end sooner", tune=(50, 1000))
    batch_size: int = setting(32, "windows per training step", tune=(8, 128))
    learning_rate: float = setting(1e-3, "Adam's learning rate", tune=(1e-4, 1e-2))
    patience: int = setting(30, "early-stopping patience in epochs", tune=(10, 100))
    validation_split: float = setting(0.15, "latest share of training windows for early stopping and interval "
                                            "calibration", tune=(0.05, 0.3))
    test_size: float = setting(0.2, "share (or count, if >= 1) of the series held out for the backtest")
    seed: int = setting(0, "seeds the weights and the shuffling")
    classical: tuple[str, ...] = setting(CLASSICAL, "classical models in every backtest beside the baselines ('none': "
                                                    "skip them)", choices=(*CLASSICAL, "none"))
    transform: str = setting("auto", "log: the network works on the log of a positive target (multiplicative "
                                     "series); none: on its values; auto: log when the target is positive and its "
                                     f"max / min > {LOG_RANGE}", choices=TRANSFORMS)
    pick: str = setting("network", "auto: the network, a classical model or their ensemble, whichever wins a validation "
                                   "backtest on the training part (toolkit train's default); network: the network alone",
                        choices=PICKS)
    strategy: Any = strategy_setting()

    def __post_init__(self) -> None:
        check_choice("model", self.model, NETWORK_CHOICES)
        check_choice("pick", self.pick, PICKS)
        check_choice("transform", self.transform, TRANSFORMS)
        picked = tuple(self.classical) if self.classical and "none" not in self.classical else ()
        for name in picked:
            check_choice("classical", name, CLASSICAL)
        object.__setattr__(self, "classical", tuple(dict.fromkeys(picked)))
        check_positive(self, "horizon", "units", "epochs", "batch_size", "learning_rate", "patience")
        for name in ("window", "seasonality"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (2 if name == "window" else 1)):
                raise ValueError(f"{name} must be None or an integer >= {2 if name == 'window' else 1}. Received {value!r}.")
        check_range("dropout", self.dropout, 0, 1, high_closed=False)
        check_non_negative(self, "noise")
        check_range("validation_split", self.validation_split, 0, 0.5, low_closed=False, high_closed=False)
        if not 0 < self.test_size:
            raise ValueError(f"test_size must be > 0 (a share below 1 or a count). Received {self.test_size}.")


def _as_series(data: Any, what: str = "data") -> SeriesData:
    if isinstance(data, SeriesData):
        return data
    if data is None:
        raise DataError(f"Expected {what}: a CSV path, 'sunspots'/'co2', an array or a DataFrame. Received None.")
    return load_series(data)


# ============================================================================ the task


@register_task("forecaster", aliases=("timeseries",))
class Forecaster(OtherSeries, Task):
    """Forecast the next ``horizon`` values of a series (and its 80% interval) from its recent past.

    >>> fc = Forecaster(ForecasterConfig(horizon=10)).fit("sunspots")
    >>> fc.forecast("sunspots")                 # DataFrame: time, p10, p50, p90
    >>> fc.evaluate("sunspots")["verdict"]      # backtest against naive, seasonal naive and drift
    >>> fc.save("my_forecaster"); fc.export("my_forecaster", quantization="float32")
    """

    tags = frozenset({"forecaster"})
    input_kind = "series"
    explain_methods = ("shap", "lime")
    runner = "toolkit.timeseries.lite:TFLiteForecaster"
    recipe_options = (*SERIES_OPTIONS, out_option(), verbose_option(0))

    config_class = ForecasterConfig
    compression_refusal = ("the forecaster's in-model scaling and quantile head are toolkit layers (WindowScaler, "
                           "QuantileHead) without tf_keras twins, and it is trained on a pinball loss, not classes")

    @classmethod
    def train_recipe(cls, out, *, command: str | None = None, **options: Any) -> dict:
        """Fit on the series but its last ``test_size``, backtest against the baselines, keep the
        whole series as the history to forecast from, save to ``out``; returns {out, epochs,
        window, season, metrics}. A series too short to train and backtest is a DataError saying
        how many rows it needs."""
        import math

        from ..config import config_and_options
        from ..data.series import load_series, split_series

        size = options.get("test_size")
        if size is not None and size >= 1:
            options = {**options, "test_size": int(size)}
        options = {**options, "pick": options.get("pick") or "auto"}  # train picks by validation unless told
        config, opts = config_and_options(cls.config_class, cls.recipe_options, options)
        series = load_series(opts["data"], **series_source(opts))
        model = cls(config)

        def needed() -> int:
            size, need = config.test_size, model.min_train_length()
            return need + int(size) if size >= 1 else max(need + config.horizon, math.ceil(need / (1 - size)))

        try:
            train, _ = split_series(series, config.test_size)
            model.fit(train, verbose=opts["verbose"])
        except DataError:
            if len(series) >= needed():
                raise
            raise DataError(
                f"{series.name!r} has {len(series)} rows; at least {needed()} are needed: "
                f"{model.min_train_length()} to train on (window {model.window_} + horizon {config.horizon} and "
                f"enough windows) and the held-out --test-size {config.test_size} for the backtest. Add rows, or "
                "use a smaller --window, --horizon or --test-size."
            ) from None
        model.set_history(series)  # `toolkit forecast` continues the whole series
        model.data_spec_ = dict(series.spec)
        model.metrics_ = model.evaluate(series)
        model.command_ = command
        directory = model.save(out)
        return {"out": str(directory), "epochs": len(model.history_["loss"]), "window": model.window_,
                "season": model.season_, "pick": model.metrics_.get("pick"), "metrics": model.metrics_}

    def __init__(self, config: ForecasterConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.columns_: list[str] = []
        self.window_: int | None = None
        self.season_: int | None = None
        self.frequency_: str | None = None
        self.last_time_: str | None = None
        self.scaling_: dict | None = None
        self.background_: np.ndarray | None = None
        self.last_window_: np.ndarray | None = None
        self.interval_widen_: list[float] = []
        self.pick_: Pick | None = None  # what pick="auto" chose (None: the network alone)
        self._serve = None  # (model, traced call) of _run

    # ================================================================== building
    def _build(self, n_features: int, mean, std, low=None, high=None, unroll: bool = False, log: bool = False):
        return build_network(self.config, self.window_, n_features, mean, std, low, high, unroll, log)

    def _auto_window(self) -> int:
        cfg = self.config
        if cfg.window is not None:
            return cfg.window
        return self.season_ + 2 if self.season_ else max(cfg.horizon, 8)

    # ================================================================== training
    @in_strategy_scope  # windows are arrays: Keras shards them by element
    def fit(self, data: Any, validation_data: Any = None, verbose: int = 0, callbacks: list | None = None) -> "Forecaster":
        """Train on ``data`` (all of it is training data: hold out a test part yourself, or use
        ``toolkit train``, which does). ``validation_data`` (a later stretch of the same series)
        replaces the latest ``validation_split`` of the training windows. ``pick="auto"``: a validation
        backtest on the end of ``data`` picks the network (``config.model`` or N-BEATS) and its members first."""
        series, pick = _as_series(data), None
        if self.config.pick == "auto":
            self.season_ = self.config.seasonality or detect_seasonality(series.target, frequency=series.frequency)
            self.window_ = self._auto_window()
            pick = validation_pick(self, series, verbose)
            if pick.network != self.config.model:
                self.config = dataclasses.replace(self.config, model=pick.network)
        (fit_blend if self.config.model in BLENDS else Forecaster._fit_network)(self, series, validation_data, verbose,
                                                                              callbacks)
        self.pick_ = pick
        refresh_members(self.pick_, series.target, self.season_, self.config.horizon)
        return self

    def _fit_network(self, series: SeriesData, validation_data: Any, verbose: int, callbacks: list | None) -> None:
        import keras

        cfg = self.config
        self.columns_ = list(series.columns)
        self.season_ = cfg.seasonality or detect_seasonality(series.target, frequency=series.frequency)
        self.window_ = self._auto_window()
        x, y = make_windows(series.values, self.window_, cfg.horizon)
        if validation_data is not None:
            val = _as_series(validation_data, "validation data")
            if list(val.columns) != self.columns_:
                raise DataError(f"Validation data has columns {val.columns}; the training data has {self.columns_}.")
            joined = np.concatenate([series.values[-self.window_:], val.values])
            xv, yv = make_windows(joined, self.window_, cfg.horizon)
        else:
            n_val = max(1, int(round(len(x) * cfg.validation_split)))
            # Drop the windows whose targets overlap the validation windows' targets.
            xv, yv = x[-n_val:], y[-n_val:]
            x, y = x[: max(0, len(x) - n_val - cfg.horizon + 1)], y[: max(0, len(y) - n_val - cfg.horizon + 1)]
        if len(x) < MIN_TRAIN_WINDOWS or len(xv) < 1:
            raise DataError(
                f"The series {series.name!r} has {len(series)} training points; at least {self.min_train_length()} "
                f"are needed (window {self.window_} + horizon {cfg.horizon}, and enough windows for "
                f"{MIN_TRAIN_WINDOWS} training and the validation windows). Use a smaller --window/--horizon or more data."
            )
        log = use_log(cfg.transform, series.target)
        values = series.values.astype("float64")
        raw_std = float(values[:, 0].std()) or 1.0
        if log:
            values = np.concatenate([np.log(values[:, :1]), values[:, 1:]], axis=1)
        mean = values.mean(axis=0).astype("float64")
        std = values.std(axis=0).astype("float64")
        std[std == 0] = 1.0
        std = np.concatenate([std[:1], std])  # the relative target channel uses the target's std
        mean = np.concatenate([[0.0], mean])
        low = ((values.min(axis=0) - mean[1:]) / std[1:]).tolist()
        high = ((values.max(axis=0) - mean[1:]) / std[1:]).tolist()
        keras.utils.set_random_seed(cfg.seed)
        self.model_ = self._build(series.n_features, mean, std, low, high, log=log)
        self.model_.compile(keras.optimizers.Adam(cfg.learning_rate), forecaster_layers()[2](raw_std),
                            steps_per_execution=STEPS_PER_EXECUTION)
        # Keras' per-epoch cost dominates short series: an epoch makes `passes` passes (epochs, patience count
        # passes), unless callbacks (a time budget, say) are given: they see every pass as an epoch.
        passes = 1 if callbacks else max(1, min(cfg.epochs, MIN_EPOCH_STEPS * cfg.batch_size // len(x)))
        stop = keras.callbacks.EarlyStopping(patience=max(1, -(-cfg.patience // passes)), restore_best_weights=True)
        history = self.model_.fit(np.concatenate([x] * passes), np.concatenate([y] * passes), validation_data=(xv, yv),
                                  epochs=max(1, cfg.epochs // passes), batch_size=cfg.batch_size, shuffle=True,
                                  verbose=verbose, callbacks=[stop, *(callbacks or [])])
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.passes_per_epoch_ = passes
        self._calibrate(xv, yv, float(std[0]), log)
        self.scaling_ = {"mean": mean[1:].tolist(), "std": std[1:].tolist()}
        self.frequency_ = series.frequency
        self.last_time_ = str(series.index[-1])
        rng = np.random.default_rng(cfg.seed)
        pick = rng.choice(len(x), min(BACKGROUND_SIZE, len(x)), replace=False)
        self.background_ = x[np.sort(pick)]
        self.last_window_ = series.values[-self.window_:].astype(np.float32)
        self.data_spec_ = dict(series.spec)

    def min_train_length(self) -> int:
        """The shortest training series ``fit`` accepts with this window and horizon."""
        cfg = self.config
        window = self.window_ or self._auto_window()
        windows = int(np.ceil((MIN_TRAIN_WINDOWS + cfg.horizon) / (1 - cfg.validation_split))) + 1
        return window + cfg.horizon - 1 + windows

    def set_history(self, data: Any) -> "Forecaster":
        """Make the end of ``data`` (the whole series, say, after training on its first part) the
        default history of :meth:`forecast`, so that ``forecast()`` continues the series."""
        self._check_fitted()
        series = _as_series(data, "history")
        self.last_window_ = self._history(series).astype(np.float32)
        self.last_time_, self.frequency_ = str(series.index[-1]), series.frequency
        refresh_members(self.pick_, series.target, self.season_, self.config.horizon)
        return self

    def _calibrate(self, xv: np.ndarray, yv: np.ndarray, std: float, log: bool = False) -> None:
        """Conformalized quantile regression: per step, widen (or narrow) the interval by the
        quantile of the validation conformity scores that gives 80% coverage (on log scale for a
        log model, where the head adds the widening)."""
        head = self.model_.get_layer("forecast")
        head.widen.assign(np.zeros(self.config.horizon, np.float32))
        pred = self._run(xv)
        if log:
            pred, yv = np.log(np.maximum(pred, 1e-12)), np.log(np.maximum(yv, 1e-12))
        scores = np.maximum(pred[..., 0] - yv, yv - pred[..., 2]) / std  # (n, H); <= 0 inside
        n = len(yv)
        level = min(1.0, np.ceil((n + 1) * COVERAGE) / n)
        widen = np.quantile(scores, level, axis=0, method="higher").astype(np.float32)
        head.widen.assign(widen)
        self.interval_widen_ = widen.tolist()

    # ================================================================== prediction
    def _run(self, windows: np.ndarray) -> np.ndarray:
        """(N, W, F) raw windows -> (N, H, 3) quantiles, in chunks, through a traced function
        (an eager LSTM call costs about 25 ms on two cores, the traced one about 1 ms)."""
        if self._serve is None or self._serve[0] is not self.model_:
            import tensorflow as tf

            model = self.model_
            spec = tf.TensorSpec((None, self.window_, len(self.columns_)), tf.float32)
            self._serve = (model, traced(model, spec))
        serve = self._serve[1]
        windows = np.asarray(windows, np.float32)
        out = [serve(windows[i : i + 1024]).numpy() for i in range(0, len(windows), 1024)]
        return np.concatenate(out) if out else np.zeros((0, self.config.horizon, 3), np.float32)

    def _windows(self, x: Any) -> np.ndarray:
        """One window (W, F) or (W,) for a univariate model, a batch (N, W, F), or a series (its last window)."""
        self._check_fitted()
        n_features = len(self.columns_)
        if isinstance(x, (SeriesData, str, os.PathLike)) or type(x).__module__.startswith("pandas"):
            return self._history(x)[None]
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 1 and n_features == 1:
            arr = arr[:, None]
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != (self.window_, n_features):
            raise DataError(
                f"Expected windows of shape ({self.window_}, {n_features}) (the last {self.window_} rows of "
                f"{self.columns_}) or a batch of them. Received shape {np.shape(x)}. Pass a series to forecast "
                "from its end instead."
            )
        if not np.isfinite(arr).all():
            raise DataError("The window holds NaN or infinite values. Fill or drop them first.")
        return arr

    def _history(self, history: Any) -> np.ndarray:
        """The last ``window`` rows of a series with this model's columns."""
        series = self._read_history(history)
        if series.n_features != len(self.columns_):
            raise DataError(
                f"This model was trained on {len(self.columns_)} columns {self.columns_}; the history has "
                f"{series.columns}. Load it with target={self.columns_[0]!r}"
                + (f" and features={self.columns_[1:]}." if len(self.columns_) > 1 else ".")
            )
        if len(series) < self.window_:
            raise DataError(
                f"Forecasting needs at least the last {self.window_} values (the model's window). "
                f"Received {len(series)}. Pass a longer history."
            )
        return series.values[-self.window_:]

    def _read_history(self, history: Any) -> SeriesData:
        """A series; files and built-in names are read with this model's columns (like ``load_data``)."""
        if isinstance(history, (str, os.PathLike)):
            return load_series_like(history, self.columns_, self.data_spec_)
        return _as_series(history, "history")

    def predict(self, x: Any) -> np.ndarray:
        """Median (p50) forecasts, shape (N, horizon), for one window, a batch, or a series' end."""
        return self._run(self._windows(x))[..., 1]

    def predict_quantiles(self, x: Any) -> np.ndarray:
        """p10 / p50 / p90 forecasts, shape (N, horizon, 3)."""
        return self._run(self._windows(x))

    def forecast(self, history: Any = None, horizon: int | None = None):
        """The next ``horizon`` steps after ``history`` (default: the end of the training data, or
        of the series given to :meth:`set_history`; `toolkit train` sets the whole series) as a
        DataFrame with columns time, p10, p50, p90."""
        import pandas as pd

        self._check_fitted()
        horizon = self.config.horizon if horizon is None else horizon
        if not isinstance(horizon, (int, np.integer)) or not 1 <= horizon <= self.config.horizon:
            retrain = f", or retrain with --horizon {horizon}" if isinstance(horizon, int) and horizon > 1 else ""
            raise DataError(
                f"This model forecasts up to {self.config.horizon} steps at once (direct multi-step). Received "
                f"horizon={horizon!r}. Ask for 1-{self.config.horizon} steps{retrain}."
            )
        pick = self.pick_ if self.pick_ and self.pick_.half_width else None
        if history is None:
            window, last, frequency = self.last_window_, self.last_time_, self.frequency_
            members = {k: np.asarray(v["forecast"])[None] for k, v in pick.members.items()} if pick else {}
        else:
            series = self._read_history(history)
            window, last, frequency = self._history(series), str(series.index[-1]), series.frequency
            members = member_forecasts(pick, series.target, self.season_, self.config.horizon) if pick else {}
        quantiles = self._run(window[None])
        quantiles = (combine(pick, quantiles, members, members.pop("half_width", None)) if pick else quantiles)[0, :horizon]
        times = future_times(last, frequency, horizon)
        return pd.DataFrame({"time": times, "p10": quantiles[:, 0], "p50": quantiles[:, 1], "p90": quantiles[:, 2]})

    # ================================================================== evaluation
    def _test_start(self, n: int) -> int:
        size = self.config.test_size
        n_test = int(np.ceil(n * size)) if size < 1 else int(size)
        return n - n_test

    def backtest(self, data: Any = None, stride: int = 1, classical: tuple[str, ...] | None = None,
                 refit_every: int | None = None, max_cutoffs: int | None = None) -> BacktestResult:
        """Rolling-origin backtest over the test part of ``data`` (default: the series the card
        records): at every cut-off, forecast the next ``horizon`` values from the history before
        it, for this model, the naive, seasonal naive and drift baselines and the ``classical``
        models (default: the config's; ETS, Theta, ARIMA refit along the cut-offs; ``()`` skips them);
        ``max_cutoffs`` keeps that many cut-offs, evenly spread, the same for every model. With
        ``pick="auto"`` the picked forecaster is the row ``"picked"`` (its members run too)."""
        self._check_fitted()
        series = _as_series(data if data is not None else self.reload_data(), "test data")
        if list(series.columns) != self.columns_:
            raise DataError(f"Expected the columns {self.columns_} the model was trained on. Received {series.columns}.")
        horizon, values = self.config.horizon, series.values
        start = max(self._test_start(len(series)), self.window_)
        cutoffs = rolling_cutoffs(len(series), horizon, start, stride=stride, max_cutoffs=max_cutoffs)
        quantiles = self._run(np.stack([values[c - self.window_ : c] for c in cutoffs]))
        pick = self.pick_ if self.pick_ and self.pick_.half_width else None
        classical = tuple(self.config.classical if classical is None else classical)
        needed = [*(pick.classical if pick else ()), *([pick.interval_model] if pick and pick.interval_model else [])]
        result = backtest(series.target, horizon, cutoffs, {self.config.model: lambda _: quantiles[..., 1]},
                          self.season_, train_end=start, refit_every=refit_every,
                          classical=classical + tuple(k for k in dict.fromkeys(needed) if k not in classical))
        quantiles = combine(pick, quantiles, result.predictions, half_widths(pick, result.intervals.get(
            pick.interval_model))) if pick else quantiles
        if pick and pick.classical:  # the picked forecaster's row, from the rows of its members
            result.predictions[PICKED] = quantiles[..., 1].astype(np.float64)
            result.table = {PICKED: forecast_metrics(result.actual, result.predictions[PICKED],
                                                     series.target[:start].astype(np.float64), self.season_),
                            **result.table}
            result.models.insert(0, PICKED)
        result.quantiles = quantiles
        result.coverage = float(np.mean((result.actual >= quantiles[..., 0]) & (result.actual <= quantiles[..., 2])))
        return result

    def evaluate(self, data: Any = None, classical: tuple[str, ...] | None = None,
                 max_cutoffs: int | None = None) -> dict:
        """Backtest metrics of the model, of every baseline and of the ``classical`` models (MASE,
        sMAPE, MAE, RMSE; theirs with their form, fit seconds and failures), the coverage of the
        80% interval, the best of all, the ratio to the best classical model with its bootstrap interval
        over the cut-offs, and a verdict that says when a baseline wins."""
        result = self.backtest(data, classical=classical, max_cutoffs=max_cutoffs)
        network = self.config.model
        name = PICKED if PICKED in result.table else network
        table = result.to_dict()
        row = table["table"][name]
        pick = self.pick_.to_dict() if self.pick_ else None
        return {
            "model": self.pick_.label if self.pick_ else network,
            **{k: row[k] for k in ("mase", "smape", "mae", "rmse")},
            "coverage_80": result.coverage, "coverage_80_interval": result.coverage_interval(),
            "n_cutoffs": len(result.cutoffs), "horizon": self.config.horizon, "season": self.season_,
            "baselines": {k: {m: v[m] for m in ("mase", "smape", "mae", "rmse")} for k, v in table["table"].items()
                          if k in result.baselines},
            "classical": {k: {**{m: table["table"][k][m] for m in ("mase", "smape", "mae", "rmse")}, **fit}
                          for k, fit in table["classical"].items()},
            "best": result.best,
            "ratio_to_best_classical": table["to_best_classical"].get(name),
            "ratio_to_best_classical_interval": table["to_best_classical_interval"].get(name),
            "mase_ratio": table["ratios"][name],
            "beats_every_baseline": all(r is not None and r < 1 for r in table["ratios"][name].values()),
            "verdict": (f"Picked {self.pick_.label}: {self.pick_.reason}. " if self.pick_ else "") + result.verdict,
            "pick": pick,
            "network": {"model": network, "mase": table["table"][network]["mase"],
                        "ratio_to_best_classical": table["to_best_classical"].get(network),
                        "ratio_interval": table["to_best_classical_interval"].get(network)},
        }

    def load_data(self, source: Any) -> SeriesData:
        """Load a series with this model's columns (target and features by name), e.g. a CSV path."""
        self._check_fitted()
        return load_series_like(source, self.columns_, self.data_spec_)

    def reload_data(self) -> SeriesData:
        if not self.data_spec_ or not self.data_spec_.get("source"):
            raise DataError("This model's card records no data source to reload. Pass the data explicitly.")
        spec = {k: v for k, v in self.data_spec_.items() if k in ("source", "time_column", "target", "features", "resample")}
        return reload_series(spec)

    # ================================================================== explanations
    def explain(self, x: Any = None, method: str = "shap", step: int | str = 0, budget: int | None = None,
                seed: int = 0, target: Any = None):
        """Which lags and features drive the forecast at ``step`` (0-based, or ``"mean"``) from one
        window or the end of a series (default: the end of the training data): SHAP
        (GradientExplainer) or LIME (RecurrentTabularExplainer), as a lag x feature heatmap."""
        from ..explain.series import explain_window

        self._check_fitted()
        if target is not None:
            step = int(target) - 1 if str(target).isdigit() else target
        window = self.last_window_ if x is None else self._windows(x)
        window = np.asarray(window)
        if window.ndim == 3:
            if len(window) != 1:
                raise DataError(f"Explain one window at a time. Received a batch of {len(window)}.")
            window = window[0]
        return explain_window(self.model_, window, self.background_, self.columns_, method=method, step=step,
                              budget=budget, seed=seed, predict_fn=lambda w: self._run(np.asarray(w, np.float32)))

    # ================================================================== save / load
    def _card_extra(self) -> dict:
        return {
            "columns": self.columns_, "target": self.columns_[0] if self.columns_ else None, "features": self.columns_[1:],
            "window": self.window_, "horizon": self.config.horizon, "season": self.season_, "frequency": self.frequency_,
            "last_time": self.last_time_, "quantiles": list(QUANTILES), "interval_widen": self.interval_widen_,
            "pick": self.pick_.to_dict() if self.pick_ else None,
            "scaling": self.scaling_,
            "input": {"shape": [None, self.window_, len(self.columns_)], "dtype": "float32",
                      "description": f"the last {self.window_} raw rows of {self.columns_}, oldest first"},
            "output": {"shape": [None, self.config.horizon, 3], "dtype": "float32",
                       "description": "p10, p50, p90 of the target for the next steps, in its own units"},
        }

    def _save_extra(self, directory: Path) -> None:
        from ..storage import atomic_write

        atomic_write(directory / BACKGROUND_FILE, lambda tmp: np.save(tmp, self.background_))
        atomic_write(directory / LAST_WINDOW_FILE, lambda tmp: np.save(tmp, self.last_window_))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Forecaster":
        forecaster_layers()  # register the custom layers before Keras reads model.keras
        return super().load(directory)

    def _load_extra(self, directory: Path, card: dict) -> None:
        self.columns_ = list(card["columns"])
        self.window_, self.season_ = card["window"], card.get("season")
        self.frequency_, self.last_time_ = card.get("frequency"), card.get("last_time")
        self.scaling_, self.interval_widen_ = card.get("scaling"), list(card.get("interval_widen") or [])
        self.pick_ = Pick.from_dict(card.get("pick"))
        self.background_ = np.load(directory / BACKGROUND_FILE, allow_pickle=False)
        self.last_window_ = np.load(directory / LAST_WINDOW_FILE, allow_pickle=False)

    # ================================================================== export
    def _export_plan(self, data: Any, quantization: str, **options: Any) -> ExportPlan:
        """Raw window (1, window, F) in, p10/p50/p90 (1, horizon, 3) out (LSTM/GRU through an
        unrolled copy), checked on the test windows of ``data`` (default: the series the card
        records)."""
        series = _as_series(data if data is not None else self.reload_data(), "export data")
        x, _ = make_windows(series.values, self.window_, self.config.horizon)
        if len(x) == 0:
            raise min_length_error(len(series), self.window_, self.config.horizon, series.name)
        test = x[self._test_start(len(x)) :] if len(x) > 1 else x
        return ExportPlan(self._export_model(), representative=x, check=test, sample=test[:1])

    def _export_checks(self, runner: Any, plan: ExportPlan) -> dict:
        """The file's largest difference to Keras on the test windows, absolute and relative to the largest forecast."""
        lite, keras_out = runner.predict_quantiles(plan.check), self._run(plan.check)
        # Relative to the largest forecast: element-wise ratios blow up where a quantile crosses zero.
        rel = np.abs(lite - keras_out) / max(float(np.abs(keras_out).max()), 1e-6)
        return {
            "input": {"dtype": "float32", "shape": [1, self.window_, len(self.columns_)], "columns": self.columns_,
                      "description": f"the last {self.window_} raw rows, oldest first"},
            "output": {"dtype": "float32", "shape": [1, self.config.horizon, 3],
                       "description": "p10, p50, p90 of the target for the next steps"},
            "max_relative_difference": float(rel.max()),
            "max_abs_difference": float(np.abs(lite - keras_out).max()),
            "n_test_windows": int(len(plan.check)),
            "contains": self.pick_.phone() if self.pick_ else "the whole forecaster: raw window in, p10/p50/p90 out",
        }

    def _export_model(self):
        """The model itself, or a copy with every LSTM/GRU unrolled (builtin TFLite ops)."""
        return export_model(self)


__all__ = ["Forecaster", "ForecasterConfig", "MODELS", "make_windows"]
