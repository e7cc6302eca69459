"""The forecaster's custom Keras layers (saved in model.keras): ``WindowScaler``, ``QuantileHead``
and the ``PinballLoss``, defined on first use so that importing the toolkit stays light."""

from __future__ import annotations

__all__ = ["QUANTILES", "build_network", "forecaster_layers"]

QUANTILES = (0.1, 0.5, 0.9)  # the quantiles the head outputs (p10, p50, p90)


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

        def __init__(self, mean, std, low=None, high=None, **kwargs):
            super().__init__(**kwargs)
            self.mean = [float(v) for v in mean]
            self.std = [float(v) for v in std]
            self.low = None if low is None else [float(v) for v in low]
            self.high = None if high is None else [float(v) for v in high]

        def call(self, x):
            mean = ops.convert_to_tensor(self.mean, dtype=x.dtype)
            std = ops.convert_to_tensor(self.std, dtype=x.dtype)
            target = x[..., :1]
            relative = (target - x[:, -1:, :1]) / std[0]
            levels = (x - mean[1:]) / std[1:]
            if self.low is not None:  # levels outside the training range read as its edge: no extrapolation
                levels = ops.clip(levels, ops.convert_to_tensor(self.low, x.dtype), ops.convert_to_tensor(self.high, x.dtype))
            return ops.concatenate([relative, levels], axis=-1)

        def compute_output_shape(self, shape):
            return (*shape[:-1], shape[-1] + 1)

        def get_config(self):
            return {**super().get_config(), "mean": self.mean, "std": self.std, "low": self.low, "high": self.high}

    @keras.saving.register_keras_serializable(package="toolkit")
    class QuantileHead(keras.layers.Layer):
        """Network output (B, H, 3) and the raw window -> ordered p10/p50/p90 in the target's units.

        ``widen`` (H,) is the calibration of each step's interval, in training standard deviations.
        """

        def __init__(self, std, horizon, **kwargs):
            super().__init__(**kwargs)
            self.std = float(std)
            self.horizon = int(horizon)
            self.widen = self.add_weight(shape=(self.horizon,), initializer="zeros", trainable=False, name="widen")

        def call(self, inputs):
            out, window = inputs
            last = window[:, -1:, 0]
            median = out[..., 1]
            low = median - ops.relu(ops.softplus(out[..., 0]) + self.widen)
            high = median + ops.relu(ops.softplus(out[..., 2]) + self.widen)
            return ops.stack([low, median, high], axis=-1) * self.std + last[..., None]

        def compute_output_shape(self, shapes):
            return (shapes[0][0], self.horizon, 3)

        def get_config(self):
            return {**super().get_config(), "std": self.std, "horizon": self.horizon}

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


def build_network(cfg, window_length: int, n_features: int, mean, std, low=None, high=None, unroll: bool = False):
    """The Keras forecaster of ``cfg`` (a ForecasterConfig): raw window (B, window_length, F) in,
    p10/p50/p90 (B, horizon, 3) out; ``unroll`` unrolls LSTM/GRU (builtin TFLite ops)."""
    import keras

    scaler_class, head_class, _ = forecaster_layers()
    window = keras.Input((window_length, n_features), name="window")
    scaled = scaler_class(mean, std, low, high, name="scaler")(window)
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
    forecast = head_class(std[0], cfg.horizon, name="forecast")([out, window])
    return keras.Model(window, forecast, name=f"forecaster_{cfg.model}")
