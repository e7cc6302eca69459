"""Classical forecasters beside the neural ones: ETS, Theta and a seasonal ARIMA (statsmodels).

What a user who knows the field compares a forecaster with, run in every backtest:

- ``ets``: statsmodels' ``ETSModel``, the form (additive or multiplicative error and season,
  no / additive / damped trend) chosen by AICc; ``transform="log"`` fits additive forms on the
  log of a positive series (multiplicative seasonality made additive);
- ``theta``: ``ThetaModel`` (Assimakopoulos & Nikolopoulos), deseasonalized when there is a season;
- ``arima``: SARIMAX with a small automatic order search: differencing by tests (KPSS for
  ``d``, seasonal strength for ``D``), then the (p, q)(P, Q) by AICc over a handful of orders.

The form or order is chosen once, by AICc on the history before the first cut-off (the training
part); its parameters are refit at every cut-off (warm-started from the previous cut-off's). SARIMAX
is fitted on the differenced series (``simple_differencing``: a state vector without the d + sD
differencing states, about twice as fast on monthly series) and its forecasts integrated back. The
form chosen on a history and a fresh fit on it are remembered (a few of each, keyed by the data),
so the forecaster's members and the backtest that follows them do not fit the same thing twice. A
fit that does not converge is counted; a fit that fails or forecasts non-finite values is counted
and replaced by the seasonal naive forecast at that cut-off (never dropped). A history shorter
than two seasons falls back to the non-seasonal form, with a note.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import time
import warnings
from typing import Any, Sequence

import numpy as np

from ..errors import DataError
from ..serving import Memo

CLASSICAL = ("ets", "theta", "arima")
TRANSFORMS = (None, "log")
MIN_SEASONS = 2  # full seasons a seasonal model needs in its history
MAX_REFITS = 12  # a backtest's default: refit at most this many cut-offs (evenly), filter the others
MEMO_SIZE = 16  # chosen forms and fresh fits remembered (the latest ones)
_MEMO = Memo(MEMO_SIZE)


@dataclasses.dataclass
class ClassicalSpec:
    """A chosen form: ``name`` (ets, theta, arima), its statsmodels arguments, a readable label."""

    name: str
    kwargs: dict
    label: str
    transform: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ClassicalRun:
    """A classical model's forecasts at every cut-off of a backtest and how its fits went."""

    name: str
    label: str
    predictions: np.ndarray  # (n_cutoffs, horizon)
    fit_seconds: float  # all fits together, the form search included
    select_seconds: float
    not_converged: int  # fits whose optimiser did not converge (their forecasts are kept)
    failed: int  # fits that raised or forecast non-finite values (seasonal naive used there)
    notes: list[str]
    n_refits: int = 0  # cut-offs whose parameters were estimated again
    half_widths: np.ndarray | None = None  # (n_cutoffs, horizon): ETS's own 80% interval half-widths (NaN: none)

    def info(self) -> dict:
        return {"spec": self.label, "fit_seconds": round(self.fit_seconds, 3),
                "select_seconds": round(self.select_seconds, 3), "not_converged": self.not_converged,
                "failed": self.failed, "n_cutoffs": int(len(self.predictions)), "n_refits": self.n_refits,
                "notes": list(self.notes)}


def _aicc(result: Any) -> float:
    value = getattr(result, "aicc", None)
    if value is None or not np.isfinite(value):
        value = getattr(result, "aic", np.inf)
    return float(value) if np.isfinite(value) else np.inf


def _seasonal(season: int | None, n: int, name: str, notes: list[str]) -> int | None:
    if not season or season < 2:
        return None
    if n < MIN_SEASONS * season + 2:
        notes.append(f"{name}: the history ({n} points) is shorter than {MIN_SEASONS} seasons of {season} + 2; "
                     "fitted without a season")
        return None
    return int(season)


def _transform(y: np.ndarray, transform: str | None) -> np.ndarray:
    if transform is None:
        return y
    if transform != "log":
        raise ValueError(f"Unknown transform {transform!r}. Valid transforms: None, 'log'.")
    if np.min(y) <= 0:
        raise DataError(f"The log transform needs a positive series. Received a minimum of {np.min(y):.4g}. "
                        "Use transform=None, or shift the series above 0.")
    return np.log(y)


def _one_thread(function):
    """Run ``function`` with BLAS on one thread: statsmodels' state-space fits multiply tiny
    matrices, which a multi-threaded BLAS slows down several times on a busy machine."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper


# ============================================================================ fitting one form


def _key(*parts: Any, data: np.ndarray) -> tuple:
    return (*parts, len(data), hashlib.sha1(np.ascontiguousarray(data, np.float64).tobytes()).hexdigest())


def _remembered(key: tuple, compute):
    """``compute()`` once per ``key`` among the latest ``MEMO_SIZE`` keys (deterministic fits only)."""
    return _MEMO.get(key, compute)


def _undifference(w: np.ndarray, y: np.ndarray, d: int, D: int, season: int) -> np.ndarray:
    """The forecasts ``w`` of the differenced series (1 - B)^d (1 - B^s)^D y as forecasts of ``y``."""
    poly = np.array([1.0])
    for _ in range(d):
        poly = np.convolve(poly, [1.0, -1.0])
    for _ in range(D):
        poly = np.convolve(poly, np.r_[1.0, np.zeros(season - 1), -1.0])
    k, out = len(poly) - 1, list(np.asarray(y, np.float64))
    for value in w:  # y_t = w_t - sum_j poly_j y_{t-j}
        out.append(value - float(np.dot(poly[1:], out[-1:-k - 1:-1])) if k else value)
    return np.asarray(out[len(y):])


def _fit(spec: ClassicalSpec, y: np.ndarray, start_params: Any = None, fixed: bool = False):
    """(fitted result, converged) of ``spec`` on ``y`` (already transformed); ``fixed``: no
    estimation, the model with the parameters ``start_params`` run over ``y`` (a filter). Fresh
    fits (no start parameters) are remembered."""
    if start_params is None and not fixed:
        return _remembered(_key("fit", spec.name, repr(sorted(spec.kwargs.items())), data=y),
                           lambda: _estimate(spec, y, None, False))
    return _estimate(spec, y, start_params, fixed)


def _estimate(spec: ClassicalSpec, y: np.ndarray, start_params: Any, fixed: bool):
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if spec.name == "ets":
            from statsmodels.tsa.exponential_smoothing.ets import ETSModel

            import pandas as pd

            model = ETSModel(pd.Series(y), **spec.kwargs)  # a Series: its prediction intervals need an index
            result = model.smooth(start_params) if fixed else model.fit(disp=False, start_params=start_params,
                                                                        maxiter=200)
        elif spec.name == "theta":
            from statsmodels.tsa.forecasting.theta import ThetaModel

            result = ThetaModel(y, **spec.kwargs).fit()
        elif spec.kwargs.get("method") == "burg":  # a pure autoregression: Burg's estimates, no optimiser
            from statsmodels.tsa.arima.model import ARIMA

            kwargs = {k: v for k, v in spec.kwargs.items() if k != "method"}
            result = ARIMA(y, **kwargs).fit(method="burg")
        else:  # warm-started refits need few iterations
            from statsmodels.tsa.statespace.sarimax import SARIMAX

            model = SARIMAX(y, concentrate_scale=True, **spec.kwargs)
            result = model.filter(start_params) if fixed else model.fit(disp=False, start_params=start_params, maxiter=100 if start_params is None else 30)
    retvals = getattr(result, "mle_retvals", None) or {}
    converged = bool(retvals.get("converged", True)) and not any(issubclass(w.category, ConvergenceWarning)
                                                                 for w in caught)
    return result, converged


def _forecast(spec: ClassicalSpec, result: Any, horizon: int) -> np.ndarray:
    values = np.asarray(result.forecast(horizon), dtype=np.float64).reshape(-1)
    if spec.kwargs.get("simple_differencing"):  # SARIMAX forecast the differenced series
        d, D, m = spec.kwargs["order"][1], *(spec.kwargs.get("seasonal_order") or (0, 0, 0, 0))[1::2]
        values = _undifference(values, result.model.orig_endog.reshape(-1), d, D, m)
    return np.exp(values) if spec.transform == "log" else values


def _half_width(spec: ClassicalSpec, result: Any, horizon: int) -> np.ndarray | None:
    """Half the width of the model's own 80% prediction interval per step (ETS only: exact for the
    linear forms, simulated with a fixed seed for the multiplicative ones), in the series' units."""
    if spec.name != "ets":
        return None
    n = int(result.nobs)
    low, high = np.asarray(result.get_prediction(start=n, end=n + horizon - 1,
                                               rng=np.random.RandomState(0)).pred_int(alpha=0.2),
                           np.float64).T
    if spec.transform == "log":
        low, high = np.exp(low), np.exp(high)
    return (high - low) / 2


def _params(spec: ClassicalSpec, result: Any) -> Any:
    return None if spec.name == "theta" or spec.kwargs.get("method") else np.asarray(result.params)


# ============================================================================ choosing a form


def _ets_forms(y: np.ndarray, season: int | None, transform: str | None) -> list[dict]:
    """No, additive or damped trend x (A,.,A) and, for a positive series, (M,.,M) or (M,.,N)."""
    positive = transform is None and np.min(y) > 0
    kinds = ["add", "mul"] if positive else ["add"]
    return [{"error": kind, "trend": trend, "damped_trend": damped, "seasonal": kind if season else None,
             "seasonal_periods": season} for trend, damped in ((None, False), ("add", False), ("add", True))
            for kind in kinds]


def _ets_label(kwargs: dict) -> str:
    code = {None: "N", "add": "A", "mul": "M"}
    trend = code[kwargs["trend"]] + ("d" if kwargs["damped_trend"] else "")
    return f"ETS({code[kwargs['error']]},{trend},{code[kwargs['seasonal']]})"


def _arima_label(kwargs: dict) -> str:
    p, d, q = kwargs["order"]
    text = f"ARIMA({p},{d},{q})"
    if kwargs.get("seasonal_order") and kwargs["seasonal_order"][3]:
        P, D, Q, m = kwargs["seasonal_order"]
        text += f"({P},{D},{Q},{m})"
    if kwargs.get("trend") == "c":
        text += " with drift" if d + (kwargs.get("seasonal_order") or (0, 0))[1] else " with mean"
    return text


def _differences(y: np.ndarray, season: int | None) -> tuple[int, int]:
    """(d, D): D = 1 when the seasonal strength (STL) is above 0.64, d by KPSS on what is left."""
    D = 0
    if season:
        from statsmodels.tsa.seasonal import STL

        fit = STL(y, period=season, robust=True).fit()
        rest = fit.resid
        strength = max(0.0, 1 - np.var(rest) / max(np.var(fit.seasonal + rest), 1e-12))
        D = int(strength > 0.64)
    x = np.diff(y, season) if D else y
    d = 0
    from statsmodels.tsa.stattools import kpss

    for _ in range(2):
        if len(x) < 12 or np.ptp(x) == 0:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_value = kpss(x, regression="c", nlags="auto")[1]
        if p_value >= 0.05:
            break
        d, x = d + 1, np.diff(x)
    return d, D


def _arima_orders(n: int, season: int | None, d: int, D: int) -> list[dict]:
    """The candidate orders; all share (d, D), so their AICc compare. A constant (a drift after one
    difference) only up to one difference in all."""
    trend, simple = "c" if d + D <= 1 else "n", d + D > 0
    if season:
        return [{"order": (p, d, q), "seasonal_order": (P, D, Q, season), "trend": trend, "simple_differencing": simple}
                for (p, q), (P, Q) in (((0, 1), (0, 1)), ((1, 0), (0, 1)), ((1, 1), (0, 1)), ((2, 1), (0, 1)),
                                       ((2, 1), (1, 1)))]
    orders = [{"order": (p, d, q), "trend": trend, "simple_differencing": simple} for p in (0, 1, 2, 3)
              for q in (1, 2)]
    # Pure autoregressions up to order 10 (cycles such as the sunspots'), by Burg's method.
    return orders + [{"order": (p, d, 0), "trend": trend, "method": "burg"} for p in range(1, 11) if n > 6 * p]


@_one_thread
def select(name: str, history: Any, season: int | None, transform: str | None = None) -> ClassicalSpec:
    """The form of ``name`` chosen by AICc on ``history`` (a 1-D array); remembered per history."""
    if name not in CLASSICAL:
        raise ValueError(f"Unknown classical model {name!r}. Valid names: {', '.join(CLASSICAL)}.")
    y = np.asarray(history, dtype=np.float64).reshape(-1)
    spec = _remembered(_key("select", name, season, transform, data=y), lambda: _select(name, y, season, transform))
    return copy.deepcopy(spec)


def _select(name: str, y: np.ndarray, season: int | None, transform: str | None) -> ClassicalSpec:
    notes: list[str] = []
    m = _seasonal(season, len(y), name, notes)
    z = _transform(y, transform)
    suffix = " on logs" if transform == "log" else ""
    if name == "theta":
        kwargs = {"period": m or 1, "deseasonalize": bool(m),
                  "method": "additive" if transform or np.min(y) <= 0 else "auto"}
        return ClassicalSpec(name, kwargs, f"Theta(period={m})" if m else "Theta", transform, notes)
    if name == "ets":
        candidates = _ets_forms(z, m, transform)
        label = _ets_label
    else:
        d, D = _differences(z, m)
        if m and D == 0 and season:
            notes.append(f"arima: weak seasonality at {m} (STL strength <= 0.64), no seasonal difference")
        candidates = _arima_orders(len(z), m if D else None, d, D)
        label = _arima_label
    best, best_score = None, np.inf
    for kwargs in candidates:
        spec = ClassicalSpec(name, kwargs, label(kwargs), transform)
        try:
            result, _ = _fit(spec, z)
        except Exception:  # noqa: BLE001 - a form that cannot be fitted is not a candidate
            continue
        score = _aicc(result)
        if score < best_score:
            best, best_score = spec, score
    if best is None:
        raise DataError(f"No {name} form could be fitted to the {len(y)} points. Use a longer or less "
                        "irregular history.")
    best.label += suffix
    best.notes = notes
    return best


# ============================================================================ forecasting and backtests


def classical_forecast(name: str, history: Any, horizon: int, season: int | None = None,
                       transform: str | None = None) -> np.ndarray:
    """Forecast ``horizon`` steps after ``history`` with ``name`` (its form chosen on ``history``)."""
    return np.asarray(fitted(name, history, horizon, season, transform)["forecast"])


@_one_thread
def fitted(name: str, history: Any, horizon: int, season: int | None = None, transform: str | None = None) -> dict:
    """``name`` fitted on ``history`` (form by AICc there): {spec, kwargs, params, forecast} in plain
    Python types (what a card records of it)."""
    spec = select(name, history, season, transform)
    y = _transform(np.asarray(history, dtype=np.float64).reshape(-1), transform)
    result, _ = _fit(spec, y)
    params, half = _params(spec, result), _half_width(spec, result, horizon)
    return {"spec": spec.label, "transform": transform, **({} if half is None else {"half_width_80": half.tolist()}),
            "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.kwargs.items()},
            "params": None if params is None else [float(v) for v in params],
            "forecast": [float(v) for v in _forecast(spec, result, horizon)]}


@_one_thread
def run_classical(name: str, y: Any, horizon: int, cutoffs: Sequence[int], season: int | None,
                  transform: str | None = None, refit_every: int = 1) -> ClassicalRun:
    """``name``'s forecasts of ``y[c:c+H]`` from ``y[:c]`` at every cut-off: the form chosen on
    ``y[:cutoffs[0]]``, its parameters refit at every ``refit_every``-th cut-off (1: at every one)
    and, in between, the last parameters run over the longer history (Theta and the Burg
    autoregressions, being cheap, are refit at every cut-off)."""
    values = np.asarray(y, dtype=np.float64).reshape(-1)
    cuts = [int(c) for c in cutoffs]
    start = time.perf_counter()
    spec = select(name, values[: cuts[0]], season, transform)
    select_seconds = time.perf_counter() - start
    seasonal = spec.kwargs.get("seasonal_periods") or (spec.kwargs.get("seasonal_order") or (0, 0, 0, 0))[3] \
        or (spec.kwargs.get("period") if spec.kwargs.get("deseasonalize") else None)
    out, halves, not_converged, failed, params = [], [], 0, 0, None
    refit_every = max(1, int(refit_every))
    n_refits = 0
    for i, c in enumerate(cuts):
        try:
            fixed = params is not None and i % refit_every != 0
            n_refits += not fixed
            result, converged = _fit(spec, _transform(values[:c], transform), params, fixed=fixed)
            forecast = _forecast(spec, result, horizon)
            if forecast.shape != (horizon,) or not np.all(np.isfinite(forecast)):
                raise ValueError("non-finite forecast")
            not_converged += not converged and not fixed
            params = params if fixed else _params(spec, result)
        except Exception:  # noqa: BLE001 - counted and replaced, never dropped
            failed += 1
            lag = seasonal if seasonal and c >= seasonal else 1
            forecast, result = np.resize(values[c - lag:c], horizon), None  # the seasonal naive (or naive) forecast
        out.append(forecast)
        if spec.name == "ets":
            try:
                halves.append(_half_width(spec, result, horizon) if result is not None else np.full(horizon, np.nan))
            except Exception:  # noqa: BLE001 - no interval there: the caller falls back to its own
                halves.append(np.full(horizon, np.nan))
    notes = list(spec.notes)
    if not_converged:
        notes.append(f"{name}: the optimiser did not converge at {not_converged} of {len(cuts)} cut-offs "
                     "(their forecasts are kept)")
    if failed:
        notes.append(f"{name}: the fit failed at {failed} of {len(cuts)} cut-offs (seasonal naive used there)")
    if n_refits < len(cuts):
        notes.append(f"{name}: parameters refit at {n_refits} of {len(cuts)} cut-offs (every {refit_every}); "
                     "the others run the last fit over their longer history")
    return ClassicalRun(name, spec.label, np.stack(out), time.perf_counter() - start, select_seconds,
                        not_converged, failed, notes, n_refits, np.stack(halves) if halves else None)


__all__ = ["CLASSICAL", "ClassicalRun", "ClassicalSpec", "classical_forecast", "fitted", "run_classical", "select"]
