"""Time-series tab: forecast a built-in series or an uploaded CSV (history, p50, the p10-p90
interval and the naive / seasonal naive / drift baselines), the backtest table with its verdict,
which lags drove the forecast (SHAP / LIME heatmap), and anomalies flagged in a sensor series.

Plain handler functions (tested directly) plus ``timeseries_tab(...)`` (the components, inside an
open ``gr.Blocks``) and ``build_demo(...) -> gr.Blocks``. Nothing heavy happens at import time:
models load on the first request (or in ``warm_up``), once, and are shared by all requests, as
are the built-in series and each (model, series) backtest. A missing model folder, a bad upload
or a bad choice is a message in the page, never a crash.

A forecast request runs the model through a traced ``tf.function`` (about 1 ms; the forecaster's
eager ``model(x, training=False)`` costs about 25 ms for an LSTM on two cores) and draws only the
forecast, its band and the baselines on a picture of the axes and history made once per (model,
series) (matplotlib blitting; drawing the whole figure costs about 50 ms): about 10 ms in the
handler with the PNG, about 30 ms over HTTP (p50, two cores), for a target of 100 ms.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import (EXPLAIN, as_int, seed_value, card_facts, data_error, folder_facts, folders_key, missing_note,
                         named, notes_markdown, tab_header, upload_path, user_errors)
from apps.timeseries_plots import HISTORY_POINTS, anomaly_figure, plot_png, png_plot  # noqa: F401 (tests)
from apps.timeseries_service import (AUTO, CSV_SUFFIXES, MAX_QUICK_HORIZON, NO_TIME, QUICK, QUICK_HORIZON,
                                     QUICK_KINDS, QUICK_SECONDS, SENSOR, UPLOAD, TimeSeriesService,
                                     column_choice, csv_header, shared_service, significant, time_choice)

logger = logging.getLogger(__name__)
TITLE = "Time series"
EXPLAIN_METHODS = ("shap", "lime")
FLAGGED_ROWS = 200  # rows of the flagged-points table


def _when(value: Any) -> str:
    """A forecast time for the page: the date alone at midnight, else as it is."""
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else str(value)
    return f"step {value}"



@user_errors
def forecast(service: TimeSeriesService, source: Any = "sunspots", upload: Any = None, time_column: Any = None,
             target: Any = None, horizon: Any = None, model: Any = AUTO):
    """The forecast plot (history, p50, p10-p90, baselines; a PNG for gr.Plot), the backtest
    table and a note."""
    start = time.perf_counter()
    task, series, key, label, notes = service.resolve(source, upload, time_column, target, model)
    horizon = as_int(horizon, "the horizon", task.config.horizon)
    frame = task.forecast(series, horizon)  # checks 1 <= horizon <= the model's horizon
    if not np.isfinite(frame[["p10", "p50", "p90"]].to_numpy()).all():
        raise data_error(f"The {label} returned a forecast that is not a number (NaN or infinite) for this series. "
                          "Check the series' last values, or train another model.")
    baselines = task.baseline_forecasts(series, horizon)
    history = np.asarray(series.values[:, 0], float)
    if history.size and np.nanmin(history) >= 0 and (frame[["p10", "p50", "p90"]].to_numpy() < 0).any():
        # a series that is never negative (counts, levels): a forecast below zero is impossible
        frame = frame.assign(**{k: frame[k].clip(lower=0.0) for k in ("p10", "p50", "p90")})
        notes.append("Clipped at 0: the series is never negative, so neither is its forecast.")
    plot = png_plot(service.canvas(task, series, key, label).render(frame, baselines))
    table, verdict = service.backtest(task, series, key)
    elapsed = (time.perf_counter() - start) * 1000
    notes = [*notes, *(f"Loading the data: {n}." for n in series.notes if series.spec.get("source") not in
                       ("sunspots", "co2"))]
    if model == QUICK:
        info = task.app_training_  # set by service.train_quick
        notes.append(f"Quick model: a small {task.config.model} trained on this page on {info.get('points', '?')} "
                     f"points for {info.get('epochs', '?')} epochs ({info.get('seconds', 0):.0f} s); not a shipped "
                     "model.")
    last = {k: frame[k].iloc[-1] for k in frame.columns}  # (a row would turn step numbers into floats)
    note = (f"**{label}**, window {task.window_}, up to {task.config.horizon} steps: {elapsed:.0f} ms for this "
            f"request. Step {horizon} ({_when(last['time'])}): p50 **{last['p50']:.4g}**, 80% interval "
            f"[{last['p10']:.4g}, {last['p90']:.4g}].\n\n{verdict}")
    return plot, table, note + notes_markdown(notes)


def forecast_request(service: TimeSeriesService, source: str = "sunspots", horizon: int | None = None):
    """One forecast of a built-in series as the page asks for it, for benchmarks: (plot, backtest
    table); the plot is the PNG the page receives (gr.Plot's value)."""
    plot, table, _ = forecast(service, source, None, None, None, horizon, AUTO)
    return plot, table


@user_errors
def backtest_table(service: TimeSeriesService, source: Any = "sunspots", upload: Any = None, time_column: Any = None,
                   target: Any = None, model: Any = AUTO):
    """The backtest table of the chosen model and the baselines, and its verdict."""
    task, series, key, label, notes = service.resolve(source, upload, time_column, target, model)
    table, verdict = service.backtest(task, series, key)
    return table, f"**{label}**: {verdict}" + notes_markdown(notes)


@user_errors
def explain_forecast(service: TimeSeriesService, source: Any = "sunspots", upload: Any = None,
                     time_column: Any = None, target: Any = None, model: Any = AUTO, method: str = "shap",
                     step: Any = 1):
    """Which lags (and features) drove the p50 forecast at ``step`` (1 = the next step): the
    heatmap + bar chart image (uint8 RGB) and a note."""
    if method not in EXPLAIN_METHODS:
        raise data_error(f"Unknown explanation method {method!r}. Choose one of {list(EXPLAIN_METHODS)}.")
    task, series, _, label, notes = service.resolve(source, upload, time_column, target, model)
    step = as_int(step, "the step", 1)
    if not 1 <= step <= task.config.horizon:
        raise data_error(f"Expected a step from 1 to {task.config.horizon} (the model's horizon). Received {step}.")
    explanation = task.explain(series, method=method, step=step - 1)
    top = ", ".join(str(lag.get("lag")) for lag in (explanation.extra.get("top_lags") or [])[:3])
    note = (f"**{method.upper()}** for the **{explanation.target}** of the {label}: {explanation.seconds:.2f} s "
            f"for {explanation.budget} samples. Red cells push the forecast up, blue cells down"
            + (f"; the strongest: {top}." if top else "."))
    return explanation.image, note + notes_markdown(notes)


@user_errors
def train_quick_model(service: TimeSeriesService, source: Any = UPLOAD, upload: Any = None, time_column: Any = None,
                      target: Any = None, kind: str = "dense", horizon: Any = QUICK_HORIZON):
    """Fit a small forecaster on the chosen series (about 20 s at most); returns a note, the
    model choice (set to the quick model) and the horizon slider (up to its horizon)."""
    import gradio as gr

    horizon = as_int(horizon, "the quick model's horizon", QUICK_HORIZON)
    if not 1 <= horizon <= MAX_QUICK_HORIZON:
        raise data_error(f"Expected a quick-model horizon from 1 to {MAX_QUICK_HORIZON}. Received {horizon}.")
    source = "sunspots" if source in (None, "") else str(source)
    if source == UPLOAD:
        series, key = service.upload(upload, time_column, target)
    else:
        series, key = service.builtin(source), ("builtin", source)
    task = service.train_quick(series, key, kind, horizon)
    info = task.app_training_
    why = " (stopped by the time budget)" if info["stopped_by_budget"] else ""
    note = (f"Trained a quick **{kind}** model on {info['points']:,} points of {series.name!r}: "
            f"{info['epochs']} epochs in {info['seconds']:.1f} s{why}; window {task.window_}, horizon {horizon}"
            + (f", season {task.season_}" if task.season_ else "") + ". Its forecast and backtest follow.")
    return note, gr.update(value=QUICK), gr.update(maximum=horizon, value=horizon)


def _sensor_frame(service: TimeSeriesService, seed: Any):
    seed = seed_value(seed, default=1)
    return service.sensor(seed), f"synthetic sensor (seed {seed})", []


def _uploaded_sensor(service: TimeSeriesService, detector, upload, time_column, target):
    """An uploaded CSV as the detector's frame: time, the detector's value column(s) and the
    labels (is_anomaly / anomaly / label column) when the file has them."""
    import pandas as pd

    header = csv_header(upload)
    time_column = time_choice(time_column)
    if time_column is None:
        time_column = header["time_column"]
    columns = list(detector.columns_)
    if len(columns) == 1:
        chosen = column_choice(target) or header["target"]
        features: list[str] = []
    else:  # a multivariate detector reads its own columns by name
        chosen, features = columns[0], columns[1:]
    series, _ = service.upload(upload, time_column, chosen, features or None)
    notes = [f"Loading the data: {n}." for n in series.notes]
    labels = None
    if header["label"] and header["label"] not in (chosen, *features):
        try:
            labelled, _ = service.upload(upload, time_column, chosen, [*features, header["label"]])
            labels = labelled.values[:, -1] > 0.5
        except Exception as exc:  # the labels are optional: say why they are not used
            notes.append(f"The label column {header['label']!r} was not used: {exc}")
    frame = pd.DataFrame({"time": series.index})
    for i, name in enumerate(columns):
        frame[name] = series.values[:, i]
    if labels is not None:
        frame["is_anomaly"] = labels.astype(int)
    if len(columns) == 1 and chosen != columns[0]:
        notes.append(f"The detector was trained on {columns[0]!r}; it reads {chosen!r} in its place, scaled by "
                     f"{columns[0]!r}'s statistics.")
    return frame, series.name, notes


#: Share of flagged points above which a series is reported as unlike the detector's training data
#: (a detector flags a few percent of the series it knows; anomalies are rare by definition).
UNLIKE_SHARE = 0.3


def unlike_training(flags: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    """A warning ("" when none) when a series looks unlike the detector's training data: most
    points flagged, or a typical score far above the threshold."""
    if flags.size == 0:
        return ""
    median = float(np.median(scores))
    if flags.mean() > UNLIKE_SHARE or median > 3 * threshold:
        return (f"{flags.mean():.0%} of the points are flagged (typical score {median:.3g} against the threshold "
                f"{threshold:.3g}): this series looks unlike the one the detector learned, so the flags say "
                "\"different\", not \"anomalous\". Train a detector on this kind of data to find its anomalies.")
    return ""


@user_errors
def detect_anomalies(service: TimeSeriesService, source: Any = SENSOR, upload: Any = None, time_column: Any = None,
                     target: Any = None, seed: Any = 1):
    """The series with its flagged points and the score with the threshold (figure), a note
    with precision / recall / F1 when the data has labels, and the flagged points (table)."""
    from toolkit.timeseries.anomaly import anomaly_metrics

    start = time.perf_counter()
    detector = service.detector()
    if source in (None, "", SENSOR):
        frame, name, notes = _sensor_frame(service, seed)
    elif source == UPLOAD:
        frame, name, notes = _uploaded_sensor(service, detector, upload, time_column, target)
    else:
        raise data_error(f"Unknown source {source!r}. Choose {SENSOR!r} or {UPLOAD!r}.")
    if len(frame) < detector.window:
        raise data_error(f"The series has {len(frame)} points; the detector reads windows of {detector.window}. "
                          f"Upload at least {detector.window} points.")
    table = detector.detect(frame)
    column = detector.columns_[0]
    time_name = table.columns[0]
    scores, flags = table["score"].to_numpy(), table["anomaly"].to_numpy(bool)
    labels = frame["is_anomaly"].to_numpy(bool) if "is_anomaly" in frame else None
    figure = anomaly_figure(table[time_name], table[column].to_numpy(float), scores, flags, labels,
                            detector.threshold_, column)
    elapsed = (time.perf_counter() - start) * 1000
    lines = [f"**{name}**: {int(flags.sum())} of {len(flags):,} points flagged ({flags.mean():.1%}), score above the "
             f"threshold {detector.threshold_:.3g}; {elapsed:.0f} ms."]
    unlike = unlike_training(flags, scores, detector.threshold_)
    if unlike:
        import gradio as gr

        gr.Warning(unlike)
        lines.insert(0, f"**Unlike the training data:** {unlike}")
    if labels is not None:
        m = anomaly_metrics(flags, labels, scores)
        lines.append(f"Against the labels ({m['n_anomalies']} anomalous points in {m['n_events']} events): "
                     f"**precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}**; "
                     f"{m['event_recall']:.0%} of the events have a flagged point"
                     + (f"; average precision {m['average_precision']:.3f}." if "average_precision" in m else "."))
    else:
        lines.append("No label column (is_anomaly / anomaly / label), so no precision or recall.")
    flagged = table.loc[flags, [time_name, column, "score"]].head(FLAGGED_ROWS)
    flagged = significant(flagged.assign(**{time_name: flagged[time_name].astype(str)}))
    return figure, "\n\n".join(lines) + notes_markdown(notes), flagged


def read_columns(upload: Any):
    """After an upload: the time-column and target choices from the CSV's header (guesses
    selected), and a note (the problem, when the file cannot be read)."""
    import gradio as gr

    from toolkit.errors import ToolkitError

    if upload_path(upload) is None:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), ""
    try:
        header = csv_header(upload)
    except ToolkitError as exc:
        empty = gr.update(choices=[], value=None)
        return empty, empty, f"**Could not read the file:** {exc}"
    except Exception as exc:
        logger.exception("Reading an upload's header failed")
        empty = gr.update(choices=[], value=None)
        return empty, empty, f"**Could not read the file** ({type(exc).__name__}: {exc})."
    targets = [c for c in header["numeric"] if c not in (header["time_column"], header["label"])]
    return (gr.update(choices=[*header["columns"], NO_TIME], value=header["time_column"] or NO_TIME),
            gr.update(choices=targets, value=header["target"]),
            f"Columns: {', '.join(header['columns'])}. Choose the time column and the column to forecast.")


# ---------------------------------------------------------------------- facts


def missing_models(service: TimeSeriesService) -> str:
    """A markdown warning naming the model folders that are not there ("" when all are)."""
    return missing_note({**{name: service.forecaster_dir(name) for name in service.model_names},
                         "anomaly detector": service.anomaly_dir})


def _forecaster_facts(name: str, card: dict) -> str:
    cfg, metrics = card.get("config") or {}, card.get("metrics") or {}
    lines = [f"`{cfg.get('model', '?')}` forecaster of {card.get('columns')}: window {card.get('window')}, horizon "
             f"{card.get('horizon')}, season {card.get('season')}, frequency {card.get('frequency')}; p10 / p50 / "
             "p90 outputs."]
    if "mase" in metrics:
        lines.append(f"**Backtest MASE** {metrics['mase']:.3f}, sMAPE {metrics.get('smape', float('nan')):.2f}, "
                     f"80% interval coverage {metrics.get('coverage_80', float('nan')):.2f}.")
    if metrics.get("verdict"):
        lines.append(str(metrics["verdict"]))
    return card_facts(card, name, lines, tflite_columns=None)


def _detector_facts(card: dict) -> str:
    cfg, metrics = card.get("config") or {}, card.get("metrics") or {}
    lines = [f"`{cfg.get('model', '?')}` autoencoder over windows of {cfg.get('window', '?')} points of "
             f"{(card.get('input') or {}).get('columns')}; threshold {card.get('threshold', float('nan')):.4g}."]
    if "train_f1" in metrics:
        lines.append(f"On its training series: precision {metrics.get('train_precision', float('nan')):.3f}, "
                     f"recall {metrics.get('train_recall', float('nan')):.3f}, F1 {metrics['train_f1']:.3f}.")
    return card_facts(card, "Anomaly detector", lines, tflite_columns=None)


def model_facts(service: TimeSeriesService) -> str:
    """Markdown from each model's card: architecture, window, horizon, backtest metrics."""
    sections = [folder_facts(name, service.forecaster_dir(name), functools.partial(_forecaster_facts, name))
                for name in service.model_names]
    sections.append(folder_facts("Anomaly detector", service.anomaly_dir, _detector_facts))
    return "\n\n".join(sections)


# ---------------------------------------------------------------------- UI


def timeseries_tab(forecaster_dirs: dict[str, str | Path] | None = None, anomaly_dir: str | Path | None = None,
                   service: TimeSeriesService | None = None) -> TimeSeriesService:
    """The time-series components (Forecast and Anomalies tabs), built inside an open gr.Blocks;
    returns the service they share."""
    import gradio as gr

    from toolkit.data.series import BUILTIN_SERIES

    if service is None:
        service = shared_service(folders_key(forecaster_dirs), str(anomaly_dir) if anomaly_dir is not None else None)
    sources = [*BUILTIN_SERIES, UPLOAD]
    first = sources[0]
    tab_header("### Time series\nForecast a built-in series or your own CSV with an 80% interval, compare it with "
               "simple baselines, see which past values drove it, and find anomalies in a sensor series.",
               missing_models(service))
    with gr.Tab("Forecast"):
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.Radio(sources, value=first, label="Series")
                with gr.Group(visible=False) as upload_group:
                    upload = gr.File(label="CSV file (a header row, a time column, numeric values)",
                                     file_types=list(CSV_SUFFIXES), type="filepath")
                    time_column = gr.Dropdown([], label="Time column", allow_custom_value=False)
                    target = gr.Dropdown([], label="Column to forecast", allow_custom_value=False)
                    upload_note = gr.Markdown()
                model = gr.Dropdown([AUTO, *service.model_names, QUICK], value=AUTO, label="Model")
                horizon = gr.Slider(1, service.max_horizon(), value=service.default_horizon(first), step=1,
                                    label="Horizon (steps ahead)")
                forecast_btn = gr.Button("Forecast", variant="primary")
                with gr.Accordion("Train a quick model on this series", open=False):
                    quick_kind = gr.Radio(list(QUICK_KINDS), value="dense", label="Quick model")
                    quick_horizon = gr.Slider(1, MAX_QUICK_HORIZON, value=QUICK_HORIZON, step=1,
                                              label="Its horizon")
                    quick_btn = gr.Button(f"Train a quick model (at most ~{QUICK_SECONDS:.0f} s)")
                    quick_note = gr.Markdown()
            with gr.Column(scale=2):
                gr.Markdown("**History, forecast, 80% interval and baselines**")
                plot = gr.Plot(label="History, forecast, 80% interval and baselines", format="png", show_label=False)
                note = gr.Markdown()
                table = gr.Dataframe(label="Backtest (rolling origin; lower is better; MASE < 1 beats the in-sample "
                                           "seasonal naive)", interactive=False)
        with gr.Row():
            with gr.Column(scale=1):
                method = gr.Radio(list(EXPLAIN_METHODS), value="shap", label="Explanation method")
                step = gr.Slider(1, service.max_horizon(), value=1, step=1, label="Explain the forecast of step")
                explain_btn = gr.Button("Explain")
            with gr.Column(scale=2):
                gr.Markdown("**Which past values (lags) drove the forecast**")
                heatmap = gr.Image(label="Which past values (lags) drove the forecast", type="numpy",
                                   interactive=False, show_label=False)
                explain_note = gr.Markdown()
    with gr.Tab("Anomalies"):
        with gr.Row():
            with gr.Column(scale=1):
                a_source = gr.Radio([SENSOR, UPLOAD], value=SENSOR, label="Series")
                seed = gr.Number(value=1, precision=0, label="Sensor seed (another seed, other anomalies)")
                with gr.Group(visible=False) as a_upload_group:
                    a_upload = gr.File(label="CSV file (a time column, the value; is_anomaly labels optional)",
                                       file_types=list(CSV_SUFFIXES), type="filepath")
                    a_time = gr.Dropdown([], label="Time column")
                    a_target = gr.Dropdown([], label="Value column")
                    a_upload_note = gr.Markdown()
                detect_btn = gr.Button("Find anomalies", variant="primary")
            with gr.Column(scale=2):
                gr.Markdown("**Flagged points and anomaly score**")
                a_plot = gr.Plot(label="Flagged points and anomaly score", format="png", show_label=False)
                a_note = gr.Markdown()
                a_table = gr.Dataframe(label="Flagged points", interactive=False)
    with gr.Accordion("Model facts (from card.json)", open=False):
        gr.Markdown(model_facts(service))

    inputs = [source, upload, time_column, target]
    run_forecast = named(forecast, service, "forecast")
    answers = [plot, table, note, heatmap, explain_note]  # everything that belongs to one series and model

    def clear_explanation():
        return None, ""

    # A new forecast first clears the explanation of the previous one. A click while a forecast
    # runs is not dropped (Gradio's default for a pending event): it runs after it, on the inputs
    # of that moment ("always_last").
    forecasts = [
        forecast_btn.click(clear_explanation, None, [heatmap, explain_note], api_name=False, queue=False).then(
            run_forecast, [*inputs, horizon, model], [plot, table, note], api_name="forecast",
            trigger_mode="always_last"),
        horizon.release(clear_explanation, None, [heatmap, explain_note], api_name=False, queue=False).then(
            run_forecast, [*inputs, horizon, model], [plot, table, note], api_name=False, trigger_mode="always_last")]
    explaining = explain_btn.click(clear_explanation, None, [heatmap, explain_note], api_name=False,
                                   queue=False).then(
        named(explain_forecast, service, "explain_forecast"), [*inputs, model, method, step],
        [heatmap, explain_note], api_name="explain_forecast", **EXPLAIN)
    # A new series or model cancels the answers still on their way (they belong to the old one); a
    # new explanation method, the explanation.
    stale = {"cancels": [*forecasts, explaining]}
    quick_btn.click(named(train_quick_model, service, "train_quick_model"), [*inputs, quick_kind, quick_horizon],
                    [quick_note, model, horizon], api_name="train_quick_model").success(
        lambda h: gr.update(maximum=as_int(h, "the horizon", QUICK_HORIZON), value=1), [horizon], [step],
        api_name=False).success(
        run_forecast, [*inputs, horizon, model], [plot, table, note], api_name=False)
    # The backtest alone (the forecast shows it too), for API users.
    backtest_btn = gr.Button("Backtest", visible=False)
    backtest_btn.click(named(backtest_table, service, "backtest"), [*inputs, model], [table, note],
                       api_name="backtest")

    def sliders(limit: int, value: int | None = None):  # the horizon and step sliders stop at the model's horizon
        return (gr.update(maximum=limit, value=min(limit, value or QUICK_HORIZON)), gr.update(maximum=limit, value=1))

    def source_changed(choice: str):  # back to the series' own model (a quick model belongs to one series)
        return (gr.update(visible=choice == UPLOAD), gr.update(value=AUTO),
                *sliders(service.model_horizon(choice, AUTO)), None, None, "", None, "")

    def model_changed(choice: str, model_choice: str, current: Any):
        limit = service.model_horizon(choice, model_choice)
        return (*sliders(limit, as_int(current, "the horizon", limit) if current is not None else limit),
                None, None, "", None, "")

    source.change(source_changed, [source], [upload_group, model, horizon, step, *answers], api_name=False, **stale)
    # The page opens with the sliders at the first series' model horizon (API callers keep the
    # widest range: each request is checked against its model's horizon).
    from gradio.context import Context

    Context.root_block.load(lambda: sliders(service.model_horizon(first, AUTO), service.default_horizon(first)),
                            None, [horizon, step], api_name=False, queue=False)
    model.input(model_changed, [source, model, horizon], [horizon, step, *answers], api_name=False, **stale)
    upload.change(read_columns, [upload], [time_column, target, upload_note], api_name=False)
    for event in (upload.change, time_column.input, target.input):
        event(lambda: (None, None, "", None, ""), None, answers, api_name=False, queue=False, **stale)
    method.change(clear_explanation, None, [heatmap, explain_note], api_name=False, queue=False,
                  cancels=[explaining])
    a_source.change(lambda choice: (gr.update(visible=choice == UPLOAD), gr.update(visible=choice != UPLOAD)),
                    [a_source], [a_upload_group, seed], api_name=False)
    a_upload.change(read_columns, [a_upload], [a_time, a_target, a_upload_note], api_name=False)
    for event in (a_source.input, a_upload.change, a_time.input, a_target.input, seed.input):
        event(lambda: (None, "", None), None, [a_plot, a_note, a_table], api_name=False, queue=False)
    detect_btn.click(named(detect_anomalies, service, "detect_anomalies"), [a_source, a_upload, a_time, a_target,
                                                                             seed], [a_plot, a_note, a_table],
                     api_name="detect_anomalies")
    return service


def build_demo(forecaster_dirs: dict[str, str | Path] | None = None, anomaly_dir: str | Path | None = None,
               service: TimeSeriesService | None = None):
    """The time-series tab alone, as a gr.Blocks."""
    import gradio as gr

    with gr.Blocks(title="Time series") as demo:
        timeseries_tab(forecaster_dirs, anomaly_dir, service=service)
    return demo


def warm_up(forecaster_dirs: dict[str, str | Path] | None = None, anomaly_dir: str | Path | None = None) -> None:
    """Load the tab's models ahead of the first request (``apps.main.launch`` runs it in the background)."""
    shared_service(folders_key(forecaster_dirs), str(anomaly_dir) if anomaly_dir is not None else None).warm_up()
