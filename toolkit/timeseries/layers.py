"""The forecaster's custom Keras layers (saved in model.keras): ``WindowScaler``, ``QuantileHead``
and the ``PinballLoss``, defined on first use so that importing the toolkit stays light."""

from __future__ import annotations

__all__ = ["QUANTILES", "forecaster_layers"]

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
