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

import collections
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from apps.nlp import MAKE_MODELS, _named, _Slot, missing_note
from apps.vision import _user_errors

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
TIMESERIES_MODELS = REPO / "saved_models" / "timeseries"
DEFAULT_FORECASTER_DIRS = {"sunspots": TIMESERIES_MODELS / "sunspots_lstm", "co2": TIMESERIES_MODELS / "co2_lstm"}
DEFAULT_ANOMALY_DIR = REPO / "saved_models" / "anomaly" / "sensor_lstm"

UPLOAD = "Upload a CSV"
SENSOR = "Synthetic sensor (labelled anomalies)"
AUTO = "Auto (the model trained on this column)"
QUICK = "Quick model (trained here)"
NO_TIME = "(none: the rows are steps 0, 1, 2, ...)"
EXPLAIN_METHODS = ("shap", "lime")
QUICK_KINDS = ("dense", "lstm")
BASELINE_LABELS = {"naive": "naive", "seasonal_naive": "seasonal naive", "drift": "drift"}
CSV_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
LABEL_COLUMNS = ("is_anomaly", "anomaly", "label")
TIME_NAMES = ("time", "date", "datetime", "timestamp", "ts", "month", "year", "period")

HISTORY_POINTS = 120  # history drawn before the forecast
MAX_ROWS = 200_000  # rows read from an upload (10 MB files; parsing each odd date costs time)
BACKTEST_POINTS = 5_000  # the backtest runs over the last points of a long series
QUICK_POINTS = 5_000  # a quick model trains on the last points of a long series
QUICK_SECONDS = 20.0  # training budget of a quick model
QUICK_EPOCHS = 300
QUICK_PATIENCE = 25
QUICK_HORIZON = 12
MAX_QUICK_HORIZON = 48
QUICK_CACHE = 8  # quick models kept (least recently used dropped)
UPLOAD_CACHE = 16  # uploaded series kept
SENSOR_POINTS = 2_000
FLAGGED_ROWS = 200  # rows of the flagged-points table


# ---------------------------------------------------------------------- errors


def _data_error(message: str):
    from toolkit.errors import DataError

    return DataError(message)


# ---------------------------------------------------------------------- models




class _ForecasterSlot(_Slot):
    """A forecaster folder: the task on first use, and its card's columns and horizon."""

    def card(self) -> dict | None:
        from toolkit.errors import ToolkitError
        from toolkit.storage import read_card

        try:
            return read_card(self.directory)
        except ToolkitError:
            return None

    def columns(self) -> list[str] | None:
        card = self.card()
        return list(card.get("columns") or []) if card else None

    def horizon(self) -> int | None:
        card = self.card()
        return int(card["horizon"]) if card and card.get("horizon") else None


class _LRU(collections.OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class TimeSeriesService:
    """The shipped forecasters and anomaly detector, the built-in series, the uploads, the quick
    models and the backtests, each made once and shared by all requests.

    ``forecaster_dirs`` maps model names (shown in the model choice) to forecaster folders (default:
    the shipped sunspots and co2 LSTMs); ``anomaly_dir`` is the anomaly detector's folder.
    """

    def __init__(self, forecaster_dirs: dict[str, str | Path] | None = None, anomaly_dir: str | Path | None = None):
        dirs = DEFAULT_FORECASTER_DIRS if forecaster_dirs is None else forecaster_dirs
        self._forecasters = {name: _ForecasterSlot(name, d) for name, d in dirs.items()}
        self._anomaly = _Slot("anomaly detector", anomaly_dir if anomaly_dir is not None else DEFAULT_ANOMALY_DIR)
        self._lock = threading.Lock()
        self._train_lock = threading.Lock()
        self._builtin: dict[str, Any] = {}
        self._uploads = _LRU(UPLOAD_CACHE)
        self._quick = _LRU(QUICK_CACHE)
        self._backtests = _LRU(64)
        self._sensor = _LRU(8)
        self._canvases = _LRU(16)
        self.quick_seconds, self.quick_epochs = QUICK_SECONDS, QUICK_EPOCHS  # the quick models' budget

    # ------------------------------------------------------------------ models
    @property
    def model_names(self) -> list[str]:
        return list(self._forecasters)

    @property
    def anomaly_dir(self) -> Path:
        return self._anomaly.directory

    def forecaster_dir(self, name: str) -> Path:
        return self._slot(name).directory

    def _slot(self, name: str) -> _ForecasterSlot:
        if name not in self._forecasters:
            raise _data_error(f"Unknown model {name!r}. Choose one of {[AUTO, *self.model_names, QUICK]}.")
        return self._forecasters[name]

    def forecaster(self, name: str):
        """The Forecaster called ``name`` (loaded once, with a traced serving function)."""
        return self._slot(name).load()

    def detector(self):
        """The AnomalyDetector."""
        return self._anomaly.load()

    def max_horizon(self) -> int:
        """The longest horizon any configured model (or a quick model) forecasts."""
        known = [s.horizon() for s in self._forecasters.values()]
        return max([h for h in known if h] + [MAX_QUICK_HORIZON])

    def default_horizon(self, source: str | None) -> int:
        slot = self._forecasters.get(str(source))
        horizon = slot.horizon() if slot is not None else None
        if horizon is None:
            horizon = next((s.horizon() for s in self._forecasters.values() if s.horizon()), QUICK_HORIZON)
        return horizon

    # ------------------------------------------------------------------ series
    def builtin(self, name: str):
        """A built-in series (sunspots, co2), loaded once."""
        from toolkit.data.series import BUILTIN_SERIES, load_series

        if name not in BUILTIN_SERIES:
            raise _data_error(f"Unknown series {name!r}. Choose one of {[*BUILTIN_SERIES, UPLOAD]}.")
        if name not in self._builtin:
            data = load_series(name)
            with self._lock:
                self._builtin.setdefault(name, data)
        return self._builtin[name]

    def upload(self, upload: Any, time_column: Any = None, target: Any = None, features: list[str] | None = None,
               resample: str | None = None):
        """(series, key) of an uploaded CSV with the chosen columns (``resample``: a pandas offset
        alias, means per bin); cached per file, columns and resampling."""
        path = checked_upload(upload)
        stat = path.stat()
        time_column, target = _time_choice(time_column), _column_choice(target)
        if target is None:  # the guess the column choice shows: the first numeric non-time column
            header = csv_header(path)
            time_column = header["time_column"] if time_column is None else time_column
            target = header["target"]
        key = ("upload", str(path), stat.st_size, stat.st_mtime_ns, time_column, target, tuple(features or ()),
               resample)
        if key not in self._uploads:
            data = _load_upload(path, time_column, target, features, resample)
            with self._lock:
                self._uploads.put(key, data)
        return self._uploads[key], key

    def sensor(self, seed: int):
        """The synthetic sensor series (labelled anomalies) for ``seed``, made once."""
        from toolkit.timeseries.anomaly import synthetic_sensor

        if seed not in self._sensor:
            frame = synthetic_sensor(SENSOR_POINTS, seed=seed)
            with self._lock:
                self._sensor.put(seed, frame)
        return self._sensor[seed]

    # ------------------------------------------------------------------ choosing a model
    def resolve(self, source: Any, upload: Any = None, time_column: Any = None, target: Any = None,
                model: Any = AUTO):
        """(forecaster, series, key, label, notes) for one request: the series the user chose
        (built-in or uploaded, with the columns the model needs) and the model that forecasts it."""
        import dataclasses

        notes: list[str] = []
        source = "sunspots" if source in (None, "") else str(source)
        if source == UPLOAD:
            series, key = self.upload(upload, time_column, target)
        else:
            series, key = self.builtin(source), ("builtin", source)
        model = AUTO if model in (None, "") else str(model)
        if model == QUICK:
            with self._lock:
                task = self._quick.get(key)
            if task is None:
                raise _data_error("No quick model has been trained on this series yet. Press 'Train a quick model' "
                                  "first (it fits a small model here in about 20 s), or choose another model.")
            return task, series, key, f"quick {task.config.model} model (trained here)", notes
        if model == AUTO:
            name = self._matching(series, source)
        else:
            name = self._slot(model).name
        task = self.forecaster(name)
        columns = list(series.columns)
        same = [c.lower() for c in task.columns_] == [c.lower() for c in columns]
        if source == UPLOAD:
            features = task.columns_[1:] if not same and task.columns_[0].lower() == columns[0].lower() else []
            rule = (task.data_spec_ or {}).get("resample")
            resample = rule if (isinstance(rule, str) and task.frequency_ and series.frequency != task.frequency_
                                and _is_dated(series.index)) else None
            if features or resample:
                series, key = self.upload(upload, time_column, columns[0], features or None, resample)
                columns = list(series.columns)
                same = [c.lower() for c in task.columns_] == [c.lower() for c in columns]
            if resample:
                notes.append(f"Resampled to {resample!r} (means per step), like the {name} model's training data.")
            elif task.frequency_ and series.frequency and series.frequency != task.frequency_:
                notes.append(f"The {name} model was trained on data at frequency {task.frequency_!r}; this series' "
                             f"frequency is {series.frequency!r}, so its steps mean something else.")
        if not same:
            if len(task.columns_) == len(columns):
                notes.append(f"The {name} model was trained on {task.columns_}; it is applied to {columns} as you "
                             "asked. Its scaling was fitted on its own series, so expect poor forecasts: a quick "
                             "model trained on this series is the fair comparison.")
            else:
                raise _data_error(f"The {name} model reads the columns {task.columns_}; this series has {columns}. "
                                  "Choose another model or train a quick model on this series.")
        if list(series.columns) != list(task.columns_):  # the model checks names: use its own
            series = dataclasses.replace(series, columns=list(task.columns_))
        return task, series, key + (name,), f"{name} model ({task.config.model})", notes

    def _matching(self, series, source: str) -> str:
        """The name of the configured model whose columns are this series' (target first)."""
        want = series.columns[0].lower()
        for name, slot in self._forecasters.items():
            columns = slot.columns()
            if columns and columns[0].lower() == want:
                return name
        if source in self._forecasters:  # the built-in's own model, missing: say so
            return source
        known = [f"{name} ({', '.join(slot.columns() or ['not available'])})"
                 for name, slot in self._forecasters.items()]
        raise _data_error(f"No model here forecasts {series.columns[0]!r} (the models: {'; '.join(known) or 'none'}). "
                          "Press 'Train a quick model' to fit a small one on this series (about 20 s), or choose a "
                          "model to apply as it is.")

    # ------------------------------------------------------------------ backtests
    def backtest(self, task, series, key) -> tuple[Any, str]:
        """(table, verdict) of the rolling-origin backtest of ``task`` on ``series`` (its last
        BACKTEST_POINTS), computed once per (model, series)."""
        import pandas as pd

        from toolkit.errors import ToolkitError

        cache_key = (id(task), key)
        with self._lock:
            cached = self._backtests.get(cache_key)
        if cached is not None:
            return cached
        part = series.slice(-BACKTEST_POINTS, None) if len(series) > BACKTEST_POINTS else series
        try:
            result = task.backtest(part)
        except ToolkitError as exc:
            out = (pd.DataFrame(columns=["forecaster", "mae", "rmse", "smape", "mase"]),
                   f"No backtest for this series: {exc}")
        else:
            table = result.to_frame().reset_index()
            table.columns = ["forecaster", *table.columns[1:]]
            table = table.round(4)
            where = f" over its last {BACKTEST_POINTS:,} points" if part is not series else ""
            coverage = getattr(result, "coverage", None)
            cover = ("" if coverage is None else
                     f" The p10-p90 interval held {coverage:.0%} of the actual values (80% is the aim).")
            out = (table, f"Backtest{where}: {len(result.cutoffs)} forecasts of {result.horizon} steps from rolling "
                          f"cut-offs in the last part of the series. {result.verdict}{cover}")
        with self._lock:
            self._backtests.put(cache_key, out)
        return out

    def canvas(self, task, series, key, label: str) -> "ForecastCanvas":
        """The forecast plot's shared part for (model, series), drawn once."""
        cache_key = (id(task), key)
        with self._lock:
            canvas = self._canvases.get(cache_key)
        if canvas is None:
            canvas = ForecastCanvas(series, task, f"{series.name}: {label}")
            with self._lock:
                self._canvases.put(cache_key, canvas)
        return canvas

    # ------------------------------------------------------------------ quick models
    def train_quick(self, series, key, kind: str = "dense", horizon: int = QUICK_HORIZON):
        """Fit a small Forecaster on ``series`` (its last QUICK_POINTS) within about
        ``quick_seconds`` and keep it for this series."""
        from toolkit.timeseries.forecaster import Forecaster, ForecasterConfig

        if kind not in QUICK_KINDS:
            raise _data_error(f"Unknown quick model {kind!r}. Choose one of {list(QUICK_KINDS)}.")
        seconds = self.quick_seconds
        if not self._train_lock.acquire(timeout=2 * seconds):
            raise _data_error("Another quick model is training; try again in a few seconds.")
        try:
            part = series.slice(-QUICK_POINTS, None) if len(series) > QUICK_POINTS else series
            config = ForecasterConfig(model=kind, horizon=horizon, epochs=self.quick_epochs, patience=QUICK_PATIENCE,
                                      units=16)
            budget = _time_budget(seconds)
            start = time.perf_counter()
            task = Forecaster(config).fit(part, callbacks=[budget])
            task.app_training_ = {"seconds": time.perf_counter() - start, "epochs": len(task.history_["loss"]),
                                  "points": len(part), "stopped_by_budget": budget.stopped}
        finally:
            self._train_lock.release()
        with self._lock:
            self._quick.put(key, task)
        return task

    # ------------------------------------------------------------------ warm-up
    def warm_up(self) -> None:
        """Load every model, draw one forecast per built-in series and run the detector once, so
        that the first request is fast (the explainers load on the first explanation)."""
        from toolkit.errors import ToolkitError

        for name, slot in self._forecasters.items():
            try:
                task = slot.load()
                source = name if name in ("sunspots", "co2") else None
                if source is None:
                    continue
                forecast.__wrapped__(self, source, None, None, None, task.config.horizon, name)
            except ToolkitError:  # a missing model: the facts panel and each request say so
                pass
            except Exception:  # never stop the app from starting: each request reports its own error
                logger.exception("Warming up the %s forecaster failed", name)
        try:
            figure, _, _ = detect_anomalies.__wrapped__(self, SENSOR, None, None, None, 1)
            _close(figure)
        except ToolkitError:
            pass
        except Exception:
            logger.exception("Warming up the anomaly detector failed")


@functools.lru_cache(maxsize=4)
def shared_service(forecaster_dirs: tuple | None = None, anomaly_dir: str | None = None) -> TimeSeriesService:
    """One warmed-up service per set of folders, so rebuilding the app does not reload models."""
    service = TimeSeriesService(dict(forecaster_dirs) if forecaster_dirs is not None else None, anomaly_dir)
    service.warm_up()
    return service


def _time_budget(seconds: float):
    """A Keras callback that stops training after ``seconds`` and keeps the best weights seen."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stopped, self.best, self.weights = False, np.inf, None

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss", np.inf)
            if loss < self.best:
                self.best, self.weights = loss, self.model.get_weights()
            if time.perf_counter() - self.start > seconds:
                self.stopped = True
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.stopped and self.weights is not None:
                self.model.set_weights(self.weights)

    return TimeBudget()


# ---------------------------------------------------------------------- uploads


def _upload_path(upload: Any) -> Path | None:
    if upload is None or upload == "":
        return None
    if isinstance(upload, (str, Path)):
        return Path(upload)
    if isinstance(upload, dict):
        path = upload.get("path") or upload.get("name")
        return Path(path) if path else None
    path = getattr(upload, "path", None) or getattr(upload, "name", None)
    return Path(path) if path else None


def checked_upload(upload: Any) -> Path:
    """The uploaded file's path, once it is known to be a non-empty CSV/TSV file of at most
    MAX_ROWS rows (the content itself is checked when it is read)."""
    path = _upload_path(upload)
    if path is None:
        raise _data_error("No file received. Upload a CSV file (a header row, a time column and numeric values), "
                          "or pick a built-in series.")
    if path.suffix.lower() not in CSV_SUFFIXES:
        raise _data_error(f"Expected a CSV file ({', '.join(CSV_SUFFIXES)}: a header row, then one row per time "
                          f"step). Received {path.name!r}. Export the data as CSV first.")
    if not path.is_file():
        raise _data_error(f"The upload {path.name!r} is not on the server any more. Upload it again.")
    with path.open("rb") as handle:
        rows = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    if rows > MAX_ROWS + 1:
        raise _data_error(f"{path.name!r} has {rows:,} rows; the demo reads up to {MAX_ROWS:,}. Resample or cut the "
                          "series first, or use the command line (toolkit train timeseries / predict).")
    return path


def _friendly(exc: Exception, path: Path) -> Exception:
    """The loader's error with the server's temporary path replaced by the file's name."""
    message = str(exc)
    for text in {str(path), str(path.resolve())}:
        message = message.replace(repr(text), repr(path.name)).replace(text, path.name)
    return _data_error(message)


def _load_upload(path: Path, time_column, target, features=None, resample=None):
    import warnings

    from toolkit.data.series import load_series
    from toolkit.errors import ToolkitError

    try:
        with warnings.catch_warnings():  # repairs are listed in the series' notes and shown in the page
            warnings.simplefilter("ignore")
            return load_series(path, time_column=time_column, target=target, features=features, resample=resample)
    except ToolkitError as exc:
        raise _friendly(exc, path) from exc
    except (ValueError, TypeError, OverflowError, UnicodeError, MemoryError) as exc:  # pandas' own errors
        raise _data_error(f"Could not read {path.name!r} as a time series ({type(exc).__name__}: {exc}). "
                          "Expected a CSV file with a header row, a time column and numeric values.") from exc


def csv_header(upload: Any) -> dict:
    """The columns of an uploaded CSV and the guessed time and target columns:
    ``{"columns", "time_column", "target", "numeric", "label"}``."""
    import pandas as pd

    from toolkit.data.series import _looks_like_times, _read_csv
    from toolkit.errors import ToolkitError

    path = checked_upload(upload)
    try:
        frame, _ = _read_csv(path)
    except ToolkitError as exc:
        raise _friendly(exc, path) from exc
    columns = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if frame.empty:
        raise _data_error(f"{path.name!r} has a header but no rows. Expected one row per time step.")
    head = frame.head(200)
    numeric = [c for c in columns if pd.to_numeric(head[c].astype("string").str.strip().str.replace(",", "."),
                                                   errors="coerce").notna().mean() > 0.5]
    time_column = next((c for c in columns if c.lower() in TIME_NAMES), None)
    if time_column is None and columns and columns[0] not in numeric and _looks_like_times(head[columns[0]]):
        time_column = columns[0]
    label = next((c for c in columns if c.lower() in LABEL_COLUMNS), None)
    targets = [c for c in numeric if c not in (time_column, label)]
    if not targets:
        raise _data_error(f"{path.name!r} has no numeric column to forecast besides the time (columns: {columns}). "
                          "Expected a column of numbers, e.g. 'date,value'.")
    return {"columns": columns, "time_column": time_column, "target": targets[0], "numeric": numeric, "label": label}


def _time_choice(value: Any):
    """The time column as load_series takes it: None (detect it), False (none) or a name."""
    if value is None or value is False:
        return value
    if value == "":
        return None
    return False if value == NO_TIME else str(value)


def _column_choice(value: Any):
    return None if value in (None, "") else str(value)


def _as_int(value: Any, what: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _data_error(f"Expected {what} as a whole number. Received {value!r}.") from None
    if not np.isfinite(number) or number != int(number):
        raise _data_error(f"Expected {what} as a whole number. Received {value!r}.")
    return int(number)


def _int_in(value: Any, what: str, low: int, high: int, default: int | None = None) -> int:
    """A whole number from ``low`` to ``high``, else a DataError naming ``what`` and the range."""
    number = _as_int(value, what, low if default is None else default)
    if not low <= number <= high:
        raise _data_error(f"Expected {low} to {high} {what}. Received {number}.")
    return number


def _is_dated(index) -> bool:
    import pandas as pd

    return isinstance(index, pd.DatetimeIndex)


def _when(value: Any) -> str:
    """A forecast time for the page: the date alone at midnight, else as it is."""
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else str(value)
    return f"step {value}"


def _notes(notes: list[str]) -> str:
    return "".join(f"\n\n> {n}" for n in notes)


# ---------------------------------------------------------------------- plots


def _figure(height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, height), dpi=72)
    FigureCanvasAgg(fig)
    return fig


def _close(figure) -> None:
    figure.clear()


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
        baselines = _baselines(task, series, task.config.horizon)
        xh, self.xf, dated = _positions(series.index, list(full["time"]))
        y = series.target.astype(float)
        shown = slice(max(0, len(series) - HISTORY_POINTS), None)
        self.x0, self.y0 = float(xh[-1]), float(y[-1])
        self.fig = _figure()
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
    fig = _figure(5.0)
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


# ---------------------------------------------------------------------- handlers


def _baselines(task, series, horizon: int) -> dict[str, np.ndarray]:
    from toolkit.errors import ToolkitError
    from toolkit.timeseries.baselines import baseline_forecast

    out = {}
    y = series.target
    for name in ("naive", "seasonal_naive", "drift"):
        if name == "seasonal_naive" and not task.season_:
            continue
        try:
            out[name] = baseline_forecast(name, y, horizon, task.season_)
        except ToolkitError:  # a history shorter than one season: that baseline is left out
            pass
    return out


@_user_errors
def forecast(service: TimeSeriesService, source: Any = "sunspots", upload: Any = None, time_column: Any = None,
             target: Any = None, horizon: Any = None, model: Any = AUTO):
    """The forecast plot (history, p50, p10-p90, baselines; a PNG for gr.Plot), the backtest
    table and a note."""
    start = time.perf_counter()
    task, series, key, label, notes = service.resolve(source, upload, time_column, target, model)
    horizon = _as_int(horizon, "the horizon", task.config.horizon)
    frame = task.forecast(series, horizon)  # checks 1 <= horizon <= the model's horizon
    if not np.isfinite(frame[["p10", "p50", "p90"]].to_numpy()).all():
        raise _data_error(f"The {label} returned a forecast that is not a number (NaN or infinite) for this series. "
                          "Check the series' last values, or train another model.")
    baselines = _baselines(task, series, horizon)
    plot = png_plot(service.canvas(task, series, key, label).render(frame, baselines))
    table, verdict = service.backtest(task, series, key)
    elapsed = (time.perf_counter() - start) * 1000
    notes = [*notes, *(f"Loading the data: {n}." for n in series.notes if series.spec.get("source") not in
                       ("sunspots", "co2"))]
    if model == QUICK:
        info = getattr(task, "app_training_", {})
        notes.append(f"Quick model: a small {task.config.model} trained on this page on {info.get('points', '?')} "
                     f"points for {info.get('epochs', '?')} epochs ({info.get('seconds', 0):.0f} s); not a shipped "
                     "model.")
    last = {k: frame[k].iloc[-1] for k in frame.columns}  # (a row would turn step numbers into floats)
    note = (f"**{label}**, window {task.window_}, up to {task.config.horizon} steps: {elapsed:.0f} ms for this "
            f"request. Step {horizon} ({_when(last['time'])}): p50 **{last['p50']:.4g}**, 80% interval "
            f"[{last['p10']:.4g}, {last['p90']:.4g}].\n\n{verdict}")
    return plot, table, note + _notes(notes)


def forecast_request(service: TimeSeriesService, source: str = "sunspots", horizon: int | None = None):
    """One forecast of a built-in series as the page asks for it, for benchmarks: (plot, backtest
    table); the plot is the PNG the page receives (gr.Plot's value)."""
    plot, table, _ = forecast(service, source, None, None, None, horizon, AUTO)
    return plot, table


@_user_errors
def backtest_table(service: TimeSeriesService, source: Any = "sunspots", upload: Any = None, time_column: Any = None,
                   target: Any = None, model: Any = AUTO):
    """The backtest table of the chosen model and the baselines, and its verdict."""
    task, series, key, label, notes = service.resolve(source, upload, time_column, target, model)
    table, verdict = service.backtest(task, series, key)
    return table, f"**{label}**: {verdict}" + _notes(notes)


@_user_errors
def explain_forecast(service: TimeSeriesService, source: Any = "sunspots", upload: Any = None,
                     time_column: Any = None, target: Any = None, model: Any = AUTO, method: str = "shap",
                     step: Any = 1):
    """Which lags (and features) drove the p50 forecast at ``step`` (1 = the next step): the
    heatmap + bar chart image (uint8 RGB) and a note."""
    if method not in EXPLAIN_METHODS:
        raise _data_error(f"Unknown explanation method {method!r}. Choose one of {list(EXPLAIN_METHODS)}.")
    task, series, _, label, notes = service.resolve(source, upload, time_column, target, model)
    step = _as_int(step, "the step", 1)
    if not 1 <= step <= task.config.horizon:
        raise _data_error(f"Expected a step from 1 to {task.config.horizon} (the model's horizon). Received {step}.")
    explanation = task.explain(series, method=method, step=step - 1)
    top = ", ".join(str(lag.get("lag")) for lag in (explanation.extra.get("top_lags") or [])[:3])
    note = (f"**{method.upper()}** for the **{explanation.target}** of the {label}: {explanation.seconds:.2f} s "
            f"for {explanation.budget} samples. Red cells push the forecast up, blue cells down"
            + (f"; the strongest: {top}." if top else "."))
    return explanation.image, note + _notes(notes)


@_user_errors
def train_quick_model(service: TimeSeriesService, source: Any = UPLOAD, upload: Any = None, time_column: Any = None,
                      target: Any = None, kind: str = "dense", horizon: Any = QUICK_HORIZON):
    """Fit a small forecaster on the chosen series (about 20 s at most); returns a note, the
    model choice (set to the quick model) and the horizon slider (up to its horizon)."""
    import gradio as gr

    horizon = _as_int(horizon, "the quick model's horizon", QUICK_HORIZON)
    if not 1 <= horizon <= MAX_QUICK_HORIZON:
        raise _data_error(f"Expected a quick-model horizon from 1 to {MAX_QUICK_HORIZON}. Received {horizon}.")
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
    seed = _as_int(seed, "the seed", 1)
    if not 0 <= seed < 2**31:
        raise _data_error(f"Expected a seed from 0 to {2**31 - 1}. Received {seed}.")
    return service.sensor(seed), f"synthetic sensor (seed {seed})", []


def _uploaded_sensor(service: TimeSeriesService, detector, upload, time_column, target):
    """An uploaded CSV as the detector's frame: time, the detector's value column(s) and the
    labels (is_anomaly / anomaly / label column) when the file has them."""
    import pandas as pd

    header = csv_header(upload)
    time_column = _time_choice(time_column)
    if time_column is None:
        time_column = header["time_column"]
    columns = list(detector.columns_)
    if len(columns) == 1:
        chosen = _column_choice(target) or header["target"]
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


@_user_errors
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
        raise _data_error(f"Unknown source {source!r}. Choose {SENSOR!r} or {UPLOAD!r}.")
    if len(frame) < detector.window:
        raise _data_error(f"The series has {len(frame)} points; the detector reads windows of {detector.window}. "
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
    if labels is not None:
        m = anomaly_metrics(flags, labels, scores)
        lines.append(f"Against the labels ({m['n_anomalies']} anomalous points in {m['n_events']} events): "
                     f"**precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}**; "
                     f"{m['event_recall']:.0%} of the events have a flagged point"
                     + (f"; average precision {m['average_precision']:.3f}." if "average_precision" in m else "."))
    else:
        lines.append("No label column (is_anomaly / anomaly / label), so no precision or recall.")
    flagged = table.loc[flags, [time_name, column, "score"]].head(FLAGGED_ROWS)
    flagged = flagged.assign(**{time_name: flagged[time_name].astype(str), column: flagged[column].round(4),
                                "score": flagged["score"].round(4)})
    return figure, "\n\n".join(lines) + _notes(notes), flagged


def read_columns(upload: Any):
    """After an upload: the time-column and target choices from the CSV's header (guesses
    selected), and a note (the problem, when the file cannot be read)."""
    import gradio as gr

    from toolkit.errors import ToolkitError

    if _upload_path(upload) is None:
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


def model_facts(service: TimeSeriesService) -> str:
    """Markdown from each model's card: architecture, window, horizon, backtest metrics."""
    sections = []
    for name in service.model_names:
        card = service._forecasters[name].card()
        if card is None:
            sections.append(f"#### {name}\n**Model not available** ({service.forecaster_dir(name)}). {MAKE_MODELS}")
            continue
        cfg, metrics = card.get("config") or {}, card.get("metrics") or {}
        lines = [f"#### {name}", f"`{cfg.get('model', '?')}` forecaster of {card.get('columns')}: window "
                                 f"{card.get('window')}, horizon {card.get('horizon')}, season {card.get('season')}, "
                                 f"frequency {card.get('frequency')}; p10 / p50 / p90 outputs."]
        if "mase" in metrics:
            lines.append(f"**Backtest MASE** {metrics['mase']:.3f}, sMAPE {metrics.get('smape', float('nan')):.2f}, "
                         f"80% interval coverage {metrics.get('coverage_80', float('nan')):.2f}.")
        if metrics.get("verdict"):
            lines.append(str(metrics["verdict"]))
        if card.get("command"):
            lines.append(f"\nMade by `{card['command']}`.")
        sections.append("\n".join(lines))
    from toolkit.errors import ToolkitError
    from toolkit.storage import read_card

    try:
        card = read_card(service.anomaly_dir)
    except ToolkitError:
        sections.append(f"#### Anomaly detector\n**Model not available** ({service.anomaly_dir}). {MAKE_MODELS}")
    else:
        cfg, metrics = card.get("config") or {}, card.get("metrics") or {}
        lines = ["#### Anomaly detector",
                 f"`{cfg.get('model', '?')}` autoencoder over windows of {cfg.get('window', '?')} points of "
                 f"{(card.get('input') or {}).get('columns')}; threshold {card.get('threshold', float('nan')):.4g}."]
        if "train_f1" in metrics:
            lines.append(f"On its training series: precision {metrics.get('train_precision', float('nan')):.3f}, "
                         f"recall {metrics.get('train_recall', float('nan')):.3f}, F1 {metrics['train_f1']:.3f}.")
        if card.get("command"):
            lines.append(f"\nMade by `{card['command']}`.")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


# ---------------------------------------------------------------------- UI


def _service(forecaster_dirs, anomaly_dir) -> TimeSeriesService:
    key = tuple((k, str(v)) for k, v in forecaster_dirs.items()) if forecaster_dirs is not None else None
    return shared_service(key, str(anomaly_dir) if anomaly_dir is not None else None)


def timeseries_tab(forecaster_dirs: dict[str, str | Path] | None = None, anomaly_dir: str | Path | None = None,
                   service: TimeSeriesService | None = None) -> TimeSeriesService:
    """The time-series components (Forecast and Anomalies tabs), built inside an open gr.Blocks;
    returns the service they share."""
    import gradio as gr

    from toolkit.data.series import BUILTIN_SERIES

    if service is None:
        service = _service(forecaster_dirs, anomaly_dir)
    sources = [*BUILTIN_SERIES, UPLOAD]
    first = sources[0]
    gr.Markdown("### Time series\nForecast a built-in series or your own CSV with an 80% interval, compare it with "
                "simple baselines, see which past values drove it, and find anomalies in a sensor series.")
    warning = missing_models(service)
    if warning:
        gr.Markdown(warning)
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
                plot = gr.Plot(label="History, forecast, 80% interval and baselines", format="png")
                note = gr.Markdown()
                table = gr.Dataframe(label="Backtest (rolling origin; lower is better; MASE < 1 beats the in-sample "
                                           "seasonal naive)", interactive=False)
        with gr.Row():
            with gr.Column(scale=1):
                method = gr.Radio(list(EXPLAIN_METHODS), value="shap", label="Explanation method")
                step = gr.Slider(1, service.max_horizon(), value=1, step=1, label="Explain the forecast of step")
                explain_btn = gr.Button("Explain")
            with gr.Column(scale=2):
                heatmap = gr.Image(label="Which past values (lags) drove the forecast", type="numpy",
                                   interactive=False)
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
                a_plot = gr.Plot(label="Flagged points and anomaly score", format="png")
                a_note = gr.Markdown()
                a_table = gr.Dataframe(label="Flagged points", interactive=False)
    with gr.Accordion("Model facts (from card.json)", open=False):
        gr.Markdown(model_facts(service))

    inputs = [source, upload, time_column, target]
    run_forecast = _named(forecast, service, "forecast")
    forecast_btn.click(run_forecast, [*inputs, horizon, model], [plot, table, note], api_name="forecast")
    horizon.release(run_forecast, [*inputs, horizon, model], [plot, table, note], api_name=False)
    explain_btn.click(_named(explain_forecast, service, "explain_forecast"), [*inputs, model, method, step],
                      [heatmap, explain_note], api_name="explain_forecast")
    quick_btn.click(_named(train_quick_model, service, "train_quick_model"), [*inputs, quick_kind, quick_horizon],
                    [quick_note, model, horizon], api_name="train_quick_model").success(
        run_forecast, [*inputs, horizon, model], [plot, table, note], api_name=False)
    # The backtest alone (the forecast shows it too), for API users.
    backtest_btn = gr.Button("Backtest", visible=False)
    backtest_btn.click(_named(backtest_table, service, "backtest"), [*inputs, model], [table, note],
                       api_name="backtest")

    def source_changed(choice: str):  # the slider goes up to the built-in model's horizon
        limit = service.max_horizon() if choice == UPLOAD else service.default_horizon(choice)
        return gr.update(visible=choice == UPLOAD), gr.update(maximum=limit, value=min(limit, QUICK_HORIZON))

    source.change(source_changed, [source], [upload_group, horizon], api_name=False)
    upload.change(read_columns, [upload], [time_column, target, upload_note], api_name=False)
    a_source.change(lambda choice: (gr.update(visible=choice == UPLOAD), gr.update(visible=choice != UPLOAD)),
                    [a_source], [a_upload_group, seed], api_name=False)
    a_upload.change(read_columns, [a_upload], [a_time, a_target, a_upload_note], api_name=False)
    detect_btn.click(_named(detect_anomalies, service, "detect_anomalies"), [a_source, a_upload, a_time, a_target,
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
