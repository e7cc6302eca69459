"""The time-series tab's service: the shipped forecasters and anomaly detector, the built-in
series, the uploads, the quick models, the backtests and the forecast canvases, each made once and
shared by all requests; and the reading of uploaded CSV files."""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import SAVED_MODELS, ModelSlot, data_error, upload_path
from apps.timeseries_plots import ForecastCanvas
from toolkit.serving import Memo

logger = logging.getLogger(__name__)
TIMESERIES_MODELS = SAVED_MODELS / "timeseries"
DEFAULT_FORECASTER_DIRS = {"sunspots": TIMESERIES_MODELS / "sunspots_lstm", "co2": TIMESERIES_MODELS / "co2_lstm"}
DEFAULT_ANOMALY_DIR = SAVED_MODELS / "anomaly" / "sensor_lstm"

UPLOAD = "Upload a CSV"
SENSOR = "Synthetic sensor (labelled anomalies)"
AUTO = "Auto (the model trained on this column)"
QUICK = "Quick model (trained here)"
NO_TIME = "(none: the rows are steps 0, 1, 2, ...)"
QUICK_KINDS = ("dense", "lstm")
CSV_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")

#: the demo's backtest tables of a model folder's model, by series (computed once; see TimeSeriesService.backtest)
BACKTEST_FILE = "app_backtests.json"
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


def card_columns(slot: ModelSlot) -> list[str] | None:
    """The columns a forecaster folder's card records (target first), None without a card."""
    card = slot.card()
    return list(card.get("columns") or []) if card else None


def significant(table, digits: int = 4):
    """A table's float columns rounded to ``digits`` significant digits (for the page)."""
    out = table.copy()
    for column in out.columns:
        if out[column].dtype.kind == "f":
            out[column] = [float(f"{v:.{digits}g}") if np.isfinite(v) else v for v in out[column]]
    return out


def card_horizon(slot: ModelSlot) -> int | None:
    """The horizon a forecaster folder's card records, None without a card."""
    card = slot.card()
    return int(card["horizon"]) if card and card.get("horizon") else None


class TimeSeriesService:
    """The shipped forecasters and anomaly detector, the built-in series, the uploads, the quick
    models and the backtests, each made once and shared by all requests.

    ``forecaster_dirs`` maps model names (shown in the model choice) to forecaster folders (default:
    the shipped sunspots and co2 LSTMs); ``anomaly_dir`` is the anomaly detector's folder.
    """

    def __init__(self, forecaster_dirs: dict[str, str | Path] | None = None, anomaly_dir: str | Path | None = None):
        dirs = DEFAULT_FORECASTER_DIRS if forecaster_dirs is None else forecaster_dirs
        self._forecasters = {name: ModelSlot(name, d) for name, d in dirs.items()}
        self._anomaly = ModelSlot("anomaly detector", anomaly_dir if anomaly_dir is not None else DEFAULT_ANOMALY_DIR)
        self._lock = threading.Lock()
        self._train_lock = threading.Lock()
        self._builtin: dict[str, Any] = {}
        self._uploads = Memo(UPLOAD_CACHE)
        self._quick = Memo(QUICK_CACHE)
        self._backtests = Memo(64)
        self._sensor = Memo(8)
        self._canvases = Memo(16)
        self.quick_seconds, self.quick_epochs = QUICK_SECONDS, QUICK_EPOCHS  # the quick models' budget

    # ------------------------------------------------------------------ models
    @property
    def model_names(self) -> list[str]:
        return list(self._forecasters)

    @property
    def anomaly_dir(self) -> Path:
        return self._anomaly.directory

    def forecaster_dir(self, name: str) -> Path:
        return self.slot(name).directory

    def slot(self, name: str) -> ModelSlot:
        if name not in self._forecasters:
            raise data_error(f"Unknown model {name!r}. Choose one of {[AUTO, *self.model_names, QUICK]}.")
        return self._forecasters[name]

    def forecaster(self, name: str):
        """The Forecaster called ``name`` (loaded once, with a traced serving function)."""
        return self.slot(name).load()

    def detector(self):
        """The AnomalyDetector."""
        return self._anomaly.load()

    def max_horizon(self) -> int:
        """The longest horizon any configured model (or a quick model) forecasts."""
        known = [card_horizon(s) for s in self._forecasters.values()]
        return max([h for h in known if h] + [MAX_QUICK_HORIZON])

    def model_horizon(self, source: Any, model: Any) -> int:
        """The horizon of the model a request with this series and model choice would use (the
        built-in series' own model for "Auto"; the longest for an upload), for the sliders."""
        model = AUTO if model in (None, "") else str(model)
        if model == QUICK:
            horizons = [t.config.horizon for t in self._quick.values()]
            return max(horizons, default=QUICK_HORIZON)
        if model in self._forecasters:
            return card_horizon(self._forecasters[model]) or QUICK_HORIZON
        return self.max_horizon() if source == UPLOAD else self.default_horizon(source)

    def default_horizon(self, source: str | None) -> int:
        slot = self._forecasters.get(str(source))
        horizon = card_horizon(slot) if slot is not None else None
        if horizon is None:
            horizon = next((h for h in map(card_horizon, self._forecasters.values()) if h), QUICK_HORIZON)
        return horizon

    # ------------------------------------------------------------------ series
    def builtin(self, name: str):
        """A built-in series (sunspots, co2), loaded once."""
        from toolkit.data.series import BUILTIN_SERIES, load_series

        if name not in BUILTIN_SERIES:
            raise data_error(f"Unknown series {name!r}. Choose one of {[*BUILTIN_SERIES, UPLOAD]}.")
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
        time_column, target = time_choice(time_column), column_choice(target)
        if target is None:  # the guess the column choice shows: the first numeric non-time column
            header = csv_header(path)
            time_column = header["time_column"] if time_column is None else time_column
            target = header["target"]
        key = ("upload", str(path), stat.st_size, stat.st_mtime_ns, time_column, target, tuple(features or ()),
               resample)
        return self._uploads.get(key, lambda: _load_upload(path, time_column, target, features, resample)), key

    def sensor(self, seed: int):
        """The synthetic sensor series (labelled anomalies) for ``seed``, made once."""
        from toolkit.timeseries.anomaly import synthetic_sensor

        return self._sensor.get(seed, lambda: synthetic_sensor(SENSOR_POINTS, seed=seed))

    # ------------------------------------------------------------------ choosing a model
    def resolve(self, source: Any, upload: Any = None, time_column: Any = None, target: Any = None,
                model: Any = AUTO):
        """(forecaster, series, key, label, notes) for one request: the series the user chose
        (built-in or uploaded, with the columns the model needs) and the model that forecasts it."""
        notes: list[str] = []
        source = "sunspots" if source in (None, "") else str(source)
        if source == UPLOAD:
            series, key = self.upload(upload, time_column, target)
        else:
            series, key = self.builtin(source), ("builtin", source)
        model = AUTO if model in (None, "") else str(model)
        if model == QUICK:
            task = self._quick.peek(key)
            if task is None:
                raise data_error("No quick model has been trained on this series yet. Press 'Train a quick model' "
                                  "first (it fits a small model here in about 20 s), or choose another model.")
            return task, series, key, f"quick {task.config.model} model (trained here)", notes
        if model == AUTO:
            name = self._matching(series, source)
        else:
            name = self.slot(model).name
        task = self.forecaster(name)
        if source == UPLOAD:
            features, resample = task.reading_plan(series)
            if features or resample:
                series, key = self.upload(upload, time_column, series.columns[0], features or None, resample)
            if resample:
                notes.append(f"Resampled to {resample!r} (means per step), like the {name} model's training data.")
            elif task.frequency_ and series.frequency and series.frequency != task.frequency_:
                notes.append(f"The {name} model was trained on data at frequency {task.frequency_!r}; this series' "
                             f"frequency is {series.frequency!r}, so its steps mean something else.")
        series, adapted = task.adapt(series, name)
        notes += adapted
        return task, series, key + (name,), f"{name} model ({task.config.model})", notes

    def _matching(self, series, source: str) -> str:
        """The name of the configured model whose columns are this series' (target first)."""
        want = series.columns[0].lower()
        for name, slot in self._forecasters.items():
            columns = card_columns(slot)
            if columns and columns[0].lower() == want:
                return name
        if source in self._forecasters:  # the built-in's own model, missing: say so
            return source
        known = [f"{name} ({', '.join(card_columns(slot) or ['not available'])})"
                 for name, slot in self._forecasters.items()]
        raise data_error(f"No model here forecasts {series.columns[0]!r} (the models: {'; '.join(known) or 'none'}). "
                          "Press 'Train a quick model' to fit a small one on this series (about 20 s), or choose a "
                          "model to apply as it is.")

    # ------------------------------------------------------------------ backtests
    def backtest(self, task, series, key, compute: bool = True) -> tuple[Any, str] | None:
        """(table, verdict) of the rolling-origin backtest of ``task`` on ``series`` (its last
        BACKTEST_POINTS), computed once per (model, series): kept in memory, and for a model
        loaded from a folder also in that folder's BACKTEST_FILE (read back by a fresh server, so
        its start does not pay the classical models' fits again). ``compute=False``: None
        instead of computing one that is not stored."""
        cache_key = (id(task), key)
        cached = self._backtests.peek(cache_key)
        if cached is not None:
            return cached
        part = series.slice(-BACKTEST_POINTS, None) if len(series) > BACKTEST_POINTS else series
        fingerprint = backtest_fingerprint(task, part)
        out = stored_backtest(task, fingerprint)
        if out is None:
            if not compute:
                return None
            out = run_backtest(task, part, series)
            store_backtest(task, fingerprint, out)
        return self._backtests.put(cache_key, out)

    def canvas(self, task, series, key, label: str) -> "ForecastCanvas":
        """The forecast plot's shared part for (model, series), drawn once."""
        cache_key = (id(task), key)
        return self._canvases.get(cache_key, lambda: ForecastCanvas(series, task, f"{series.name}: {label}"))

    # ------------------------------------------------------------------ quick models
    def train_quick(self, series, key, kind: str = "dense", horizon: int = QUICK_HORIZON):
        """Fit a small Forecaster on ``series`` (its last QUICK_POINTS) within about
        ``quick_seconds`` and keep it for this series."""
        from toolkit.callbacks import TimeBudget
        from toolkit.timeseries.forecaster import Forecaster, ForecasterConfig

        if kind not in QUICK_KINDS:
            raise data_error(f"Unknown quick model {kind!r}. Choose one of {list(QUICK_KINDS)}.")
        seconds = self.quick_seconds
        if not self._train_lock.acquire(timeout=2 * seconds):
            raise data_error("Another quick model is training; try again in a few seconds.")
        try:
            part = series.slice(-QUICK_POINTS, None) if len(series) > QUICK_POINTS else series
            config = ForecasterConfig(model=kind, horizon=horizon, epochs=self.quick_epochs, patience=QUICK_PATIENCE,
                                      units=16)
            budget = TimeBudget(seconds)
            start = time.perf_counter()
            task = Forecaster(config).fit(part, callbacks=[budget])
            task.app_training_ = {"seconds": time.perf_counter() - start, "epochs": len(task.history_["loss"]),
                                  "points": len(part), "stopped_by_budget": budget.stopped}
        finally:
            self._train_lock.release()
        return self._quick.put(key, task)

    # ------------------------------------------------------------------ warm-up
    def warm_up(self, compute_backtests: bool = False) -> None:
        """Load every model, draw one forecast per built-in series (its canvas; its backtest when
        the model's folder stores it: computing one takes a minute of CPU, so it is otherwise
        left to its first use, or done here with ``compute_backtests``, which stores them: ``make
        models`` does) and run the detector once, so that the first request is fast (the
        explainers load on the first explanation)."""
        from toolkit.data.series import BUILTIN_SERIES
        from toolkit.errors import ToolkitError

        for name, slot in self._forecasters.items():
            try:
                slot.load()
                if name not in BUILTIN_SERIES:
                    continue
                task, series, key, label, _ = self.resolve(name, model=name)
                frame = task.forecast(series, task.config.horizon)
                self.canvas(task, series, key, label).render(frame, task.baseline_forecasts(series))
                self.backtest(task, series, key, compute=compute_backtests)  # else on first use
            except ToolkitError:  # a missing model: the facts panel and each request say so
                pass
            except Exception:  # never stop the app from starting: each request reports its own error
                logger.exception("Warming up the %s forecaster failed", name)
        try:
            self.detector().detect(self.sensor(1))
        except ToolkitError:
            pass
        except Exception:
            logger.exception("Warming up the anomaly detector failed")


@functools.lru_cache(maxsize=4)
def shared_service(forecaster_dirs: tuple | None = None, anomaly_dir: str | None = None) -> TimeSeriesService:
    """One service per set of folders, so rebuilding the app does not reload models. Models load on
    first use (``warm_up`` loads them ahead: ``apps.main.launch`` runs it in the background)."""
    service = TimeSeriesService(dict(forecaster_dirs) if forecaster_dirs is not None else None, anomaly_dir)
    return service


# ---------------------------------------------------------------------- uploads


def checked_upload(upload: Any) -> Path:
    """The uploaded file's path, once it is known to be a non-empty CSV/TSV file of at most
    MAX_ROWS rows (the content itself is checked when it is read)."""
    path = upload_path(upload)
    if path is None:
        raise data_error("No file received. Upload a CSV file (a header row, a time column and numeric values), "
                          "or pick a built-in series.")
    if path.suffix.lower() not in CSV_SUFFIXES:
        raise data_error(f"Expected a CSV file ({', '.join(CSV_SUFFIXES)}: a header row, then one row per time "
                          f"step). Received {path.name!r}. Export the data as CSV first.")
    if not path.is_file():
        raise data_error(f"The upload {path.name!r} is not on the server any more. Upload it again.")
    with path.open("rb") as handle:
        rows = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    if rows > MAX_ROWS + 1:
        raise data_error(f"{path.name!r} has {rows:,} rows; the demo reads up to {MAX_ROWS:,}. Resample or cut the "
                          "series first, or use the command line (toolkit train timeseries / predict).")
    return path


def _friendly(exc: Exception, path: Path) -> Exception:
    """The loader's error with the server's temporary path replaced by the file's name."""
    message = str(exc)
    for text in {str(path), str(path.resolve())}:
        message = message.replace(repr(text), repr(path.name)).replace(text, path.name)
    return data_error(message)


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
        raise data_error(f"Could not read {path.name!r} as a time series ({type(exc).__name__}: {exc}). "
                          "Expected a CSV file with a header row, a time column and numeric values.") from exc


def csv_header(upload: Any) -> dict:
    """The columns of an uploaded CSV and the guessed time and target columns:
    ``{"columns", "time_column", "target", "numeric", "label"}``."""
    from toolkit.data.series import sniff_csv
    from toolkit.errors import ToolkitError

    path = checked_upload(upload)
    try:
        return sniff_csv(path)
    except ToolkitError as exc:
        raise _friendly(exc, path) from exc


def time_choice(value: Any):
    """The time column as load_series takes it: None (detect it), False (none) or a name."""
    if value is None or value is False:
        return value
    if value == "":
        return None
    return False if value == NO_TIME else str(value)


def column_choice(value: Any):
    return None if value in (None, "") else str(value)


# ---------------------------------------------------------------------- stored backtests


def backtest_fingerprint(task, part) -> str:
    """What a backtest table depends on: the model file, the series' values and columns, the
    classical models and the points backtested."""
    import hashlib

    from toolkit.storage import sha256_file

    digest = hashlib.sha256()
    model_file = Path(task.directory_) / "model.keras" if getattr(task, "directory_", None) else None
    digest.update((sha256_file(model_file) if model_file is not None and model_file.is_file() else
                   f"unsaved {id(task)}").encode())
    digest.update(np.ascontiguousarray(part.values, dtype=np.float64).tobytes())
    digest.update(repr((list(part.columns), tuple(task.config.classical), task.config.horizon,
                        BACKTEST_POINTS)).encode())
    return digest.hexdigest()


def stored_backtest(task, fingerprint: str) -> tuple[Any, str] | None:
    """The (table, verdict) stored in the model's folder for ``fingerprint``, or None."""
    import json

    import pandas as pd

    folder = getattr(task, "directory_", None)
    path = Path(folder) / BACKTEST_FILE if folder else None
    if path is None or not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text()).get(fingerprint)
        if entry is None:
            return None
        return pd.DataFrame(entry["rows"], columns=entry["columns"]), str(entry["verdict"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        logger.warning("Ignoring the unreadable %s", path)
        return None


def store_backtest(task, fingerprint: str, out: tuple[Any, str]) -> None:
    """Keep ``out`` in the model's folder for ``fingerprint`` (atomically; the folder's other
    entries kept). A folder that cannot be written to only loses the saving."""
    import json

    from toolkit.storage import write_json

    folder = getattr(task, "directory_", None)
    if not folder:
        return
    path = Path(folder) / BACKTEST_FILE
    table, verdict = out
    try:
        entries = json.loads(path.read_text()) if path.is_file() else {}
        entries = entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        entries = {}
    entries[fingerprint] = {"columns": [str(c) for c in table.columns], "verdict": verdict,
                            "rows": [list(row) for row in table.itertuples(index=False)]}
    try:
        write_json(path, entries)
    except Exception as exc:  # a read-only folder: the table is only kept in memory
        logger.info("Could not store the backtest in %s: %s", path, exc)


def run_backtest(task, part, series) -> tuple[Any, str]:
    """(table, verdict) of ``task.backtest(part)`` for the page (a ToolkitError says why there is none)."""
    import pandas as pd

    from toolkit.errors import ToolkitError

    try:
        result = task.backtest(part)
    except ToolkitError as exc:
        return (pd.DataFrame(columns=["forecaster", "mae", "rmse", "smape", "mase"]),
                f"No backtest for this series: {exc}")
    table = result.to_frame().reset_index()
    table.columns = ["forecaster", *table.columns[1:]]
    table = significant(table)
    where = f" over its last {BACKTEST_POINTS:,} points" if part is not series else ""
    coverage = result.coverage
    cover = ("" if coverage is None else
             f" The p10-p90 interval held {coverage:.0%} of the actual values (80% is the aim).")
    return table, (f"Backtest{where}: {len(result.cutoffs)} forecasts of {result.horizon} steps from rolling "
                   f"cut-offs in the last part of the series. {result.verdict}{cover}")
