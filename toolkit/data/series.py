"""Time series: CSV/TSV files with a time column, numpy arrays, pandas objects and the built-in
statsmodels series (``sunspots``, ``co2``, ``nile``, ``elnino``, ``realgdp``, ``cpi``, ``unemp``);
their split by time.

Every source becomes a :class:`SeriesData`: float32 values without NaN (column 0 the target,
then the features), the timestamps, the detected frequency, and ``spec``, enough to load the
same series again (:func:`reload_series`). What loading repaired (missing values, duplicated or
unsorted timestamps, empty resampling bins) is warned about once and listed in ``notes``.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError

BUILTIN_SERIES = ("sunspots", "co2", "nile", "elnino", "realgdp", "cpi", "unemp")
BUILTIN_RESAMPLE = {"co2": "MS"}  # co2 is weekly with gaps; the benchmark uses monthly means
TIME_COLUMNS = ("time", "date", "datetime", "timestamp", "ts", "month", "year", "period")
LABEL_COLUMNS = ("is_anomaly", "anomaly", "label")  # 0/1 anomaly labels, not values
SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
IN_MEMORY = ("array", "dataframe", "series")
_SHOWN = 5


@dataclasses.dataclass
class SeriesData:
    """A regular-or-not time series: ``values`` (T, F) float32, column 0 the target, no NaN."""

    values: np.ndarray
    columns: list[str]
    index: pd.Index
    frequency: str | None
    name: str
    spec: dict
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def target(self) -> np.ndarray:
        return self.values[:, 0]

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def slice(self, start: int | None, stop: int | None) -> "SeriesData":
        """Rows ``start:stop`` (positional), with the same columns, frequency and spec."""
        part = slice(start, stop)
        return dataclasses.replace(self, values=self.values[part], index=self.index[part],
                                   spec=dict(self.spec), notes=list(self.notes))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values, index=self.index, columns=list(self.columns))


# --------------------------------------------------------------------------- helpers


def _listing(items: list) -> str:
    shown = ", ".join(str(i) for i in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def detect_frequency(index: Any) -> str | None:
    """The pandas offset alias of a DatetimeIndex ("D", "MS", "YS-JAN", "W-SAT", "h"), else None."""
    if not isinstance(index, pd.DatetimeIndex):
        return None
    index = index.unique().sort_values()
    if len(index) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 announces an offset return type
        freq = pd.infer_freq(index)
    return None if freq is None else str(getattr(freq, "freqstr", freq))


def min_length_error(n: int, window: int, horizon: int, name: str = "the series", extra: int = 0,
                     why: str = "") -> DataError:
    """The error for a series too short for ``window + horizon`` (+ ``extra`` points, ``why``)."""
    need = f"window + horizon = {window} + {horizon} = {window + horizon}"
    more = f" (+ {extra} {why})".rstrip() if extra else ""
    return DataError(
        f"The series {name!r} has {n} points; at least {need}{more} are needed. "
        "Use a smaller --window/--horizon or more data."
    )


# --------------------------------------------------------------------------- parsing columns


def _parse_times(col: pd.Series, column: str, where) -> pd.DatetimeIndex:
    """Timestamps from ISO dates, "Jan 1949", "1949-01", Unix seconds/ms or plain years."""
    if pd.api.types.is_datetime64_any_dtype(col):
        times = pd.to_datetime(col, utc=True)
    else:
        text = col.astype("string").str.strip()
        missing = np.flatnonzero(text.isna().to_numpy() | (text == "").fillna(True).to_numpy())
        if len(missing):
            raise DataError(f"The time column {column!r} is empty at {where(missing[0])}. "
                            "Fill in the time of every row, or remove those rows.")
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().all():
            low, high = numbers.min(), numbers.max()
            if (numbers % 1 == 0).all() and 1700 <= low and high <= 2100:
                times = pd.to_datetime(numbers.astype(int).astype(str), format="%Y", utc=True)
            elif 1e8 <= low and high < 1e10:
                times = pd.to_datetime(numbers, unit="s", utc=True)
            elif 1e11 <= low and high < 1e13:
                times = pd.to_datetime(numbers, unit="ms", utc=True)
            else:
                raise DataError(
                    f"The time column {column!r} holds numbers ({low:g} to {high:g}) that are neither years "
                    "(1700..2100) nor Unix timestamps (seconds or milliseconds). Use dates such as 2020-01-31, "
                    "pass another time_column, or time_column=False to number the rows 0, 1, 2, ..."
                )
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "could not infer format": dateutil parses each value
                times = pd.to_datetime(text, errors="coerce", utc=True)
            bad = np.flatnonzero(times.isna().to_numpy())
            if len(bad):
                raise DataError(
                    f"Could not read the time {text.iloc[bad[0]]!r} at {where(bad[0])} (column {column!r}; "
                    f"{len(bad)} value(s) unreadable). Expected dates or times in one format, e.g. 2020-01-31, "
                    "2020-01-31 12:00, 'Jan 1949', 1949-01, a year or a Unix timestamp."
                )
    return pd.DatetimeIndex(times).tz_localize(None).rename("time")


def _looks_like_times(col: pd.Series) -> bool:
    text = col.dropna().astype("string").str.strip()
    if text.empty or pd.to_numeric(text, errors="coerce").notna().any():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(pd.to_datetime(text, errors="coerce").notna().all())


def _decimal_comma(frame: pd.DataFrame, columns: list[str], sep: str) -> bool:
    if sep == ",":
        return False
    values = pd.concat([frame[c].dropna().astype("string") for c in columns])
    return bool(values.str.fullmatch(r"\s*[+-]?\d*,\d+\s*").any() and not values.str.contains(r"\d\.\d").any())


def _to_numbers(col: pd.Series, column: str, where, decimal_comma: bool) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        numbers = col.astype("float64")
    else:
        text = col.astype("string").str.strip().replace("", pd.NA)
        numbers = pd.to_numeric(text.str.replace(",", ".") if decimal_comma else text, errors="coerce")
        bad = np.flatnonzero((numbers.isna() & text.notna()).to_numpy())
        if len(bad):
            value = text.iloc[bad[0]]
            hint = (" It looks like a thousands separator or a decimal comma: write numbers as 1234.5."
                    if re.search(r"\d[,.' ]\d", value) else "")
            raise DataError(
                f"Column {column!r} has a value that is not a number at {where(bad[0])}: {value!r} "
                f"({len(bad)} such value(s)).{hint} Fix or empty those cells (empty cells are interpolated)."
            )
    values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    if np.isinf(values).any():
        raise DataError(f"Column {column!r} has an infinite value at {where(np.flatnonzero(np.isinf(values))[0])}. "
                        "Replace it with a number or an empty cell.")
    if np.isnan(values).all():
        raise DataError(f"Column {column!r} has no values (every cell is empty or NaN). Pick another column.")
    return values


def _column(columns: list[str], asked: str, kind: str, flag: str, where: str) -> str:
    if asked in columns:
        return asked
    folded = [c for c in columns if c.strip().lower() == str(asked).strip().lower()]
    if len(folded) == 1:
        return folded[0]
    raise DataError(f"{where} has no {kind} column {asked!r}. Available columns: {columns}. "
                    f"Pass one of them with {flag}.")


# --------------------------------------------------------------------------- frames -> SeriesData


def _from_frame(frame: pd.DataFrame, name: str, source: Any, time_column, target, features, resample,
                where, sep: str = ",") -> SeriesData:
    columns = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    label = repr(name)
    if len(frame) == 0:
        raise DataError(f"{label} has a header but no rows. Expected one row per time step.")
    if isinstance(time_column, str):  # False: no time column, the rows are steps 0..T-1
        time_column = _column(columns, time_column, "time", "--time-column (time_column=...)", label)
    elif time_column is None and not isinstance(frame.index, pd.DatetimeIndex):
        named = [c for c in columns if c.lower() in TIME_COLUMNS]
        time_column = named[0] if named else (columns[0] if _looks_like_times(frame[columns[0]]) else None)
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",") if f.strip()]
    features = [_column(columns, f, "feature", "--features (features=[...])", label) for f in features or []]
    if target is None:
        def numeric(c: str) -> bool:
            col = frame[c] if sep == "," or frame[c].dtype != object else frame[c].str.replace(",", ".")
            return bool(pd.to_numeric(col, errors="coerce").notna().any())

        rest = [c for c in columns if c != time_column and c not in features]
        candidates = rest if len(rest) == 1 else [c for c in rest if numeric(c)]
        if len(candidates) != 1:
            raise DataError(
                f"{label} has {len(candidates)} numeric columns besides the time: {candidates}. Pass the column "
                f"to forecast with --target (target=...); all columns: {columns}."
            )
        target = candidates[0]
    target = _column(columns, target, "target", "--target (target=...)", label)
    used = [target, *features]
    if len(set(used)) != len(used) or time_column in used:
        raise DataError(f"Expected the target {target!r}, the features {features} and the time column "
                        f"{time_column!r} to be different columns. Drop the repeated names.")
    comma = _decimal_comma(frame, used, sep)
    values = np.stack([_to_numbers(frame[c], c, where, comma) for c in used], axis=1)
    if isinstance(time_column, str):
        index = _parse_times(frame[time_column], time_column, where)
    elif isinstance(frame.index, pd.DatetimeIndex):
        index = frame.index.tz_localize(None).rename("time") if frame.index.tz else frame.index.rename("time")
    else:
        index = pd.RangeIndex(len(frame))
    table = pd.DataFrame(values, index=index, columns=used)
    notes: list[str] = []

    def fix(message: str) -> None:
        if source not in BUILTIN_SERIES:  # the built-ins' repairs are known: notes only
            warnings.warn(f"{label}: {message}.", stacklevel=4)
        notes.append(message)

    if isinstance(index, pd.DatetimeIndex):
        if not index.is_monotonic_increasing:
            fix(f"the rows were not in time order ({int((np.diff(index.asi8) < 0).sum())} step(s) back in time); "
                "sorted them by time")
            table = table.sort_index(kind="stable")
        if table.index.has_duplicates:
            n = len(table) - table.index.nunique()
            table = table.groupby(level=0).mean()
            fix(f"averaged {n} row(s) whose timestamp repeats an earlier row")
    missing = table.isna().sum()
    if missing.any():
        counts = ", ".join(f"{int(k)} in {c!r}" for c, k in missing.items() if k)
        fix(f"interpolated missing values linearly in time: {counts}")
        table = _interpolate(table)
    if resample:
        if not isinstance(table.index, pd.DatetimeIndex):
            raise DataError(f"Cannot resample {label} to {resample!r}: it has no time column. "
                            "Pass a time column (--time-column) or no resample.")
        try:
            table = table.resample(resample).mean()
        except (ValueError, TypeError) as exc:
            raise DataError(f"Unknown resampling frequency {resample!r} ({exc}). Use a pandas offset alias "
                            "such as 'h', 'D', 'W', 'MS' or 'YS'.") from exc
        empty = int(table.iloc[:, 0].isna().sum())
        if empty:
            notes.append(f"resampled to {resample!r}; interpolated {empty} empty bin(s)")
            table = _interpolate(table)
        else:
            notes.append(f"resampled to {resample!r} (mean)")
    frequency = detect_frequency(table.index)
    if frequency is None and isinstance(table.index, pd.DatetimeIndex):
        notes.append("no regular frequency detected (irregular time steps)")
    spec = {"source": source, "time_column": time_column, "target": target, "features": features,
            "resample": resample}
    return SeriesData(table.to_numpy(dtype="float32"), used, table.index, frequency, name, spec, notes)


def _interpolate(table: pd.DataFrame) -> pd.DataFrame:
    method = "time" if isinstance(table.index, pd.DatetimeIndex) else "linear"
    return table.interpolate(method=method, limit_direction="both")


# --------------------------------------------------------------------------- sources


def _read_csv(path: Path) -> tuple[pd.DataFrame, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Could not read {str(path)!r} ({exc.strerror or exc}). "
                        "Check the path and permissions.") from exc
    if not raw.strip():
        raise DataError(f"{str(path)!r} is empty. Expected a header row (e.g. 'date,value') and one row per time step.")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{str(path)!r} looks like a binary file (it contains NUL bytes), not a CSV text file. "
                        "Export the data as CSV (e.g. 'Save as' > 'CSV UTF-8').")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{str(path)!r}: line {line} is not valid UTF-8 (byte 0x{raw[exc.start]:02x}). "
                        "Re-save the file as UTF-8 (e.g. 'Save as' > 'CSV UTF-8').") from exc
    first = text.lstrip().split("\n", 1)[0]
    sep = SEPARATORS.get(path.suffix.lower(), "\t" if "\t" in first else ",")
    sep = ";" if sep == "," and ";" in first and "," not in first else sep
    try:  # blank lines are kept as empty rows so that row i is on line i + 2
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, skip_blank_lines=False, index_col=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{str(path)!r} has no header row or data.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{str(path)!r} could not be parsed as a table separated by {sep!r} ({str(exc).strip()}). "
                        "Check that every row has the same number of fields.") from exc
    return frame.dropna(how="all"), sep


def read_csv_table(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV/TSV file as a DataFrame of strings (separator guessed, UTF-8 checked, empty rows dropped)."""
    return _read_csv(Path(path))[0]


def sniff_csv(path: str | os.PathLike) -> dict:
    """The columns of a CSV file and the guesses ``load_series`` would make: ``{"columns",
    "time_column" (or None), "target" (the first numeric column but time and label), "numeric",
    "label" (an anomaly-label column, or None)}``. Reads the first 200 rows only for the guesses."""
    path = Path(path)
    frame = read_csv_table(path)
    columns = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if frame.empty:
        raise DataError(f"{path.name!r} has a header but no rows. Expected one row per time step.")
    head = frame.head(200)
    numeric = [c for c in columns if pd.to_numeric(head[c].astype("string").str.strip().str.replace(",", "."),
                                                   errors="coerce").notna().mean() > 0.5]
    time_column = next((c for c in columns if c.lower() in TIME_COLUMNS), None)
    if time_column is None and columns and columns[0] not in numeric and _looks_like_times(head[columns[0]]):
        time_column = columns[0]
    label = next((c for c in columns if c.lower() in LABEL_COLUMNS), None)
    targets = [c for c in numeric if c not in (time_column, label)]
    if not targets:
        raise DataError(f"{path.name!r} has no numeric column to forecast besides the time (columns: {columns}). "
                        "Expected a column of numbers, e.g. 'date,value'.")
    return {"columns": columns, "time_column": time_column, "target": targets[0], "numeric": numeric, "label": label}


def _builtin(name: str) -> pd.DataFrame:
    try:
        from statsmodels import datasets
    except ImportError as exc:
        raise DataError(f"The built-in series {name!r} comes with statsmodels. "
                        "Install it: pip install statsmodels") from exc
    if name == "sunspots":
        data = datasets.sunspots.load_pandas().data
        index = pd.to_datetime(data["YEAR"].astype(int).astype(str), format="%Y")
        return pd.DataFrame({"sunspots": data["SUNACTIVITY"].to_numpy()}, index=pd.DatetimeIndex(index))
    if name == "nile":  # yearly flow of the Nile at Aswan, 1871-1970
        data = datasets.nile.load_pandas().data
        index = pd.to_datetime(data["year"].astype(int).astype(str), format="%Y")
        return pd.DataFrame({"nile": data["volume"].to_numpy()}, index=pd.DatetimeIndex(index))
    if name == "elnino":  # monthly sea surface temperature, 1950-2010: one row per year, reshaped
        data = datasets.elnino.load_pandas().data
        values = data.drop(columns="YEAR").to_numpy().reshape(-1)
        index = pd.date_range(f"{int(data['YEAR'].iloc[0])}-01-01", periods=len(values), freq="MS")
        return pd.DataFrame({"elnino": values}, index=index)
    if name in ("realgdp", "cpi", "unemp"):  # quarterly US macro data, 1959-2009
        data = datasets.macrodata.load_pandas().data
        index = pd.date_range(f"{int(data['year'].iloc[0])}-01-01", periods=len(data), freq="QS")
        return pd.DataFrame({name: data[name].to_numpy()}, index=index)
    data = datasets.co2.load_pandas().data
    return pd.DataFrame({"co2": data["co2"].to_numpy()}, index=pd.DatetimeIndex(data.index))


def _array_frame(array: np.ndarray) -> pd.DataFrame:
    if array.ndim not in (1, 2) or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"Expected a non-empty 1-D (T,) or 2-D (T, F) numeric array. Received shape {array.shape}, "
                        f"dtype {array.dtype}.")
    array = array.reshape(len(array), -1).astype("float64")
    return pd.DataFrame(array, columns=["y"] + [f"x{i}" for i in range(1, array.shape[1])])


def load_series(source: Any, time_column: str | bool | None = None, target: str | None = None,
                features: Sequence[str] | str | None = None, resample: str | bool | None = None) -> SeriesData:
    """Load a time series from a built-in name, a CSV/TSV path, a pandas object or a numpy array.

    * ``"sunspots"`` (yearly, 1700-2008) or ``"co2"`` (weekly Mauna Loa, resampled to monthly means
      "MS" unless ``resample`` says otherwise; ``resample=False`` keeps it weekly), ``"nile"`` (yearly
      flow, 1871-1970), ``"elnino"`` (monthly sea surface temperature, 1950-2010), ``"realgdp"``,
      ``"cpi"``, ``"unemp"`` (quarterly US macro data, 1959-2009), all from statsmodels, offline.
    * a ``.csv``/``.tsv`` file with a header: ``time_column`` (default: a column named time/date/
      datetime/timestamp/ts/month/year/period, else the first column if it holds dates, else none;
      ``False``: none, the rows are steps 0..T-1),
      ``target`` (default: the only numeric column) and ``features`` (names or "a,b").
    * a DataFrame/Series (a DatetimeIndex is kept), a 1-D or 2-D array ("y", "x1", ...), a SeriesData.

    ``resample`` is a pandas offset alias ("h", "D", "W", "MS"): means per bin, empty bins interpolated.
    """
    if isinstance(source, SeriesData):
        return source
    if isinstance(source, np.ndarray):
        frame = _array_frame(source)
        return _from_frame(frame, "array", "array", False, "y", list(frame.columns[1:]), resample,
                           lambda i: f"index {i}")
    if isinstance(source, pd.Series):
        frame = source.to_frame(str(source.name) if source.name is not None else "y")
        return _from_frame(frame, "series", "series", None, target, features, resample, lambda i: f"row {i}")
    if isinstance(source, pd.DataFrame):
        return _from_frame(source, "dataframe", "dataframe", time_column, target, features, resample,
                           lambda i: f"row {i} (index {source.index[i]!r})")
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"Expected a CSV path, a built-in name {list(BUILTIN_SERIES)}, a pandas DataFrame/Series or "
                        f"a numpy array. Received {type(source).__name__}.")
    key = str(source).strip().lower()
    if key in BUILTIN_SERIES and not Path(source).exists():
        frame = _builtin(key)
        rule = BUILTIN_RESAMPLE.get(key) if resample is None else resample
        data = _from_frame(frame, key, key, None, target, features, rule, lambda i: f"row {i}")
        data.spec["resample"] = resample if resample is False else rule
        return data
    path = Path(source).expanduser()
    if not path.exists():
        builtin = "" if path.suffix or os.sep in str(source) else " It is not a built-in series either."
        raise DataError(f"Time series not found: {str(source)!r}.{builtin} Expected a path to a .csv/.tsv file "
                        f"or a built-in name: {list(BUILTIN_SERIES)}.")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder. Expected one .csv/.tsv file with a time column and values.")
    frame, sep = _read_csv(path)
    lines = frame.index.to_numpy() + 2  # header = line 1
    return _from_frame(frame.reset_index(drop=True), path.name, str(path.resolve()), time_column, target, features,
                       resample, lambda i: f"line {lines[i]}", sep)


def load_series_like(source: Any, columns: list[str], spec: dict | None) -> SeriesData:
    """Load ``source`` with the given columns (target first), resampled like the training data."""
    if isinstance(source, SeriesData) or (isinstance(source, str) and source in BUILTIN_SERIES):
        return load_series(source)
    spec = spec or {}
    time_column = False if spec.get("time_column") is False else None
    return load_series(source, time_column=time_column, target=columns[0], features=columns[1:] or None,
                       resample=spec.get("resample"))


def future_times(last: str | None, frequency: str | None, horizon: int) -> list:
    """Timestamps of the next ``horizon`` steps, or step numbers when the frequency is unknown."""
    import pandas as pd

    if last is not None and frequency:
        try:
            start = pd.Timestamp(last)
            return list(pd.date_range(start, periods=horizon + 1, freq=frequency)[1:])
        except (ValueError, TypeError):
            pass
    base = int(last) + 1 if last is not None and str(last).lstrip("-").isdigit() else 1
    return list(range(base, base + horizon))


def reload_series(spec: dict) -> SeriesData:
    """Load the series that ``spec`` (a ``SeriesData.spec``) describes again."""
    source = spec.get("source")
    if source in IN_MEMORY or source is None:
        raise DataError(f"The series was given in memory ({source!r}), so it cannot be loaded again from its spec. "
                        "Pass the data itself, or save it as a CSV file and load that.")
    keys = ("time_column", "target", "features", "resample")
    return load_series(source, **{k: spec[k] for k in keys if k in spec})


def split_series(data: SeriesData, test_size: float | int) -> tuple[SeriesData, SeriesData]:
    """Train = the first part, test = the last ``test_size`` (share in (0, 1) or a count of points)."""
    n = len(data)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.integer, np.floating)):
        raise DataError(f"Expected test_size as a share in (0, 1) or a number of points. Received {test_size!r}.")
    if isinstance(test_size, (float, np.floating)):
        if not 0 < test_size < 1:
            raise DataError(f"Expected a test_size share between 0 and 1 (or an int count). Received {test_size}.")
        n_test = int(math.ceil(test_size * n))
    else:
        n_test = int(test_size)
    if not 1 <= n_test < n:
        raise DataError(f"Cannot split {n} points of {data.name!r} into a train part and a test part of {n_test} "
                        f"(test_size={test_size}): both parts need at least 1 point. "
                        "Use more data or change test_size.")
    return data.slice(0, n - n_test), data.slice(n - n_test, n)


__all__ = [
    "BUILTIN_SERIES",
    "SeriesData",
    "detect_frequency",
    "load_series",
    "min_length_error",
    "reload_series",
    "split_series",
]


def make_windows(values: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (input window, next ``horizon`` targets) pair of a (T, F) series, oldest first."""
    import keras

    values = np.asarray(values, dtype=np.float32)
    n = len(values) - window - horizon + 1
    if n < 1:
        return np.zeros((0, window, values.shape[1]), np.float32), np.zeros((0, horizon), np.float32)
    ds = keras.utils.timeseries_dataset_from_array(values, None, sequence_length=window + horizon,
                                                   batch_size=4096, shuffle=False)
    pairs = np.concatenate(list(ds.as_numpy_iterator()))
    return pairs[:, :window], pairs[:, window:, 0]
