"""Time-series data: CSV time formats and frequencies, built-ins, repairs, clear errors, splits, reload."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.data.series import (
    BUILTIN_SERIES,
    SeriesData,
    detect_frequency,
    load_series,
    min_length_error,
    reload_series,
    split_series,
)
from toolkit.errors import DataError


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def quiet_load(*args, **kwargs) -> SeriesData:
    """Load and fail on any warning (clean input must load silently)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_series(*args, **kwargs)


# --------------------------------------------------------------------------- time formats


def test_daily_iso_dates(tmp_path):
    rows = "\n".join(f"2021-03-{d:02d},{d * 1.5}" for d in range(1, 11))
    data = quiet_load(write(tmp_path / "sales.csv", "date,sales\n" + rows + "\n"))
    assert data.frequency == "D"
    assert data.columns == ["sales"] and data.name == "sales.csv"
    assert data.values.dtype == np.float32 and data.values.shape == (10, 1)
    assert data.index[0] == pd.Timestamp("2021-03-01") and data.index[-1] == pd.Timestamp("2021-03-10")
    np.testing.assert_allclose(data.target, np.arange(1, 11) * 1.5)
    assert data.notes == [] and data.spec["time_column"] == "date" and data.spec["target"] == "sales"


@pytest.mark.parametrize("months", [["Jan 1949", "Feb 1949", "Mar 1949", "Apr 1949", "May 1949"],
                                    ["1949-01", "1949-02", "1949-03", "1949-04", "1949-05"]])
def test_monthly_names_and_year_month(tmp_path, months):
    text = "Month,Passengers\n" + "\n".join(f"{m},{100 + i}" for i, m in enumerate(months)) + "\n"
    data = quiet_load(write(tmp_path / "air.csv", text))
    assert data.frequency == "MS"
    assert list(data.index[:2]) == [pd.Timestamp("1949-01-01"), pd.Timestamp("1949-02-01")]
    assert data.target.tolist() == [100, 101, 102, 103, 104]


def test_unix_seconds_and_milliseconds_hourly(tmp_path):
    start = 1_600_000_000
    seconds = quiet_load(write(tmp_path / "s.csv", "ts,v\n" + "".join(f"{start + 3600 * i},{i}\n" for i in range(6))))
    millis = quiet_load(write(tmp_path / "ms.csv", "timestamp,v\n" + "".join(f"{(start + 3600 * i) * 1000},{i}\n"
                                                                          for i in range(6))))
    assert seconds.frequency == millis.frequency == "h"
    assert seconds.index[0] == millis.index[0] == pd.Timestamp(start, unit="s")


def test_plain_years_tsv(tmp_path):
    data = quiet_load(write(tmp_path / "y.tsv", "year\tvalue\n" + "".join(f"{1990 + i}\t{i}\n" for i in range(8))))
    assert data.frequency.startswith("YS")
    assert data.index[0] == pd.Timestamp("1990-01-01")


def test_first_column_dates_without_time_name_and_no_time_column(tmp_path):
    dated = quiet_load(write(tmp_path / "a.csv", "when,v\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n"))
    assert dated.spec["time_column"] == "when" and dated.frequency == "D"
    plain = quiet_load(write(tmp_path / "b.csv", "v\n1\n2\n3\n"))
    assert isinstance(plain.index, pd.RangeIndex) and plain.frequency is None and plain.spec["time_column"] is None
    steps = write(tmp_path / "c.csv", "period,v\n1,5\n2,6\n3,7\n")
    with pytest.raises(DataError, match="time_column=False"):  # small numbers are neither years nor Unix times
        load_series(steps)
    numbered = quiet_load(steps, time_column=False, target="v")
    assert isinstance(numbered.index, pd.RangeIndex) and numbered.target.tolist() == [5, 6, 7]
    assert reload_series(numbered.spec).target.tolist() == [5, 6, 7]


def test_irregular_times_have_no_frequency_and_a_note(tmp_path):
    data = quiet_load(write(tmp_path / "a.csv", "date,v\n2020-01-01,1\n2020-01-02,2\n2020-01-07,3\n2020-01-08,4\n"))
    assert data.frequency is None
    assert any("irregular" in n for n in data.notes)


def test_detect_frequency():
    assert detect_frequency(pd.date_range("2020", periods=5, freq="W-SUN")) == "W-SUN"
    assert detect_frequency(pd.RangeIndex(5)) is None
    assert detect_frequency(pd.date_range("2020", periods=2, freq="D")) is None


# --------------------------------------------------------------------------- built-ins


def test_sunspots():
    data = quiet_load("sunspots")
    assert data.values.shape == (309, 1) and data.columns == ["sunspots"]
    assert data.frequency == "YS-JAN"
    assert data.index[0] == pd.Timestamp("1700-01-01") and data.index[-1] == pd.Timestamp("2008-01-01")
    assert not np.isnan(data.values).any() and data.target[0] == 5.0


def test_co2_monthly_by_default_and_weekly_on_request():
    data = quiet_load("co2")  # the 59 known gaps are repaired without a warning, but noted
    assert data.frequency == "MS" and data.columns == ["co2"] and data.spec["resample"] == "MS"
    assert data.values.shape == (526, 1) and not np.isnan(data.values).any()
    assert any("59 in 'co2'" in n for n in data.notes)
    assert 310 < data.target.min() < data.target.max() < 380
    weekly = quiet_load("co2", resample=False)
    assert weekly.values.shape == (2284, 1) and weekly.frequency == "W-SAT" and not np.isnan(weekly.values).any()


def test_unknown_builtin_lists_the_builtins():
    with pytest.raises(DataError) as err:
        load_series("sunspot")
    assert all(name in str(err.value) for name in BUILTIN_SERIES) and ".csv" in str(err.value)


# --------------------------------------------------------------------------- repairs


def test_missing_values_are_interpolated_with_a_count(tmp_path):
    text = "date,y,x\n2020-01-01,,5\n2020-01-02,2,\n2020-01-03,NaN,7\n2020-01-04,4,8\n2020-01-05,,9\n"
    with pytest.warns(UserWarning, match=r"3 in 'y', 1 in 'x'"):
        data = load_series(write(tmp_path / "m.csv", text), target="y", features="x")
    assert data.columns == ["y", "x"]
    np.testing.assert_allclose(data.target, [2, 2, 3, 4, 4])  # linear inside, nearest at the edges
    np.testing.assert_allclose(data.values[:, 1], [5, 6, 7, 8, 9])
    assert any("3 in 'y'" in n for n in data.notes)


def test_entirely_missing_column_is_an_error(tmp_path):
    with pytest.raises(DataError, match="'y' has no values"):
        load_series(write(tmp_path / "m.csv", "date,y\n2020-01-01,\n2020-01-02,\n"))


def test_duplicates_are_averaged_and_unsorted_rows_sorted(tmp_path):
    text = "date,v\n2020-01-03,3\n2020-01-01,1\n2020-01-02,2\n2020-01-02,4\n2020-01-04,5\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_series(write(tmp_path / "d.csv", text))
    messages = " | ".join(str(w.message) for w in caught)
    assert "sorted" in messages and "averaged 1 row" in messages
    assert data.target.tolist() == [1, 3, 3, 5] and data.frequency == "D"
    assert len(data.notes) == 2


def test_resample_means_and_fills_empty_bins(tmp_path):
    text = "date,v\n2020-01-01,1\n2020-01-02,3\n2020-03-05,10\n"
    data = quiet_load(write(tmp_path / "r.csv", text), resample="MS")
    assert data.frequency == "MS"
    # linear in time: Feb 1 is day 31 of the 60 between Jan 1 (mean 2) and Mar 1 (10)
    np.testing.assert_allclose(data.target, [2, 2 + 8 * 31 / 60, 10], rtol=1e-6)
    assert any("1 empty bin" in n for n in data.notes)
    with pytest.raises(DataError, match="resampling frequency"):
        load_series(write(tmp_path / "r.csv", text), resample="fortnightly")


def test_decimal_comma_with_semicolons(tmp_path):
    data = quiet_load(write(tmp_path / "eu.csv", "date;v\n2020-01-01;1,5\n2020-01-02;2,25\n2020-01-03;3\n"))
    assert data.target.tolist() == [1.5, 2.25, 3.0]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name,value,hint", [("bad.csv", "abc", ""), ("bad.csv", '"1,234"', "thousands separator"),
                                             ("bad.tsv", "12,5", "decimal comma")])
def test_non_numeric_value_names_column_line_and_value(tmp_path, name, value, hint):
    sep = "\t" if name.endswith(".tsv") else ","
    text = f"date{sep}v\n2020-01-01{sep}1.5\n\n2020-01-02{sep}{value}\n"  # line 3 is blank
    with pytest.raises(DataError) as err:
        load_series(write(tmp_path / name, text))
    message = str(err.value)
    assert "'v'" in message and "line 4" in message and value.strip('"').split(",")[0] in message
    assert hint in message


def test_unparseable_time_names_line_and_value(tmp_path):
    with pytest.raises(DataError, match=r"'yesterday' at line 3"):
        load_series(write(tmp_path / "t.csv", "date,v\n2020-01-01,1\nyesterday,2\n"))
    with pytest.raises(DataError, match="line 2"):
        load_series(write(tmp_path / "t2.csv", "date,v\n,1\n2020-01-02,2\n"))


def test_target_and_column_errors(tmp_path):
    path = write(tmp_path / "multi.csv", "date,a,b,label\n2020-01-01,1,2,x\n2020-01-02,3,4,y\n")
    with pytest.raises(DataError) as err:
        load_series(path)
    assert "['a', 'b']" in str(err.value) and "--target" in str(err.value)
    with pytest.raises(DataError, match=r"no feature column 'c'.*\['date', 'a', 'b', 'label'\]"):
        load_series(path, target="a", features=["c"])
    with pytest.raises(DataError, match="no target column 'z'"):
        load_series(path, target="z")
    with pytest.raises(DataError, match="no time column 'when'"):
        load_series(path, time_column="when", target="a")
    data = quiet_load(path, target="B", features="a")  # names match case-insensitively
    assert data.columns == ["b", "a"] and data.target.tolist() == [2, 4]


@pytest.mark.parametrize("content,match", [
    ("", "is empty"),
    ("date,v\n", "no rows"),
    ("date,v\n\n\n", "no rows"),
    (b"PK\x03\x04\x00\x00binary", "binary"),
    (b"date,v\n2020-01-01,\xe9\n", "UTF-8"),
])
def test_unreadable_files(tmp_path, content, match):
    with pytest.raises(DataError, match=match):
        load_series(write(tmp_path / "x.csv", content))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_series(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a folder"):
        load_series(tmp_path)
    with pytest.raises(DataError, match="Received int"):
        load_series(3)
    with pytest.raises(DataError, match="line 3"):  # a field too many (an unquoted decimal comma)
        load_series(write(tmp_path / "c.csv", "date,v\n2020-01-01,1\n2020-01-02,12,5\n"))


# --------------------------------------------------------------------------- in memory


def test_arrays_and_pandas_objects():
    one = quiet_load(np.arange(6))
    assert one.columns == ["y"] and isinstance(one.index, pd.RangeIndex) and one.values.dtype == np.float32
    two = quiet_load(np.arange(12.0).reshape(6, 2))
    assert two.columns == ["y", "x1"] and two.n_features == 2 and two.target.tolist() == [0, 2, 4, 6, 8, 10]
    with pytest.raises(DataError, match="1-D"):
        load_series(np.zeros((2, 2, 2)))
    with pytest.warns(UserWarning, match="1 in 'y'"):
        assert load_series(np.array([1.0, np.nan, 3.0])).target.tolist() == [1, 2, 3]
    index = pd.date_range("2020-01-01", periods=5, freq="D")
    series = quiet_load(pd.Series(np.arange(5.0), index=index, name="sales"))
    assert series.columns == ["sales"] and series.frequency == "D" and series.index.equals(index.rename("time"))
    frame = quiet_load(pd.DataFrame({"date": index.astype(str), "y": np.arange(5.0), "x": np.ones(5)}),
                       features=["x"], target="y")
    assert frame.frequency == "D" and frame.columns == ["y", "x"]
    assert load_series(frame) is frame
    assert frame.to_frame().shape == (5, 2) and list(frame.to_frame().columns) == ["y", "x"]


# --------------------------------------------------------------------------- splits, lengths, reload


def test_split_series():
    data = quiet_load(np.arange(10.0))
    train, test = split_series(data, 0.2)
    assert len(train) == 8 and test.target.tolist() == [8, 9]
    train, test = split_series(data, 3)
    assert len(train) == 7 and len(test) == 3 and test.index[0] == 7
    for bad in (0, 10, 0.0, 1.0, "x", True):
        with pytest.raises(DataError):
            split_series(data, bad)
    assert quiet_load("sunspots").slice(0, 5).frequency == "YS-JAN"


def test_min_length_error_wording():
    error = min_length_error(40, 12, 30, "x")
    assert isinstance(error, DataError)
    assert str(error) == ("The series 'x' has 40 points; at least window + horizon = 12 + 30 = 42 are needed. "
                          "Use a smaller --window/--horizon or more data.")
    assert "(+ 5 for the test split)" in str(min_length_error(40, 12, 30, "x", 5, "for the test split"))


def test_reload_via_spec(tmp_path):
    path = write(tmp_path / "sales.csv", "Date,a,b\n" + "".join(f"2020-01-{d:02d},{d},{-d}\n" for d in range(1, 9)))
    data = quiet_load(path, target="a", features="b", resample="2D")
    spec = json.loads(json.dumps(data.spec))
    again = reload_series(spec)
    np.testing.assert_array_equal(again.values, data.values)
    assert again.index.equals(data.index) and again.columns == data.columns and again.frequency == data.frequency
    co2 = reload_series(json.loads(json.dumps(quiet_load("co2").spec)))
    assert co2.frequency == "MS" and len(co2) == 526
    with pytest.raises(DataError, match="in memory"):
        reload_series(quiet_load(np.arange(5.0)).spec)


@pytest.mark.parametrize("name, n, frequency, first", [
    ("nile", 100, "YS-JAN", "1871-01-01"), ("elnino", 732, "MS", "1950-01-01"),
    ("realgdp", 203, "QS-JAN", "1959-01-01"), ("cpi", 203, "QS-JAN", "1959-01-01"), ("unemp", 203, "QS-JAN", "1959-01-01"),
])
def test_more_builtin_series(name, n, frequency, first):
    data = load_series(name)
    assert len(data) == n and data.frequency == frequency and data.columns == [name]
    assert data.index[0] == pd.Timestamp(first) and np.isfinite(data.values).all()
    assert reload_series(data.spec).values.tolist() == data.values.tolist()
