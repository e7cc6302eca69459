"""The default forecaster: the network, a classical model or their ensemble, picked by a
validation backtest carved from the training part only.

``Forecaster(pick="auto").fit(train)`` (``toolkit train timeseries``'s default) holds out the
latest quarter of ``train`` (at least two horizons) as a validation stretch, fits each neural
candidate (the config's model and ``NETWORKS``: the LSTM and N-BEATS) on what comes before it,
runs ETS, Theta and ARIMA (:mod:`.classical`, form by AICc on that same earlier part) at up to
``VALIDATION_CUTOFFS`` rolling cut-offs of the stretch, and scores the candidates by MASE there:

- the network member alone: the ``lstm+nbeats`` blend (the mean of the two, :mod:`.blend`; its
  validation forecast is the mean of theirs) unless one network beats it by more than ``MARGIN``
  (the forecaster then fits that network on the whole training part: the "pure network");
- each classical model alone (the config's ``classical``);
- ``ensemble``: the mean of the network and every classical model, weighted by the inverse of
  their validation MASE;
- ``ensemble_top2`` .. ``ensemble_top3``: the plain mean of the best 2 (3) by validation MASE.

The lowest validation MASE wins (the test part is never seen), a single model only when it beats
the best combination by more than ``MARGIN``, and a candidate with the network in it only when it
beats the best classical model by more than ``NEURAL_MARGIN`` (else that model alone): the
network's validation MASE comes from one training run on a shorter history, a noisier estimate
than a classical model's, and a small validation gain of a network-holding ensemble did not
carry over to the test part (co2: 1% better than ARIMA on validation, 3% worse on test). The pick (the network alone too) gets split-conformal
intervals: per step, the ceil((n + 1) 0.8) / n quantile of the absolute validation errors of its
median over the n cut-offs, on either side of the median (the network's own quantiles are
calibrated on its early-stopping windows, which it has seen, and under-cover on some series).
A few overlapping cut-offs from the end of the training part say little about calmer or wilder
stretches before it (cpi's 1990s against its 2000s), so when ETS is among the classical models the
half-width at a cut-off is the mean of that conformal half-width and ETS's own 80% interval
half-width there (its form and parameters estimated on the whole history before the cut-off):
a shrinkage of the short-sample estimate toward a model-based one (``INTERVAL_MODEL``). The
final network is the one fitted on the whole training part; classical members are refit on the
history they forecast from (their form chosen by AICc there).

Phones: the ``.tflite`` holds the network only. A pick with classical members records in the
card their weights, forms, fitted parameters and their forecast from the end of the recorded
history, so a phone reproduces the shipped forecast as ``sum(w * member)`` with the network's
p50 from the file and the interval half-widths from the card; a newer history needs the
classical members refit off the phone (``toolkit forecast``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..errors import DataError
from .baselines import forecast_metrics, rolling_cutoffs
from .blend import BLENDS
from .classical import fitted, run_classical

PICKS = ("auto", "network")
VALIDATION_CUTOFFS = 24  # cut-offs of the validation backtest (evenly spread over the stretch)
VALIDATION_REFITS = 8  # classical parameter refits along them (the others filter the last fit)
NETWORKS = ("lstm", "nbeats")  # neural candidates beside the config's model (and the blends of them, .blend)
TOP_K = 3  # equal-weight means of the validation top 2 .. TOP_K candidates
MARGIN = 0.03  # a single model must beat the best combination by this share of its MASE (a network: the blend)
NEURAL_MARGIN = 0.05  # a pick with a network in it must beat the best classical model by this share
COVERAGE = 0.8
INTERVAL_MODEL = "ets"  # the classical model whose own 80% interval the conformal half-width is averaged with


@dataclasses.dataclass
class Pick:
    """What the default forecaster is: member name -> weight (the network under its model name)."""

    name: str  # the winning candidate: the network's model name, a classical name, "ensemble", "ensemble_top2"
    weights: dict[str, float]
    network: str
    validation: dict[str, float]  # candidate -> validation MASE
    n_cutoffs: int
    reason: str
    half_width: list[float] | None = None  # per-step half-widths at the recorded end (None: the network's own interval)
    conformal: list[float] | None = None  # per-step conformal half-widths from the validation backtest
    interval_model: str | None = None  # INTERVAL_MODEL when its own interval is averaged in (None: conformal alone)
    model_half_width: list[float] | None = None  # its own 80% half-widths at the recorded end
    members: dict[str, dict] = dataclasses.field(default_factory=dict)  # classical member -> form, params, forecast
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def classical(self) -> list[str]:
        return [k for k in self.weights if k != self.network]

    @property
    def label(self) -> str:
        if not self.classical:
            return f"{self.network} (network)"
        parts = " + ".join(f"{w:.2f} {k}" for k, w in self.weights.items())
        return f"{self.name} ({parts})" if len(self.weights) > 1 else f"{self.name} (classical)"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "label": self.label, "phone": self.phone()}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Pick | None":
        if not data:
            return None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def phone(self) -> str:
        """How a phone reproduces this forecaster from the exported file."""
        blend = (f" (the mean of the validation conformal half-width, pick.conformal, and {self.interval_model}'s own 80% "
                 "interval half-width from the end of the recorded history, pick.model_half_width; for a newer "
                 "history recompute the latter off the phone)") if self.interval_model else ""
        if not self.classical:
            if not self.half_width:
                return "The .tflite file is the whole forecaster: raw window in, p10/p50/p90 out."
            return ("The .tflite file's p50 is the forecaster's; its p10/p90 are the network's own quantiles, the "
                    "default forecaster's interval is p50 -/+ pick.half_width (per step, from the validation "
                    f"backtest){blend}.")
        net = self.weights.get(self.network)
        how = (f"p50 = {net:.4f} x the file's p50 + " if net else "p50 = ") + " + ".join(
            f"{self.weights[k]:.4f} x {k} ({self.members.get(k, {}).get('spec', k)})" for k in self.classical)
        return ("The .tflite file holds the network member only (its own p10/p50/p90); the picked forecaster adds "
                "statsmodels members a phone cannot run. " + how + f"; p10/p90 = p50 -/+ pick.half_width (per step{blend}). "
                "pick.members[name].forecast holds each classical member's forecast from the end of the recorded "
                "history (last_time), with its fitted form and parameters, so a phone reproduces the shipped "
                "forecast exactly; for a newer history refit them off the phone (toolkit forecast) and send the "
                "forecast over.")


def _mase(actual: np.ndarray, pred: np.ndarray, train: np.ndarray, season: int | None) -> float:
    return float(forecast_metrics(actual, pred, train, season)["mase"])


def half_widths(pick: Pick, model_half: Any = None) -> np.ndarray:
    """The pick's per-step half-widths: at the recorded end (``model_half`` None), or at each cut-off
    from ``INTERVAL_MODEL``'s own (N, H) half-widths there (the conformal alone where it has none)."""
    if model_half is None or not pick.interval_model or not pick.conformal:
        return np.asarray(pick.half_width, np.float64)
    conformal = np.asarray(pick.conformal, np.float64)
    model_half = np.asarray(model_half, np.float64)
    return np.where(np.isfinite(model_half), (conformal + model_half) / 2, conformal)


def combine(pick: Pick, network: np.ndarray, classical: dict[str, np.ndarray], half: Any = None) -> np.ndarray:
    """(N, H, 3) quantiles of the picked forecaster from the network's (N, H, 3) and the classical
    members' (N, H) medians, p50 -/+ ``half`` (default: ``pick.half_width``; see :func:`half_widths`)."""
    if not pick.half_width:
        return network
    p50 = sum(w * (network[..., 1] if k == pick.network else np.asarray(classical[k], np.float64))
              for k, w in pick.weights.items())
    half = np.asarray(pick.half_width if half is None else half, np.float64)
    return np.stack([p50 - half, p50, p50 + half], axis=-1)  # float64: a lone classical pick scores as itself


def _conformal(errors: np.ndarray) -> list[float]:
    """Per step, the split-conformal half-width of the validation absolute errors: their
    ceil((n + 1) 0.8) / n quantile (n cut-offs), which widens the interval the fewer the
    validation windows (n = 24: the 83rd percentile; n = 8: the 88th)."""
    n = len(errors)
    level = min(1.0, math.ceil((n + 1) * COVERAGE) / n)
    return np.quantile(np.abs(errors), level, axis=0, method="higher").tolist()


def _network_predictions(model: Any, series: Any, first: int, cuts: np.ndarray, verbose: int) -> dict:
    """Each neural candidate (``NETWORKS`` beside the config's model) fitted on ``series[:first]``:
    name -> its (n_cuts, H) medians at ``cuts``; a DataError when the early part is too short."""
    cfg, out = model.config, {}
    for name in dict.fromkeys(m for k in (cfg.model, *NETWORKS) for m in BLENDS.get(k, (k,))):
        sub = type(model)(dataclasses.replace(cfg, model=name, pick="network", classical=(), window=model.window_,
                                              seasonality=model.season_ or 1))
        if first < sub.min_train_length():
            raise DataError(f"the training part is too short to hold out a validation stretch for the network "
                            f"({sub.min_train_length()} points) and {2 * cfg.horizon} more")
        sub.fit(series.slice(0, first), verbose=verbose)
        out[name] = sub._run(np.stack([series.values[c - model.window_:c] for c in cuts]))[..., 1].astype(float)
    for name, members in BLENDS.items():  # a blend's p50 is the mean of its members' p50s: no second training
        if all(m in out for m in members):
            out[name] = np.mean([out[m] for m in members], axis=0)
    return out


def _prefer(scores: dict[str, float], combined: list[str], alone: list[str], margin: float) -> str:
    """The best of ``combined`` unless the best of ``alone`` beats it by more than ``margin`` (its share)."""
    if not combined or not alone:
        return min(combined or alone, key=scores.get)
    best_combined, best_alone = min(combined, key=scores.get), min(alone, key=scores.get)
    return best_alone if scores[best_alone] < (1 - margin) * scores[best_combined] else best_combined


def validation_pick(model: Any, series: Any, verbose: int = 0) -> Pick:
    """Pick the default forecaster for ``model`` (a Forecaster whose season and window are set) on
    its training ``series``; ``pick.network`` is the neural candidate with the lowest validation
    MASE, the network the forecaster then fits on the whole training part."""
    cfg = model.config
    y = series.target.astype(np.float64)
    n, h = len(series), cfg.horizon
    first = n - max(2 * h, math.ceil(0.25 * n))
    try:
        cuts = rolling_cutoffs(n, h, max(first, 1), max_cutoffs=VALIDATION_CUTOFFS)
        preds = _network_predictions(model, series, first, cuts, verbose)
    except DataError as exc:
        return Pick(cfg.model, {cfg.model: 1.0}, cfg.model, {}, 0, f"{exc}; the network {cfg.model} alone")
    actual = np.stack([y[c:c + h] for c in cuts])
    train = y[:first]
    notes, forms, model_half = [], {}, None
    every = max(1, math.ceil(len(cuts) / VALIDATION_REFITS))
    for name in cfg.classical:
        try:
            run = run_classical(name, y, h, cuts, model.season_, refit_every=every)
        except DataError as exc:
            notes.append(f"{name}: not a candidate ({exc})")
            continue
        preds[name], forms[name] = run.predictions, run.label
        if name == INTERVAL_MODEL and run.half_widths is not None and np.isfinite(run.half_widths).any():
            model_half = run.half_widths
        notes += [note for note in run.notes if "refit at" not in note]
    scores = {k: _mase(actual, p, train, model.season_) for k, p in preds.items()}
    networks = [k for k in preds if k not in forms]
    # the network member: the best blend of networks unless a single network beats it clearly
    network = _prefer(scores, [k for k in networks if k in BLENDS], [k for k in networks if k not in BLENDS], MARGIN)
    singles = [network, *forms]  # the other networks are not members of any ensemble
    ranked_singles = sorted(singles, key=scores.get)
    candidates = {k: {k: 1.0} for k in singles}
    if len(singles) > 1:
        inverse = {k: 1 / max(scores[k], 1e-9) for k in singles}
        candidates["ensemble"] = {k: v / sum(inverse.values()) for k, v in inverse.items()}
        for k in range(2, min(TOP_K, len(singles)) + 1):
            candidates[f"ensemble_top{k}"] = {m: 1 / k for m in ranked_singles[:k]}
    for name, weights in candidates.items():
        if name not in scores:
            scores[name] = _mase(actual, sum(w * preds[k] for k, w in weights.items()), train, model.season_)
    # a single model only when it beats every combination clearly (its choice is the noisier), and a pick with
    # the network in it only when it beats the best classical model clearly, else that model (the network's validation
    # MASE comes from one training run on a shorter history: a noisier estimate than a classical model's)
    combos = [k for k in candidates if k not in singles]
    best = _prefer(scores, combos, singles, MARGIN)
    if network in candidates[best] and forms:  # else the best classical model alone
        best = _prefer(scores, [min(forms, key=scores.get)], [best], NEURAL_MARGIN)
    ranked = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: kv[1]))
    reason = (f"the lowest MASE on a validation backtest over the last {n - first} points of the training part "
              f"({len(cuts)} cut-offs, horizon {h}; the networks fitted on the {first} points before them, the "
              f"classical forms chosen there; the test part unseen), a single model only when it beats every "
              f"combination by more than {MARGIN:.0%} (the network: the {'/'.join(BLENDS)} blend unless one "
              f"network beats it so), and one with the network in it only when it beats the best classical model "
              f"by more than {NEURAL_MARGIN:.0%} (else that model): {ranked}")
    weights = candidates[best]
    pick = Pick(best, weights, network, {k: round(v, 4) for k, v in scores.items()}, len(cuts), reason, notes=notes)
    errors = actual - sum(w * preds[k] for k, w in weights.items())
    pick.half_width = pick.conformal = _conformal(errors)
    if model_half is not None:
        pick.interval_model = INTERVAL_MODEL
        inside = np.abs(errors) <= half_widths(pick, model_half)
        pick.notes.append(f"80% interval: the mean of the conformal half-width and {INTERVAL_MODEL}'s own; "
                          f"{inside.mean():.2f} of the validation values inside (the conformal alone: "
                          f"{(np.abs(errors) <= np.asarray(pick.conformal)).mean():.2f}, by construction)")
    pick.members = {k: {"spec": forms[k]} for k in pick.classical}
    return pick


def _model_half(pick: Pick, y: np.ndarray, season: int | None, horizon: int, members: dict) -> np.ndarray | None:
    """``INTERVAL_MODEL``'s own 80% half-widths after ``y`` (from ``members`` when it is one), or None."""
    if not pick.interval_model:
        return None
    try:
        fit = members.get(pick.interval_model) or fitted(pick.interval_model, y, horizon, season)
        return np.asarray(fit["half_width_80"], np.float64)
    except (DataError, KeyError, ValueError, np.linalg.LinAlgError):
        return None


def refresh_members(pick: Pick | None, target: np.ndarray, season: int | None, horizon: int) -> None:
    """Refit the classical members on ``target`` (the history a forecast continues) and record their
    forms, parameters and forecasts in ``pick.members`` (what the card tells a phone), and the
    interval's half-widths there."""
    if pick is None or not (pick.classical or pick.interval_model):
        return
    y = np.asarray(target, np.float64)
    for name in pick.classical:
        pick.members[name] = fitted(name, y, horizon, season)
    half = _model_half(pick, y, season, horizon, pick.members)
    if half is not None and pick.conformal:
        pick.model_half_width = half.tolist()
        pick.half_width = half_widths(pick, half[None])[0].tolist()


def member_forecasts(pick: Pick, target: np.ndarray, season: int | None, horizon: int) -> dict[str, np.ndarray]:
    """The classical members' forecasts of the next ``horizon`` steps after ``target`` (and, under
    ``"half_width"``, the pick's (1, H) interval half-widths there)."""
    y = np.asarray(target, np.float64)
    fits = {name: fitted(name, y, horizon, season) for name in pick.classical}
    out = {name: np.asarray(fit["forecast"], np.float64)[None] for name, fit in fits.items()}
    half = _model_half(pick, y, season, horizon, fits)
    return {**out, "half_width": half_widths(pick, None if half is None else half[None])}


__all__ = ["PICKS", "Pick", "combine", "half_widths", "member_forecasts", "refresh_members", "validation_pick"]
