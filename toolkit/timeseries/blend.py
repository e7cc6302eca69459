"""A pure-neural ensemble: ``model="lstm+nbeats"`` is the mean of an LSTM and an N-BEATS forecaster.

Each member is trained on its own (its own early stopping and interval calibration, as a plain
forecaster of that architecture with the same window and scaling), then the members are joined in
one Keras graph that averages their p10 / p50 / p90 (``keras.layers.Average``): one ``model.keras``,
one ``.tflite`` (the LSTM unrolled, builtin ops), raw window in, quantiles out, no classical part.
Averaging networks with different inductive biases (a recurrent one and N-BEATS' dense blocks on
the window's changes) cuts the variance of either, as ensembles of networks do (N-BEATS itself is an
ensemble in its paper). Its p50 is the mean of the members' p50s, so a validation backtest scores
it from the members' forecasts without training it again (:mod:`.ensemble`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

BLENDS = {"lstm+nbeats": ("lstm", "nbeats")}  # name -> member architectures
RECURRENT = ("lstm", "gru")
SHARED = ("columns_", "season_", "window_", "scaling_", "frequency_", "last_time_", "background_", "last_window_",
          "data_spec_", "passes_per_epoch_")  # what every member computes alike from the data


def _members(forecaster: Any) -> list[Any]:
    cfg = forecaster.config
    return [type(forecaster)(dataclasses.replace(cfg, model=arch, pick="network", classical=()))
            for arch in BLENDS[cfg.model]]  # each finds the same season and window as the forecaster


def fit_blend(forecaster: Any, series: Any, validation_data: Any, verbose: int, callbacks: list | None) -> None:
    """Train each member of ``forecaster.config.model`` on ``series`` and make ``forecaster.model_``
    the mean of their quantile outputs (the members' data-derived settings are the forecaster's)."""
    members = _members(forecaster)
    history = {}
    for member in members:
        member._fit_network(series, validation_data, verbose, callbacks)
        history.update({f"{member.config.model}_{k}": v for k, v in member.history_.items()})
    for name in SHARED:
        setattr(forecaster, name, getattr(members[0], name))
    forecaster.model_ = _average([m.model_ for m in members], forecaster.window_, len(forecaster.columns_),
                                 forecaster.config.model)
    # "loss": the member that trained longest (its epochs are the blend's); each member's under its name
    longest = max(members, key=lambda m: len(m.history_["loss"]))
    forecaster.history_ = {**longest.history_, **history}
    forecaster.interval_widen_ = [w for m in members for w in m.interval_widen_]  # each member's, in turn


def _average(models: list[Any], window: int, n_features: int, name: str):
    import keras

    inputs = keras.Input((window, n_features), name="window")
    return keras.Model(inputs, keras.layers.Average(name="mean")([m(inputs) for m in models]),
                       name=f"forecaster_{name.replace('+', '_')}")


def export_model(forecaster: Any):
    """The model for TFLite: itself, or a copy with every LSTM/GRU unrolled (builtin ops)."""
    model = forecaster.model_
    if forecaster.config.model in BLENDS:
        members = [layer for layer in model.layers if hasattr(layer, "layers") and layer.name.startswith("forecaster_")]
        return _average([_unrolled(forecaster, m, m.name.removeprefix("forecaster_")) for m in members],
                        forecaster.window_, len(forecaster.columns_), forecaster.config.model)
    return _unrolled(forecaster, model, forecaster.config.model)


def _unrolled(forecaster: Any, model: Any, arch: str):
    if arch not in RECURRENT:
        return model
    from .layers import build_network

    scaling = model.get_layer("scaler")
    copy = build_network(dataclasses.replace(forecaster.config, model=arch), forecaster.window_,
                         len(forecaster.columns_), scaling.mean, scaling.std, scaling.low, scaling.high, unroll=True,
                         log=getattr(scaling, "log", False))
    copy.set_weights(model.get_weights())
    return copy


__all__ = ["BLENDS", "export_model", "fit_blend"]
