"""The forecaster's custom Keras layers (saved in model.keras): ``WindowScaler``, ``QuantileHead``
and the ``PinballLoss``, defined on first use so that importing the toolkit stays light."""

from __future__ import annotations

__all__ = ["LOG_RANGE", "QUANTILES", "build_network", "forecaster_layers", "use_log"]

QUANTILES = (0.1, 0.5, 0.9)  # the quantiles the head outputs (p10, p50, p90)
LOG_RANGE = 1.5  # transform="auto": log when a positive target's max / min exceeds this (its level changes)


def use_log(transform: str, target) -> bool:
    """Whether a network with ``transform`` ("auto", "log", "none") works on the log of ``target``:
    "log" needs a positive target (a DataError otherwise); "auto" takes logs of a positive target
    whose max / min exceeds ``LOG_RANGE`` (its level changes, so its changes scale with it)."""
    import numpy as np

    from ..errors import DataError

    y = np.asarray(target, np.float64)
    positive = bool(np.min(y) > 0)
    if transform == "log" and not positive:
        raise DataError(f"transform='log' needs a positive target. Received a minimum of {np.min(y):.4g}. Use "
                        "transform='none' (or 'auto'), or shift the series above 0.")
    return transform == "log" or (transform == "auto" and positive and float(np.max(y) / np.min(y)) > LOG_RANGE)


def forecaster_layers():
    """The custom layers, defined on first use so that importing this module stays light."""
    global WindowScaler, QuantileHead, PinballLoss
    if "WindowScaler" in globals():
        return WindowScaler, QuantileHead, PinballLoss
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="toolkit")
    class WindowScaler(keras.layers.Layer):
        """Raw window (B, W, F) -> (B, W, F + 1): [target - last target, target - mean, features - mean] / std.

        ``mean`` and ``std`` have F + 1 entries: the relative channel's (0, target std), then the columns'.
        The level channels are clipped to the range seen in training (``low``/``high``, scaled), so a
        series that trends past it (co2) is forecast from its recent changes, not an extrapolated level.
        """

        def __init__(self, mean, std, low=None, high=None, log=False, **kwargs):
            super().__init__(**kwargs)
            self.log = bool(log)  # the target channel on log scale (mean/std/low/high are of its log)
            self.mean = [float(v) for v in mean]
            self.std = [float(v) for v in std]
            self.low = None if low is None else [float(v) for v in low]
            self.high = None if high is None else [float(v) for v in high]

        def call(self, x):
            mean = ops.convert_to_tensor(self.mean, dtype=x.dtype)
            std = ops.convert_to_tensor(self.std, dtype=x.dtype)
            if self.log:  # log of the target (a positive series), features as they are
                x = ops.concatenate([ops.log(ops.maximum(x[..., :1], 1e-12)), x[..., 1:]], axis=-1)
            target = x[..., :1]
            relative = (target - x[:, -1:, :1]) / std[0]
            levels = (x - mean[1:]) / std[1:]
            if self.low is not None:  # levels outside the training range read as its edge: no extrapolation
                levels = ops.clip(levels, ops.convert_to_tensor(self.low, x.dtype), ops.convert_to_tensor(self.high, x.dtype))
            return ops.concatenate([relative, levels], axis=-1)

        def compute_output_shape(self, shape):
            return (*shape[:-1], shape[-1] + 1)

        def get_config(self):
            return {**super().get_config(), "mean": self.mean, "std": self.std, "low": self.low, "high": self.high,
                    "log": self.log}

    @keras.saving.register_keras_serializable(package="toolkit")
    class QuantileHead(keras.layers.Layer):
        """Network output (B, H, 3) and the raw window -> ordered p10/p50/p90 in the target's units.

        ``widen`` (H,) is the calibration of each step's interval, in training standard deviations.
        ``log``: the network works on the log of the target; the head returns exp of its forecast.
        """

        def __init__(self, std, horizon, log=False, **kwargs):
            super().__init__(**kwargs)
            self.log = bool(log)
            self.std = float(std)
            self.horizon = int(horizon)
            self.widen = self.add_weight(shape=(self.horizon,), initializer="zeros", trainable=False, name="widen")

        def call(self, inputs):
            out, window = inputs
            last = window[:, -1:, 0]
            if self.log:
                last = ops.log(ops.maximum(last, 1e-12))
            median = out[..., 1]
            low = median - ops.relu(ops.softplus(out[..., 0]) + self.widen)
            high = median + ops.relu(ops.softplus(out[..., 2]) + self.widen)
            forecast = ops.stack([low, median, high], axis=-1) * self.std + last[..., None]
            return ops.exp(forecast) if self.log else forecast

        def compute_output_shape(self, shapes):
            return (shapes[0][0], self.horizon, 3)

        def get_config(self):
            return {**super().get_config(), "std": self.std, "horizon": self.horizon, "log": self.log}

    @keras.saving.register_keras_serializable(package="toolkit")
    class PinballLoss(keras.losses.Loss):
        """Mean pinball loss of the p10/p50/p90 outputs against the targets (B, H), in units of ``scale``."""

        def __init__(self, scale=1.0, name="pinball", **kwargs):
            super().__init__(name=name, **kwargs)
            self.scale = float(scale)

        def call(self, y_true, y_pred):
            q = ops.convert_to_tensor(QUANTILES, dtype=y_pred.dtype)
            error = (ops.expand_dims(y_true, -1) - y_pred) / self.scale
            return ops.mean(ops.maximum(q * error, (q - 1.0) * error), axis=(-2, -1))

        def get_config(self):
            return {**super().get_config(), "scale": self.scale}

    return WindowScaler, QuantileHead, PinballLoss


TREND_DEGREE = 2  # the N-BEATS trend block's polynomial degree
NBEATS_BLOCKS = 3  # generic blocks after the trend block


def _nbeats(cfg, scaled, window_length: int, n_features: int):
    """N-BEATS (Oreshkin et al. 2020) on the window's changes: the target relative to its last
    value (level-free, so a trending series is forecast from its recent changes) and the features'
    levels, flattened; a trend block (a degree-2 polynomial basis over the horizon) then generic
    blocks, each taking away its backcast from the input of the next and adding its forecast.
    Dense layers only (builtin TFLite ops). Returns the (B, horizon * 3) sum of the forecasts."""
    import numpy as np
    import keras

    layers, hidden, h = keras.layers, max(32, 4 * cfg.units), cfg.horizon
    parts = [scaled[..., :1]] + ([scaled[..., 2:]] if n_features > 1 else [])
    x = layers.Flatten(name="nbeats_input")(parts[0] if len(parts) == 1 else layers.Concatenate(name="nbeats_join")(parts))
    size = window_length * n_features
    forecasts, residual = [], x
    for i in range(NBEATS_BLOCKS + 1):
        z = residual
        for j in range(2):
            z = layers.Dense(hidden, activation="relu", name=f"block{i}_fc{j}")(z)
        z = layers.Dropout(cfg.dropout, name=f"block{i}_dropout")(z)
        if i == 0:  # trend: p10/p50/p90 as polynomials of the (scaled) step
            theta = layers.Reshape((3, TREND_DEGREE + 1), name="trend_theta_shape")(
                layers.Dense(3 * (TREND_DEGREE + 1), name="trend_theta")(z))
            basis = layers.Dense(h, use_bias=False, trainable=False, kernel_initializer="zeros", name="trend_basis")
            curve = layers.Permute((2, 1), name="trend_steps")(basis(theta))
            basis.set_weights([(np.arange(1, h + 1) / h) ** np.arange(TREND_DEGREE + 1)[:, None]])
            forecasts.append(layers.Flatten(name="trend_forecast")(curve))
        else:
            forecasts.append(layers.Dense(h * 3, name=f"block{i}_forecast")(z))
        if i < NBEATS_BLOCKS:
            backcast = layers.Dense(size, name=f"block{i}_backcast")(z)
            residual = layers.Subtract(name=f"block{i}_residual")([residual, backcast])
    return layers.Add(name="nbeats_forecast")(forecasts), x


def build_network(cfg, window_length: int, n_features: int, mean, std, low=None, high=None, unroll: bool = False,
                  log: bool = False):
    """The Keras forecaster of ``cfg`` (a ForecasterConfig): raw window (B, window_length, F) in,
    p10/p50/p90 (B, horizon, 3) out; ``unroll`` unrolls LSTM/GRU (builtin TFLite ops); ``log``
    works on the log of the (positive) target, ``std[0]`` being the std of its log."""
    import keras

    scaler_class, head_class, _ = forecaster_layers()
    window = keras.Input((window_length, n_features), name="window")
    scaled = scaler_class(mean, std, low, high, log=log, name="scaler")(window)
    if cfg.model == "nbeats":
        noisy = keras.layers.GaussianNoise(cfg.noise, name="noise")(scaled)
        nonlinear, flat = _nbeats(cfg, noisy, window_length, n_features)
        linear = keras.layers.Dense(cfg.horizon * 3, name="linear_out")(flat)  # an autoregression on the changes
        out = keras.layers.Reshape((cfg.horizon, 3), name="quantiles")(keras.layers.Add(name="add")([nonlinear, linear]))
        forecast = head_class(std[0], cfg.horizon, log=log, name="forecast")([out, window])
        return keras.Model(window, forecast, name="forecaster_nbeats")
    x = keras.layers.GaussianNoise(cfg.noise, name="noise")(scaled)
    if cfg.model == "lstm":
        x = keras.layers.LSTM(cfg.units, unroll=unroll, name="lstm")(x)
    elif cfg.model == "gru":
        x = keras.layers.GRU(cfg.units, unroll=unroll, name="gru")(x)
    elif cfg.model == "conv1d":
        for i, rate in enumerate((1, 2, 4)):
            x = keras.layers.Conv1D(cfg.units, 3, padding="causal", dilation_rate=rate, activation="relu",
                                    name=f"conv{i}")(x)
        x = keras.layers.Flatten(name="flatten_core")(x)
    elif cfg.model == "transformer":
        import keras_hub

        x = keras.layers.Dense(cfg.units, name="project")(x)
        add = keras.layers.Add
        x = add(name="add_positions")([x, keras_hub.layers.PositionEmbedding(window_length, name="positions")(x)])
        attended = keras.layers.MultiHeadAttention(2, max(4, cfg.units // 2), name="attention")(x, x)
        x = keras.layers.LayerNormalization(name="norm1")(add(name="residual1")([x, attended]))
        ff = keras.layers.Dense(2 * cfg.units, activation="relu", name="ff1")(x)
        ff = keras.layers.Dense(cfg.units, name="ff2")(ff)
        x = keras.layers.LayerNormalization(name="norm2")(add(name="residual2")([x, ff]))
        x = keras.layers.Flatten(name="flatten_core")(x)
    else:  # dense
        x = keras.layers.Flatten(name="flatten_core")(x)
        x = keras.layers.Dense(2 * cfg.units, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    nonlinear = keras.layers.Dense(cfg.horizon * 3, name="core_out")(x)
    linear = keras.layers.Dense(cfg.horizon * 3, name="linear_out")(keras.layers.Flatten(name="flatten")(scaled))
    out = keras.layers.Reshape((cfg.horizon, 3), name="quantiles")(keras.layers.Add(name="add")([nonlinear, linear]))
    forecast = head_class(std[0], cfg.horizon, log=log, name="forecast")([out, window])
    return keras.Model(window, forecast, name=f"forecaster_{cfg.model}")
