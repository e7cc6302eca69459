"""The time-series tab's plots: the forecast canvas (drawn once per model and series, then each
request draws only its forecast on it) and the anomaly figure, as PNGs for gr.Plot."""

from __future__ import annotations

import threading

import numpy as np

HISTORY_POINTS = 120  # history drawn before the forecast
BASELINE_LABELS = {"naive": "naive", "seasonal_naive": "seasonal naive", "drift": "drift"}


def figure(height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, height), dpi=72)
    FigureCanvasAgg(fig)
    return fig


def _x_axis(ax, dates: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    if dates:
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator(maxticks=7)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(7, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(5))


def _positions(index, future=None):
    """x positions of the history ``index`` (and the ``future`` times): dates as matplotlib
    numbers when both are dates, else step numbers."""
    import pandas as pd

    index = pd.Index(index)
    dated = isinstance(index, pd.DatetimeIndex)
    if future is not None:
        future_index = pd.Index(future)
        dated = dated and isinstance(future_index, pd.DatetimeIndex)
    if dated:
        import matplotlib.dates as mdates

        history = mdates.date2num(index.to_numpy())
        ahead = None if future is None else mdates.date2num(pd.DatetimeIndex(future).to_numpy())
        return history, ahead, True
    n = len(index)
    return np.arange(n, dtype=float), None if future is None else np.arange(n, n + len(future), dtype=float), False


FORECAST_STYLES = {"history": "#333333", "band": "#1f77b4", "p50": "#1f77b4", "naive": "#ff7f0e",
                   "seasonal_naive": "#2ca02c", "drift": "#9467bd"}


class ForecastCanvas:
    """The forecast plot of one (model, series). What every request shares (axes, ticks, the
    history, the legend, the title) is drawn once; each request restores that picture and draws
    only its forecast, the p10-p90 band and the baselines on it (matplotlib blitting), about
    10x cheaper than drawing the whole figure. The axes fit the model's full horizon: a shorter
    forecast is the start of the same numbers (direct multi-step), so it always fits."""

    def __init__(self, series, task, title: str):
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        full = task.forecast(series, task.config.horizon)
        baselines = task.baseline_forecasts(series, task.config.horizon)
        xh, self.xf, dated = _positions(series.index, list(full["time"]))
        y = series.target.astype(float)
        shown = slice(max(0, len(series) - HISTORY_POINTS), None)
        self.x0, self.y0 = float(xh[-1]), float(y[-1])
        self.fig = figure()
        self.ax = ax = self.fig.add_axes((0.07, 0.11, 0.91, 0.79))
        ax.plot(xh[shown], y[shown], color=FORECAST_STYLES["history"], lw=1.2)
        values = np.concatenate([y[shown], full["p10"], full["p90"], *baselines.values()])
        values = values[np.isfinite(values)]
        low, high = float(np.min(values)), float(np.max(values))
        pad = 0.06 * (high - low) or 1.0
        ax.set_ylim(low - pad, high + 4 * pad)  # room for the legend above the history
        ax.set_xlim(float(xh[shown][0]), float(self.xf[-1]) + 0.01 * float(self.xf[-1] - xh[shown][0]))
        handles = [Line2D([], [], color=FORECAST_STYLES["history"], lw=1.2, label="history"),
                   Patch(color=FORECAST_STYLES["band"], alpha=0.25, lw=0, label="p10-p90 (80% interval)"),
                   *(Line2D([], [], color=FORECAST_STYLES[n], ls="--", lw=1, label=BASELINE_LABELS[n])
                     for n in baselines),
                   Line2D([], [], color=FORECAST_STYLES["p50"], lw=2, label="forecast p50")]
        ax.legend(handles=handles, loc="upper left", fontsize=7.5, ncol=3, frameon=False)
        self.labels = [h.get_label() for h in handles]
        _x_axis(ax, dated)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel(series.columns[0], fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self.lock = threading.Lock()

    def render(self, frame, baselines: dict[str, np.ndarray]) -> np.ndarray:
        """The picture (H, W, 3) uint8 with this forecast (and these baselines) drawn on it."""
        steps = len(frame)
        x = np.concatenate([[self.x0], self.xf[:steps]])  # start every forecast at the last observed point

        def joined(values):
            return np.concatenate([[self.y0], np.asarray(values, float)])

        ax = self.ax
        with self.lock:  # one figure, shared: one request draws at a time (a few ms)
            self.fig.canvas.restore_region(self.background)
            artists = [ax.fill_between(x, joined(frame["p10"]), joined(frame["p90"]), color=FORECAST_STYLES["band"],
                                       alpha=0.25, lw=0)]
            for name, values in baselines.items():
                artists += ax.plot(x, joined(values), ls="--", lw=1, color=FORECAST_STYLES[name])
            artists += ax.plot(x, joined(frame["p50"]), color=FORECAST_STYLES["p50"], lw=2)
            try:
                for artist in artists:
                    ax.draw_artist(artist)
                return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()
            finally:
                for artist in artists:
                    artist.remove()


def png_plot(rgb: np.ndarray):
    """An RGB picture as gr.Plot's value (a PNG data URL, what gr.Plot makes of a matplotlib figure)."""
    import base64
    import io

    from gradio.components.plot import PlotData
    from PIL import Image

    with io.BytesIO() as buffer:
        Image.fromarray(rgb).save(buffer, format="png", compress_level=3)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return PlotData(type="matplotlib", plot=f"data:image/png;base64,{data}")


def plot_png(plot) -> bytes:
    """The PNG bytes of a gr.Plot value made by :func:`png_plot`."""
    import base64

    return base64.b64decode(plot.plot.split(",", 1)[1])


def anomaly_figure(times, values, scores, flags, labels, threshold: float, column: str):
    """The series with flagged points in red (labelled anomalies shaded), and the score with the
    threshold (log scale)."""
    fig = figure(5.0)
    top = fig.add_axes((0.07, 0.47, 0.91, 0.46))
    bottom = fig.add_axes((0.07, 0.08, 0.91, 0.3), sharex=top)
    x, _, dated = _positions(times)
    top.plot(x, values, color="#333333", lw=0.8, label=column)
    if labels is not None and labels.any():
        top.fill_between(x, 0, 1, where=labels, transform=top.get_xaxis_transform(), color="#ff7f0e", alpha=0.25,
                         lw=0, label="labelled anomaly")
    if flags.any():
        top.scatter(x[flags], values[flags], s=10, color="#d62728", zorder=3, label="flagged")
    top.set_title(f"{column}: {int(flags.sum())} of {len(flags)} points flagged", fontsize=10, loc="left")
    top.legend(loc="upper left", fontsize=7.5, ncol=3, frameon=False)
    bottom.plot(x, np.maximum(scores, 1e-6), color="#1f77b4", lw=0.8, label="anomaly score")
    bottom.axhline(threshold, color="#d62728", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    bottom.set_yscale("log")
    bottom.legend(loc="upper left", fontsize=7.5, ncol=2, frameon=False)
    for ax in (top, bottom):
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
    _x_axis(bottom, dated)
    from matplotlib.ticker import LogLocator

    bottom.yaxis.set_major_locator(LogLocator(numticks=4))
    top.tick_params(labelbottom=False)
    return fig
