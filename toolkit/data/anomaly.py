"""The anomaly detector's data: the synthetic sensor series (labelled anomalies), the reader of
labelled series (``load_anomaly_data``) and the detector's input handling (a series as numpy
values, columns, times and labels)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .series import LABEL_COLUMNS, load_series, read_csv_table

__all__ = ["ANOMALY_KINDS", "GENERATED_SERIES", "AnomalySeries", "OptionalColumn", "as_anomaly_series",
           "load_anomaly_data", "synthetic_sensor"]

ANOMALY_KINDS = ("spike", "level_shift", "flat")
TIME_NAMES = ("ts", "time", "timestamp", "date", "datetime")


def synthetic_sensor(n: int = 2000, seed: int = 0, anomalies: bool = True, kinds=ANOMALY_KINDS):
    """A machine-temperature-like hourly series with labelled anomalies, as a DataFrame.

    Columns: ``ts`` (hourly, from 2024-01-01 00:00), ``temperature`` and ``is_anomaly`` (0/1).
    Clean signal: 70 degrees + a daily cycle (amplitude 4, warmest about 15:00, plus a 12-hour
    harmonic of amplitude 1; the same for every seed, like one machine) + a slow drift (two
    sinusoids of random periods 6-20 days and amplitudes 1.5 and 0.8) + AR(1) noise (phi 0.5,
    std 0.4). ``sigma`` is the std of the clean signal (about 3.2). With ``anomalies=True``,
    ``max(len(kinds), n // 200)`` events of the ``kinds`` in turn are injected at random places at
    least 24 points apart (fewer when the series has no room):

    - ``spike``: one point moved by 4-6 sigma, up or down;
    - ``level_shift``: 20-60 consecutive points moved by 3-4 sigma, up or down;
    - ``flat``: 20-60 consecutive points stuck at the value of the point before them.

    Every point of an event has ``is_anomaly = 1``. The same arguments give the same frame.
    """
    import pandas as pd

    kinds = tuple(kinds)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 24:
        raise ValueError(f"n must be an int >= 24. Received {n!r}.")
    if [k for k in kinds if k not in ANOMALY_KINDS] or (anomalies and not kinds):
        raise ValueError(f"Unknown anomaly kinds {list(kinds)}. Valid kinds: {list(ANOMALY_KINDS)}.")
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    phase, periods = rng.uniform(0, 2 * np.pi, 2), rng.uniform(6 * 24, 20 * 24, 2)
    hour = 2 * np.pi * t / 24
    daily = 4.0 * np.sin(hour - 2 * np.pi * 9 / 24) + 1.0 * np.sin(2 * hour + 0.5)
    drift = 1.5 * np.sin(2 * np.pi * t / periods[0] + phase[0]) + 0.8 * np.sin(2 * np.pi * t / periods[1] + phase[1])
    shocks, noise = rng.normal(0, 0.4 * np.sqrt(1 - 0.5**2), n), np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.5 * noise[i - 1] + shocks[i]
    y = 70.0 + daily + drift + noise
    labels = np.zeros(n, dtype=np.int64)
    sigma, busy = float(np.std(y)), np.zeros(n, bool)
    for k in range(max(len(kinds), n // 200) if anomalies else 0):
        kind = kinds[k % len(kinds)]
        length = 1 if kind == "spike" else int(rng.integers(20, 61))
        starts = rng.integers(24, n - length - 24, 1000) if n - length - 48 >= 1 else []
        start = next((int(s) for s in starts if not busy[s - 24 : s + length + 24].any()), None)
        if start is None:
            continue  # no room left for this event
        busy[start : start + length] = labels[start : start + length] = 1
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            y[start] += sign * rng.uniform(4, 6) * sigma
        elif kind == "level_shift":
            y[start : start + length] += sign * rng.uniform(3, 4) * sigma
        else:
            y[start : start + length] = y[start - 1]
    frame = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=n, freq="h"),
                          "temperature": y.astype(np.float32), "is_anomaly": labels})
    frame.attrs["source"] = {"source": "synthetic_sensor", "n": int(n), "seed": int(seed),
                             "anomalies": bool(anomalies), "kinds": list(kinds)}
    return frame


# Generated series that load_anomaly_data (and the CLI's --data) accepts by name, offline.
GENERATED_SERIES = {
    "sensor_normal": dict(n=2000, seed=0, anomalies=False),  # the benchmark's training series
    "sensor_anomalies": dict(n=2000, seed=1, anomalies=True),  # its test series
}


def load_anomaly_data(source: Any, time_column: str | bool | None = None, target: str | None = None,
                      features: list | None = None, resample: str | None = None):
    """(SeriesData, labels (T,) bool or None): ``load_series`` for a CSV path, DataFrame, built-in
    name, array, ... or a name in :data:`GENERATED_SERIES`. A column ``is_anomaly`` / ``anomaly``
    / ``label`` is not a value column: it becomes the labels, sorted, deduplicated and resampled
    like the values (a resampled bin is anomalous if any of its points is)."""
    import pandas as pd

    frame, name = source, None
    if isinstance(source, str) and source in GENERATED_SERIES:
        frame, name = synthetic_sensor(**GENERATED_SERIES[source]), source
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        frame = read_csv_table(source)  # only to find the label column; values are read by load_series
    label = next((c for c in LABEL_COLUMNS if c in frame.columns), None) if isinstance(frame, pd.DataFrame) else None
    if label is None and name is None:
        return load_series(source, time_column, target, features, resample), None
    if name is None and target is None:  # a file: the value columns are the numeric ones but time and label
        numeric = [c for c in frame.columns if c != label and c != time_column and str(c).lower() not in TIME_NAMES
                   and pd.to_numeric(frame[c], errors="coerce").notna().any()]
        target, features = (numeric[0], features or numeric[1:] or None) if numeric else (None, features)
    values = frame.drop(columns=[label]) if name is not None else source
    series = load_series(values, time_column, target, features, resample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same repairs were announced for the values
        labels = load_series(frame if name is not None else source, series.spec["time_column"], label, None,
                                resample).values[:, 0] > 0
    if name is not None:
        series.spec["source"], series.name = name, name
    return series, labels


class OptionalColumn(str):
    """A time column name to use when the data has it (the one the model was trained with)."""


@dataclasses.dataclass
class AnomalySeries:
    values: np.ndarray  # (T, F) float32, no NaN
    columns: list
    time: np.ndarray  # (T,) timestamps, or steps 0..T-1
    time_name: str | None
    labels: np.ndarray | None  # (T,) bool
    spec: dict


def _frame_parts(frame, columns, time_column, target, features):
    import pandas as pd

    label = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    if isinstance(time_column, OptionalColumn):
        time_column = str(time_column) if str(time_column) in frame.columns else None
    elif time_column is not None and time_column not in frame.columns:
        raise DataError(f"Expected a time column {time_column!r}. Received columns {list(frame.columns)}.")
    if time_column is None:
        time_column = next((c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])
                            or str(c).lower() in TIME_NAMES), None)
    if columns is None:
        columns = [target, *(features or [])] if target is not None else [
            c for c in frame.columns if c not in (label, time_column)
            and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    missing = [c for c in columns if c not in frame.columns]
    if missing or not columns:
        raise DataError(f"Expected numeric value columns {missing or ''} in the frame. Received columns "
                        f"{list(frame.columns)}. Pass target=... (and features=...) naming them.")
    times = frame[time_column].to_numpy() if time_column is not None else frame.index.to_numpy()
    labels = None if label is None else frame[label].to_numpy()
    return frame[columns].to_numpy(), [str(c) for c in columns], times, time_column, labels


def as_anomaly_series(data: Any, columns: list | None = None, time_column: str | None = None,
               target: str | None = None, features: list | None = None) -> AnomalySeries:
    """A series as numpy (T,) or (T, F), a pandas DataFrame or Series, an object with ``.values``
    (T, F) and ``.columns`` (a SeriesData), or a CSV path / built-in name (via ``load_series``)."""
    import pandas as pd

    if isinstance(data, (str, os.PathLike)):
        target, features = (columns[0], columns[1:]) if columns else (target, features)
        loaded, labels = load_anomaly_data(data, None if isinstance(time_column, OptionalColumn) else time_column,
                                           target, features or None)
        return dataclasses.replace(as_anomaly_series(loaded, columns), labels=labels)
    times = labels = names = None
    spec: dict = {"source": None, "kind": type(data).__name__}
    if isinstance(data, pd.Series):
        data = data.to_frame(name=str(data.name) if data.name is not None else "value")
    if isinstance(data, pd.DataFrame):
        made = data.attrs.get("source") or {}
        if made.get("n") == len(data) and list(data.columns) == ["ts", "temperature", "is_anomaly"]:
            spec = dict(made)  # an unchanged synthetic_sensor frame: reloadable
        values, names, times, time_column, labels = _frame_parts(data, columns, time_column, target, features)
    elif hasattr(data, "values") and hasattr(data, "columns") and not isinstance(data, np.ndarray):
        values, names = data.values, [str(c) for c in data.columns]
        if columns is not None and names != list(columns):
            raise DataError(f"Expected the columns {list(columns)}, like the training data. Received {names}.")
        index = getattr(data, "index", None)
        times = None if index is None else np.asarray(index)
        time_column = (getattr(data, "spec", None) or {}).get("time_column") or getattr(index, "name", None)
        time_column = time_column if isinstance(time_column, str) else None
        spec = dict(getattr(data, "spec", None) or spec)
    else:
        values, time_column = data, None
    try:
        values = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Expected a numeric series, shape (T,) or (T, F). Received {type(data).__name__}: {exc}")
    values = values[:, None] if values.ndim == 1 else values
    if values.ndim != 2:
        raise DataError(f"Expected a series of shape (T,) or (T, F) (a batch of series: (N, T, F)). "
                        f"Received shape={values.shape}.")
    if names is None:
        names = list(columns) if columns and len(columns) == values.shape[1] else (
            ["value"] if values.shape[1] == 1 else [f"x{i}" for i in range(values.shape[1])])
    if columns is not None and len(columns) != values.shape[1]:
        raise DataError(f"Expected {len(columns)} value column(s) {list(columns)}, like the training data. "
                        f"Received {values.shape[1]}: {names}.")
    if np.isinf(values).any():
        raise DataError("Expected finite values. Received inf; replace or drop those points first.")
    if np.isnan(values).any():
        if np.isnan(values).all(axis=0).any():
            raise DataError("Expected numbers in every column. Received a column that is all NaN.")
        count = int(np.isnan(values).sum())
        values = pd.DataFrame(values).interpolate(limit_direction="both").to_numpy(np.float32)
        warnings.warn(f"Interpolated {count} missing value(s) linearly.", stacklevel=3)
    if times is None or len(times) != len(values):
        times = np.arange(len(values))
    labels = None if labels is None else np.asarray(labels).astype(bool)
    return AnomalySeries(values, names, times, None if time_column is None else str(time_column), labels, spec)
