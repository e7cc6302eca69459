"""The default forecaster on series nobody chose anything on: 13 real series from statsmodels'
offline data sets that are not among the 7 of ``timeseries_classical``, set up the same way (the
last 20% the test part, 24 rolling cut-offs at most, the default ``Forecaster(pick="auto")`` at
``SEED``; quarterly series at horizon 8 like realgdp, the annual fertility rates at horizon 5 like
nile). Its MASE against the best of ETS, Theta and ARIMA, and its 80% interval coverage, per series
and counted.

These series were first run on 2026-12-06, after the default's pick rule and its interval rule
(the mean of the validation conformal half-width and ETS's own) had been chosen on the other 7:
they are the out-of-sample check of those choices. Choose nothing on them; add new unseen series
instead when a choice needs checking.
"""

from __future__ import annotations

import time
import warnings

from .common import target
from .timeseries import SEED, TEST_CUTOFFS, _at_most_one, chance_rows, coverage_note, interval_note, no_hindsight_peer

#: (data set, column or country) -> horizon
UNSEEN = {
    ("macrodata", "realcons"): 8, ("macrodata", "realinv"): 8, ("macrodata", "tbilrate"): 8,
    ("macrodata", "m1"): 8, ("macrodata", "infl"): 8, ("macrodata", "realdpi"): 8,
    ("interest_inflation", "R"): 8, ("interest_inflation", "Dp"): 8,
    ("fertility", "United States"): 5, ("fertility", "Japan"): 5, ("fertility", "France"): 5,
    ("fertility", "Korea, Rep."): 5, ("fertility", "Brazil"): 5,
}


def unseen_frame(dataset: str, column: str):
    """One series of statsmodels' offline data sets as a dated one-column frame."""
    import pandas as pd
    from statsmodels import datasets

    data = getattr(datasets, dataset).load_pandas().data
    if dataset == "macrodata":  # quarterly from 1959Q1, as realgdp/cpi/unemp
        index = pd.date_range(f"{int(data['year'].iloc[0])}-01-01", periods=len(data), freq="QS")
        return pd.DataFrame({column: data[column].to_numpy(float)}, index=index)
    if dataset == "interest_inflation":  # quarterly from 1972Q2 (its documentation)
        index = pd.date_range("1972-04-01", periods=len(data), freq="QS")
        return pd.DataFrame({column: data[column].to_numpy(float)}, index=index)
    years = [c for c in data.columns if c.isdigit()]  # fertility: one row per country, one column per year
    values = data.loc[data["Country Name"] == column, years].iloc[0].dropna()
    name = column.split(",")[0].replace(" ", "_").lower()
    return pd.DataFrame({name: values.to_numpy(float)}, index=pd.to_datetime(values.index.astype(str), format="%Y"))


def run() -> dict:
    from toolkit.data.series import load_series, split_series
    from toolkit.timeseries import Forecaster

    start, rows, tables = time.perf_counter(), [], {}
    for (dataset, column), horizon in UNSEEN.items():
        name = f"{dataset} {column}"
        series = load_series(unseen_frame(dataset, column))
        train, _ = split_series(series, 0.2)
        begin = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = Forecaster(seed=SEED, pick="auto", horizon=horizon).fit(train).evaluate(
                series, max_cutoffs=TEST_CUTOFFS)
        best = min(metrics["classical"], key=lambda k: metrics["classical"][k]["mase"])
        ratio = metrics["mase"] / metrics["classical"][best]["mase"]
        tables[name] = {"horizon": horizon, "n_cutoffs": metrics["n_cutoffs"], "season": metrics["season"],
                        "picked": metrics["pick"]["label"], "mase_default": metrics["mase"],
                        "classical": {k: v["mase"] for k, v in metrics["classical"].items()},
                        "network": metrics["network"], "default_to_best_classical": ratio,
                        "coverage_80": metrics["coverage_80"], "seconds": round(time.perf_counter() - begin, 1),
                        "interval": metrics["ratio_to_best_classical_interval"],
                        "coverage_interval": metrics["coverage_80_interval"],
                        "validation_peer": no_hindsight_peer(metrics)}
        rows.append(target(f"unseen {name}: default forecaster MASE / best classical ({best})", ratio, "<= 1.0",
                           _at_most_one(ratio), note=f"picked {metrics['pick']['label']}; {metrics['n_cutoffs']} "
                                                     f"cut-offs, horizon {horizon}; coverage {metrics['coverage_80']:.2f} ("
                                                     + coverage_note(metrics["coverage_80_interval"]) + "); "
                                                     + interval_note(tables[name]["interval"])))
    n = len(tables)
    wins = sum(_at_most_one(t["default_to_best_classical"]) for t in tables.values())
    covered = sum(0.7 <= t["coverage_80"] <= 0.9 for t in tables.values())
    networks = sum(t["network"]["ratio_to_best_classical"] < 1.0 for t in tables.values())
    rows += [
        target("unseen series where the default forecaster <= best classical", wins, f"{n} of {n}", wins == n,
               note="the issue's goal holds per series; these series chose nothing"),
        target("unseen series with the default's 80% coverage in 0.7-0.9", covered, f"{n} of {n}", covered == n),
        target("unseen series where the pure network < best classical", networks, f">= {n / 2:g}", networks >= n / 2),
        *chance_rows(tables, "unseen "),
        target("unseen series benchmark time", round((time.perf_counter() - start) / 60, 2), "reference", True, "min"),
    ]
    return {"rows": rows, "tables": tables}
