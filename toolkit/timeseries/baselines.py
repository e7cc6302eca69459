"""Forecasting baselines and rolling-origin backtests, as Darts does them.

Baselines: :func:`naive` (repeat the last value), :func:`seasonal_naive` (repeat the last full
season) and :func:`drift` (the line through the first and last points). :func:`backtest` makes
forecasts of ``y[c:c+H]`` from ``y[:c]`` at every cut-off ``c``, adds the baselines, scores
everything with MAE, RMSE, sMAPE and MASE, and says whether each model beats every baseline.
MASE is scaled by the in-sample MAE of the seasonal-naive forecast (lag ``season``, or lag 1
when there is no season) on the training part, so MASE < 1 beats that in-sample benchmark.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import warnings
from typing import Callable, Sequence

import numpy as np

from ..errors import DataError

METRICS = ("mae", "rmse", "smape", "mase")


def _series(values, name: str = "history", min_len: int = 1, why: str = "") -> np.ndarray:
    """A finite 1-D float64 array of at least ``min_len`` points, or a DataError."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"Expected a 1-D {name}. Received: shape={arr.shape}. Pass the target column only.")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"Expected a {name} without NaN or infinite values. Received {int(np.sum(~np.isfinite(arr)))} "
                        "of them. Interpolate or drop them first.")
    if len(arr) < min_len:
        raise DataError(f"Expected a {name} of at least {min_len} points{why}. Received {len(arr)}. "
                        "Use a longer history or a simpler baseline.")
    return arr


def _positive(value, name: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise DataError(f"Expected {name} to be an integer >= 1. Received: {value!r}.") from None
    if number < 1:
        raise DataError(f"Expected {name} to be an integer >= 1. Received: {number}.")
    return number


def naive(history, horizon: int) -> np.ndarray:
    """Repeat the last observed value ``horizon`` times."""
    y, h = _series(history), _positive(horizon, "horizon")
    return np.full(h, y[-1])


def seasonal_naive(history, horizon: int, season: int) -> np.ndarray:
    """Repeat the last full season: the forecast for step ``h`` is ``y[n - season + (h mod season)]``."""
    m, h = _positive(season, "season"), _positive(horizon, "horizon")
    y = _series(history, min_len=m, why=f" (one full season of {m})")
    return np.resize(y[-m:], h).astype(np.float64)


def drift(history, horizon: int) -> np.ndarray:
    """Extend the line through the first and last points: ``last + h * (last - first) / (n - 1)``."""
    h = _positive(horizon, "horizon")
    y = _series(history, min_len=2, why=" (drift needs a first and a last point)")
    return y[-1] + np.arange(1, h + 1) * (y[-1] - y[0]) / (len(y) - 1)


BASELINES: dict[str, Callable[..., np.ndarray]] = {"naive": naive, "seasonal_naive": seasonal_naive, "drift": drift}


def baseline_forecast(name: str, history, horizon: int, season: int | None = None) -> np.ndarray:
    """Forecast ``horizon`` steps with the baseline called ``name`` (see :data:`BASELINES`)."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}. Valid names: {', '.join(BASELINES)}.")
    if name == "seasonal_naive":
        if season is None:
            raise DataError("The seasonal_naive baseline needs a season. Received season=None. "
                            "Pass one, or detect it with detect_seasonality(y).")
        return seasonal_naive(history, horizon, season)
    return BASELINES[name](history, horizon)


def baseline_forecasts(history, horizon: int, season: int | None = None) -> dict[str, np.ndarray]:
    """Every baseline's forecast of ``horizon`` steps (name -> values); seasonal naive only with a
    ``season``, and a baseline the history is too short for is left out."""
    out = {}
    for name in BASELINES:
        if name == "seasonal_naive" and not season:
            continue
        try:
            out[name] = baseline_forecast(name, history, horizon, season)
        except DataError:  # a history shorter than one season
            pass
    return out


def detect_seasonality(y, max_lag: int | None = None, frequency: str | None = None) -> int | None:
    """The season length of ``y`` from its autocorrelation, or None when there is no clear one.

    A linear fit is removed first; the season is the lag in ``2..max_lag`` (default
    ``min(n // 3, 400)``) of the highest local maximum of the ACF that is above 0.2 and above
    2.5 Bartlett standard errors, and that repeats (ACF > 0.1 near twice the lag, when that lag
    is in range). When the detrended series shows none, its first differences are tried (for
    curved trends); a random walk's differences are white noise, so walks give None.

    ``frequency`` (a pandas offset alias such as ``"MS"`` or ``"QS-JAN"``): a sub-yearly series
    has one natural season (12 months, 4 quarters, 52 weeks, 7 days, 24 hours); it is returned
    when the ACF has a significant peak there, else None (a monthly series whose ACF peaks highest
    at 48 still has the year as its season; a seasonally adjusted one has none). Yearly and
    unknown frequencies search every lag (cycles such as the sunspots').
    """
    from statsmodels.tsa.stattools import acf

    values = _series(y, name="series")
    n = len(values)
    if max_lag is None:
        max_lag = min(n // 3, 400)
    elif _positive(max_lag, "max_lag") < 2:
        raise DataError(f"Expected max_lag >= 2 (a season spans at least 2 steps). Received: {max_lag}.")
    natural = natural_season(frequency)
    if natural and natural > max_lag:
        return None
    t = np.arange(n)
    detrended = values - np.polyval(np.polyfit(t, values, 1), t) if n > 1 else values
    for x in (detrended, np.diff(values)):
        lags = min(max_lag, len(x) - 2)
        if lags < 2 or np.ptp(x) <= 1e-12 * max(1.0, float(np.max(np.abs(values)))):
            continue
        r = acf(x, nlags=lags + 1, fft=True)
        before = np.concatenate([[0.0, 0.0], np.cumsum(r[1:-1] ** 2)])  # before[k] = r_1^2 + ... + r_{k-1}^2
        band = np.maximum(2.5 * np.sqrt((1 + 2 * before) / len(x)), 0.2)  # Bartlett's standard error
        peaks = [k for k in range(2, lags + 1)
                 if r[k] > r[k - 1] and r[k] >= r[k + 1] and r[k] > band[k]
                 and (2 * k + 1 > lags + 1 or np.max(r[2 * k - 1:2 * k + 2]) > 0.1)]
        if natural:
            if natural in peaks:
                return natural
        elif peaks:
            return int(max(peaks, key=lambda k: r[k]))
    return None


# Periods per year of the pandas frequency prefixes (offset aliases; "QS-JAN" reads as "QS").
NATURAL_SEASONS = {"M": 12, "MS": 12, "ME": 12, "BM": 12, "BMS": 12, "BME": 12, "SM": 24, "SMS": 24,
                   "Q": 4, "QS": 4, "QE": 4, "BQ": 4, "BQS": 4, "BQE": 4, "W": 52, "D": 7, "B": 5,
                   "H": 24, "h": 24, "BH": 8, "bh": 8}


def natural_season(frequency: str | None) -> int | None:
    """The season of a sub-yearly frequency (``"MS"`` -> 12, ``"QS-JAN"`` -> 4, ``"W-SUN"`` -> 52),
    None for yearly, finer than hourly or unknown ones."""
    if not frequency:
        return None
    prefix = str(frequency).split("-")[0].lstrip("0123456789")
    return NATURAL_SEASONS.get(prefix)


def forecast_metrics(actual, predicted, train, season: int | None) -> dict:
    """MAE, RMSE, sMAPE (percent, 0..200) and MASE of ``predicted`` against ``actual`` (n, H).

    sMAPE is Darts' ``200 * mean(|a - p| / (|a| + |p|))`` with 0/0 counted as 0. MASE divides the
    MAE by the in-sample MAE of the seasonal-naive forecast on ``train`` (lag ``season``, or 1).
    ``mae_by_step`` holds the MAE of each forecast step.
    """
    a, p = np.asarray(actual, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    a, p = (a[None] if a.ndim == 1 else a), (p[None] if p.ndim == 1 else p)
    if a.shape != p.shape or a.ndim != 2:
        raise DataError(f"Expected actual and predicted of the same shape (n_cutoffs, horizon). "
                        f"Received: {a.shape} and {p.shape}.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(p))):
        raise DataError("Expected finite actual and predicted values. Received NaN or infinite values.")
    lag = 1 if season is None else _positive(season, "season")
    x = _series(train, name="training part", min_len=lag + 1, why=f" (MASE compares it with itself {lag} step(s) back)")
    scale = float(np.mean(np.abs(x[lag:] - x[:-lag])))
    if scale <= 0:
        what = "constant" if lag == 1 else f"exactly periodic with period {lag}"
        raise DataError(f"Expected a training part that varies, to scale MASE by its lag-{lag} naive error. Received "
                        f"one that is {what}, so that error is 0. Check the series, or compare on MAE instead.")
    err = np.abs(a - p)
    denom = np.abs(a) + np.abs(p)
    ratio = np.divide(err, denom, out=np.zeros_like(err), where=denom > 0)
    mae = float(err.mean())
    return {"mae": mae, "rmse": float(np.sqrt(np.mean(err ** 2))), "smape": float(200.0 * ratio.mean()),
            "mase": mae / scale, "mae_by_step": [float(v) for v in err.mean(axis=0)]}


def rolling_cutoffs(n: int, horizon: int, first: int, stride: int = 1, max_cutoffs: int | None = None) -> np.ndarray:
    """Cut-offs ``c`` (forecast ``y[c:c+H]`` from ``y[:c]``) from ``first`` to ``n - H``, every ``stride``.

    The grid is anchored at the latest cut-off ``n - H``. ``max_cutoffs`` keeps that many of
    them, evenly spread over the grid and always including the latest one.
    """
    n, h, step, first = int(n), _positive(horizon, "horizon"), _positive(stride, "stride"), int(first)
    if first < 1:
        raise DataError(f"Expected first >= 1 (a forecast needs some history). Received: first={first}.")
    if n - h < first:
        raise DataError(f"A backtest with first cut-off {first} and horizon {h} needs a series of at least "
                        f"first + horizon = {first + h} points. Received {n}. Use a longer series, an earlier "
                        "first cut-off or a shorter horizon.")
    cutoffs = np.arange(n - h, first - 1, -step)[::-1]
    if max_cutoffs is not None and len(cutoffs) > _positive(max_cutoffs, "max_cutoffs"):
        cutoffs = cutoffs[np.unique(np.round(np.linspace(len(cutoffs) - 1, 0, max_cutoffs)).astype(int))]
    return cutoffs.astype(np.int64)


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclasses.dataclass
class BacktestResult:
    """Metrics, forecasts and the verdict of a :func:`backtest`; models first, then baselines."""

    table: dict[str, dict]
    predictions: dict[str, np.ndarray]
    actual: np.ndarray
    cutoffs: np.ndarray
    season: int | None
    horizon: int
    models: list[str]
    baselines: list[str]
    quantiles: np.ndarray | None = None  # a forecaster's p10/p50/p90 at each cut-off (n, H, 3)
    coverage: float | None = None  # the share of actual values inside its p10-p90 interval
    classical: list[str] = dataclasses.field(default_factory=list)  # ets, theta, arima (refit at the cut-offs)
    fits: dict[str, dict] = dataclasses.field(default_factory=dict)  # classical name -> spec, seconds, failures
    intervals: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # classical -> (n, H) own 80% half-widths

    @property
    def best(self) -> str:
        """The name with the lowest MASE of all: models, classical models and baselines."""
        return min(self.table, key=self._mase)

    @property
    def best_classical(self) -> str | None:
        return min(self.classical, key=self._mase) if self.classical else None

    def to_best_classical(self, name: str) -> float:
        """``name``'s MASE / the best classical model's (nan without classical models)."""
        best = self.best_classical
        if best is None:
            return math.nan
        return self._mase(name) / self._mase(best) if self._mase(best) > 0 else math.inf

    def _mase(self, name: str) -> float:
        return self.table[name]["mase"]

    def to_best_classical_interval(self, name: str, level: float = 0.9, n_boot: int = 2000,
                                   seed: int = 0) -> dict | None:
        """How sure :meth:`to_best_classical` is: a circular block bootstrap over the cut-offs (blocks
        as long as one forecast's span, since neighbouring forecasts overlap), the best classical
        model chosen again in every resample, as the ratio chooses it after seeing the test part.
        ``low``/``high``: the ``level`` interval of the ratio; ``share_at_most_one``: the share of
        resamples where ``name`` is at least as good. None without classical models."""
        if not self.classical:
            return None
        errors = {k: np.abs(self.actual - self.predictions[k]).sum(axis=1) for k in (name, *self.classical)}
        rows, block = self._resampled_cutoffs(n_boot, seed)
        best = np.min([errors[k][rows].sum(axis=1) for k in self.classical], axis=0)
        ratios = np.divide(errors[name][rows].sum(axis=1), best, out=np.full(n_boot, np.inf), where=best > 0)
        low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
        return {"low": _num(low), "high": _num(high), "level": level, "share_at_most_one": float(np.mean(ratios <= 1)),
                "block": block, "n_boot": n_boot}

    def coverage_interval(self, level: float = 0.9, n_boot: int = 2000, seed: int = 0) -> dict | None:
        """How sure :attr:`coverage` is, by the same block bootstrap over the cut-offs (None without
        quantiles): few cut-offs make it a rough estimate, whatever the interval's true coverage."""
        if self.quantiles is None:
            return None
        inside = ((self.actual >= self.quantiles[..., 0]) & (self.actual <= self.quantiles[..., 2])).mean(axis=1)
        rows, block = self._resampled_cutoffs(n_boot, seed)
        low, high = np.quantile(inside[rows].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
        return {"low": float(low), "high": float(high), "level": level, "block": block, "n_boot": n_boot}

    def _resampled_cutoffs(self, n_boot: int, seed: int) -> tuple[np.ndarray, int]:
        """(n_boot, n) cut-off indices of a circular block bootstrap whose blocks span one forecast."""
        n = len(self.cutoffs)
        gap = max(1, int(np.median(np.diff(self.cutoffs)))) if n > 1 else 1
        block = min(n, math.ceil(self.horizon / gap))
        starts = np.random.default_rng(seed).integers(0, n, size=(n_boot, math.ceil(n / block)))
        return ((starts[..., None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n], block

    @property
    def best_baseline(self) -> str:
        return min(self.baselines, key=self._mase)

    @property
    def ratios(self) -> dict[str, dict[str, float]]:
        """``model MASE / baseline MASE``: below 1 the model wins (inf when the baseline is perfect)."""
        def ratio(m: float, b: float) -> float:
            return m / b if b > 0 else (1.0 if m == 0 else math.inf)
        return {m: {b: ratio(self._mase(m), self._mase(b)) for b in self.baselines} for m in self.models}

    @property
    def verdicts(self) -> dict[str, str]:
        out = {}
        for m in self.models:
            score = self._mase(m)
            lost = sorted((b for b in self.baselines if score >= self._mase(b)), key=self._mase)
            if not lost:
                best = self.best_baseline
                out[m] = f"{m} beats every baseline on MASE: {score:.3f} vs {self._mase(best):.3f} ({best})."
                continue
            b = lost[0]
            verb = "ties with" if math.isclose(score, self._mase(b), rel_tol=1e-9) else "loses to"
            also = "".join(f"; also to {o} ({self._mase(o):.3f})" for o in lost[1:])
            out[m] = f"{m} {verb} {b} on MASE: {score:.3f} vs {self._mase(b):.3f}{also}."
        return out

    @property
    def verdict(self) -> str:
        if not self.models:
            best = self.best_baseline
            text = f"No model to compare; the best baseline is {best} (MASE {self._mase(best):.3f})."
        else:
            text = " ".join(self.verdicts.values())
        if self.classical:
            best = self.best
            text += f" Best of all: {best} (MASE {self._mase(best):.3f})"
            if best in self.fits:
                text += f", {self.fits[best]['spec']}"
            behind = [f"{m} is {self._mase(m) / self._mase(best):.2f}x of it" for m in self.models if m != best
                      and self._mase(best) > 0]
            text += ("; " + "; ".join(behind) if behind else "") + "."
            trouble = [n for name in self.classical for n in self.fits.get(name, {}).get("notes", [])
                       if "converge" in n or "failed" in n]
            text += "".join(f" Note: {n}." for n in trouble)
        return text

    def to_dict(self) -> dict:
        table = {k: {m: v if m == "mae_by_step" else _num(v) for m, v in row.items()} for k, row in self.table.items()}
        ratios = {m: {b: _num(r) for b, r in row.items()} for m, row in self.ratios.items()}
        return {"table": table, "ratios": ratios, "verdict": self.verdict, "best_baseline": self.best_baseline,
                "n_cutoffs": len(self.cutoffs), "cutoffs": [int(c) for c in self.cutoffs],
                "season": self.season, "horizon": self.horizon, "classical": {k: self.fits[k] for k in self.classical},
                "best": self.best, "to_best_classical": {m: _num(self.to_best_classical(m)) for m in self.models},
                "to_best_classical_interval": {m: self.to_best_classical_interval(m) for m in self.models}}

    def to_frame(self):
        import pandas as pd

        frame = pd.DataFrame([[self.table[k][m] for m in METRICS] for k in self.table], index=list(self.table),
                             columns=list(METRICS))
        frame.index.name = "forecaster"
        return frame

    def markdown(self) -> str:
        lines = ["| forecaster | MAE | RMSE | sMAPE (%) | MASE |", "|---|---:|---:|---:|---:|"]
        for name, row in self.table.items():
            label = f"{name} (baseline)" if name in self.baselines else f"{name} ({self.fits[name]['spec']})" \
                if name in self.fits else name
            lines.append(f"| {label} | " + " | ".join(f"{row[m]:.3f}" for m in METRICS) + " |")
        return "\n".join(lines)


def backtest(y, horizon: int, cutoffs, forecasters: dict[str, Callable[[np.ndarray], np.ndarray]] | None,
             season: int | None, train_end: int, classical: Sequence[str] = (), refit_every: int | None = None,
             transform: str | None = None) -> BacktestResult:
    """Score each ``forecasters[name](cutoffs) -> (n_cutoffs, H)`` and the baselines at ``cutoffs``.

    ``y`` is the target (1-D; for 2-D input column 0 is used). Baselines are added
    automatically (seasonal_naive only when ``season`` is given); MASE is scaled on ``y[:train_end]``.
    ``classical`` names classical models (``ets``, ``theta``, ``arima``; see
    :mod:`toolkit.timeseries.classical`) run at the same cut-offs, their form chosen on the history
    before the first one and refit every ``refit_every`` cut-offs (default: at most
    ``MAX_REFITS`` refits in all); ``transform="log"`` fits them on logs.
    """
    values = np.asarray(y, dtype=np.float64)
    values = _series(values[:, 0] if values.ndim == 2 else values, name="series", min_len=2)
    h = _positive(horizon, "horizon")
    cuts = np.asarray(cutoffs).reshape(-1)
    if len(cuts) == 0 or not np.issubdtype(cuts.dtype, np.integer):
        raise DataError(f"Expected at least one integer cut-off. Received: {cuts!r}. Use rolling_cutoffs(...).")
    if cuts.min() < 1 or cuts.max() + h > len(values):
        raise DataError(f"Expected cut-offs between 1 and len(y) - horizon = {len(values) - h}. Received "
                        f"{int(cuts.min())}..{int(cuts.max())}. Use rolling_cutoffs(len(y), horizon, first).")
    if cuts.min() < train_end:
        warnings.warn(f"Cut-off {int(cuts.min())} is before train_end={train_end}: those forecasts are scored on data "
                      "the model was trained on.", stacklevel=2)
    forecasters = dict(forecasters or {})
    from .classical import CLASSICAL, MAX_REFITS, run_classical

    classical = list(classical or ())
    unknown = sorted(set(classical) - set(CLASSICAL))
    if unknown:
        raise ValueError(f"Unknown classical models {unknown}. Valid names: {', '.join(CLASSICAL)}.")
    clash = sorted(set(forecasters) & (set(BASELINES) | set(CLASSICAL)))
    if clash:
        raise ValueError(f"Forecaster names {clash} are taken by the baselines or the classical models. Rename them.")
    actual = np.stack([values[c:c + h] for c in cuts])
    predictions = {}
    for name, fn in forecasters.items():
        pred = np.asarray(fn(cuts), dtype=np.float64)
        if pred.shape != actual.shape or not np.all(np.isfinite(pred)):
            raise DataError(f"Expected forecaster {name!r} to return finite forecasts of shape {actual.shape} "
                            f"(n_cutoffs, horizon). Received shape={pred.shape}.")
        predictions[name] = pred
    fits, intervals = {}, {}
    every = refit_every or max(1, math.ceil(len(cuts) / MAX_REFITS))
    for name in classical:
        run = run_classical(name, values, h, cuts, season, transform=transform, refit_every=every)
        predictions[name], fits[name] = run.predictions, run.info()
        if run.half_widths is not None:
            intervals[name] = run.half_widths
    baselines = [b for b in BASELINES if b != "seasonal_naive" or season is not None]
    for b in baselines:
        predictions[b] = np.stack([baseline_forecast(b, values[:c], h, season) for c in cuts])
    train = values[:train_end]
    table = {name: forecast_metrics(actual, pred, train, season) for name, pred in predictions.items()}
    return BacktestResult(table, predictions, actual, cuts.astype(np.int64), season, h, list(forecasters), baselines,
                          classical=classical, fits=fits, intervals=intervals)
