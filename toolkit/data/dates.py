"""Generated date pairs: human-written dates and their ISO forms, the date translator's data.

>>> inputs, targets = generate_dates(3, seed=0)     # e.g. ['Sunday, 22 November 2026', ...], ['2026-11-22', ...]
>>> heldout_dates(2000, exclude=inputs)            # none of whose (normalised) inputs are in ``exclude``
"""

from __future__ import annotations

import datetime as _dt
import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np

__all__ = ["DATE_FORMATS", "FIRST_DATE", "LAST_DATE", "format_date", "generate_dates", "heldout_dates",
           "normalize_text"]

FIRST_DATE = _dt.date(1950, 1, 1)
LAST_DATE = _dt.date(2049, 12, 31)
PIVOT = 50  # two-digit years: 00-49 -> 2000-2049, 50-99 -> 1950-1999

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _mon(d: _dt.date, rng: random.Random) -> str:
    if d.month == 9 and rng.random() < 0.3:
        return "Sept"
    return MONTHS[d.month - 1][:3]


def _day(d: _dt.date, rng: random.Random, zero: float = 0.3) -> str:
    return f"{d.day:02d}" if rng.random() < zero else str(d.day)


def _num_month(d: _dt.date, rng: random.Random, zero: float = 0.5) -> str:
    return f"{d.month:02d}" if rng.random() < zero else str(d.month)


def _month(d: _dt.date) -> str:
    return MONTHS[d.month - 1]


def _weekday(d: _dt.date) -> str:
    return WEEKDAYS[d.weekday()]


# name -> (writer(date, rng) -> text, uses a two-digit year). Every format is unambiguous: the only
# numeric day/month order with slashes is the US one (month/day/year).
_FORMATS: dict[str, tuple[Callable[[_dt.date, random.Random], str], bool]] = {
    "d_mon_yyyy": (lambda d, r: f"{_day(d, r)} {_mon(d, r)} {d.year}", False),  # 22 Nov 2026
    "month_dth_yyyy": (lambda d, r: f"{_month(d)} {_ordinal(d.day)}, {d.year}", False),  # November 22nd, 2026
    "us_short": (lambda d, r: f"{_num_month(d, r)}/{_day(d, r, 0.5)}/{d.year % 100:02d}", True),  # 11/22/26
    "weekday_d_month_yyyy": (lambda d, r: f"{_weekday(d)}, {d.day} {_month(d)} {d.year}", False),
    "mon_d_yyyy": (lambda d, r: f"{_mon(d, r)} {d.day}, {d.year}", False),  # Nov 22, 2026
    "d_month_yyyy": (lambda d, r: f"{_day(d, r, 0.2)} {_month(d)} {d.year}", False),  # 22 November 2026
    "iso": (lambda d, r: d.isoformat(), False),  # 2026-11-22
    "dotted": (lambda d, r: f"{_day(d, r, 0.6)}.{_num_month(d, r, 0.7)}.{d.year}", False),  # 22.11.2026
    "wkd_d_mon_yyyy": (lambda d, r: f"{_weekday(d)[:3]} {d.day} {_mon(d, r)} {d.year}", False),  # Sun 22 Nov 2026
    "the_dth_of_month_yyyy": (lambda d, r: f"the {_ordinal(d.day)} of {_month(d)} {d.year}", False),
    "month_d_yyyy": (lambda d, r: f"{_month(d)} {d.day}, {d.year}", False),  # November 22, 2026
    "us_long": (lambda d, r: f"{_num_month(d, r)}/{_day(d, r, 0.5)}/{d.year}", False),  # 11/22/2026
    "weekday_month_d_yyyy": (lambda d, r: f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}", False),
    "dth_month_yyyy": (lambda d, r: f"{_ordinal(d.day)} {_month(d)} {d.year}", False),  # 22nd November 2026
    "d_mon_yyyy_dashed": (lambda d, r: f"{_day(d, r)}-{_mon(d, r)}-{d.year}", False),  # 22-Nov-2026
    "yyyy_mm_dd_slashed": (lambda d, r: f"{d.year}/{d.month:02d}/{d.day:02d}", False),  # 2026/11/22
}
DATE_FORMATS: tuple[str, ...] = tuple(_FORMATS)
CASES = ("as_written", "lower", "upper")
_CASE_WEIGHTS = (0.5, 0.3, 0.2)


def _two_digit_year_ok(d: _dt.date) -> bool:
    return 1950 <= d.year <= 2049


def format_date(day: _dt.date, style: str, case: str = "as_written", seed: int = 0) -> str:
    """Write ``day`` in one of :data:`DATE_FORMATS`; ``case`` is ``as_written``, ``lower`` or ``upper``.

    Formats with a choice (zero-padded day or month, "Sep" or "Sept") draw it from ``seed``.
    """
    if style not in _FORMATS:
        raise ValueError(f"Unknown date format {style!r}. Valid formats: {list(DATE_FORMATS)}.")
    if case not in CASES:
        raise ValueError(f"Unknown case {case!r}. Valid cases: {list(CASES)}.")
    writer, two_digit = _FORMATS[style]
    if two_digit and not _two_digit_year_ok(day):
        raise ValueError(f"{style!r} writes two-digit years, which stand for 1950-2049 only. Received {day}.")
    text = writer(day, random.Random(seed))
    return text.lower() if case == "lower" else text.upper() if case == "upper" else text


def _date_stream(seed: int, start: _dt.date, end: _dt.date, formats: Sequence[str]) -> Iterator[tuple[str, str]]:
    rng = random.Random(seed)
    first, last = start.toordinal(), end.toordinal()
    wide = [f for f in formats if not _FORMATS[f][1]] or None
    while True:
        day = _dt.date.fromordinal(rng.randint(first, last))
        style = rng.choice(formats)
        if _FORMATS[style][1] and not _two_digit_year_ok(day):
            if wide is None:
                continue
            style = rng.choice(wide)
        text = _FORMATS[style][0](day, rng)
        case = rng.choices(CASES, _CASE_WEIGHTS)[0]
        text = text.lower() if case == "lower" else text.upper() if case == "upper" else text
        yield text, day.isoformat()


def _check_range(start: _dt.date, end: _dt.date, formats: Sequence[str] | None) -> tuple[str, ...]:
    if not (isinstance(start, _dt.date) and isinstance(end, _dt.date)) or start > end:
        raise ValueError(f"Expected dates start <= end. Received start={start!r}, end={end!r}.")
    formats = tuple(DATE_FORMATS if formats is None else formats)
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown or not formats:
        raise ValueError(f"Unknown date formats {unknown or formats}. Valid formats: {list(DATE_FORMATS)}.")
    return formats


def generate_dates(n: int, seed: int = 0, start: _dt.date = FIRST_DATE, end: _dt.date = LAST_DATE,
                   formats: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``n`` random dates between ``start`` and ``end`` written by humans, and their ISO forms.

    Returns ``(inputs, targets)``: e.g. ``"Sunday, 22 November 2026"`` and ``"2026-11-22"``. Each
    date is written in a random one of :data:`DATE_FORMATS` (default: all), in a random case (as
    written 50%, lower 30%, upper 20%). The same ``seed`` gives the same lists.

    Two-digit years (``us_short``: "11/22/26", US month/day/year) pivot at 50: 00-49 are
    2000-2049 and 50-99 are 1950-1999; dates outside 1950-2049 are written in another format.
    No format writes day/month/year with slashes, which would be ambiguous with the US order.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0. Received {n!r}.")
    formats = _check_range(start, end, formats)
    stream = _date_stream(int(seed), start, end, formats)
    pairs = [next(stream) for _ in range(int(n))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def heldout_dates(n: int = 2000, seed: int = 2, exclude: Any = (), start: _dt.date = FIRST_DATE,
                  end: _dt.date = LAST_DATE) -> tuple[list[str], list[str]]:
    """``n`` generated dates none of whose inputs occur in ``exclude`` (e.g. the training inputs).

    Inputs are compared after :func:`normalize_text` (lower-cased, whitespace collapsed), since
    that is what the model sees: "22 NOV 2026" counts as seen when "22 nov 2026" was trained on.
    """
    seen = {normalize_text(t) for t in exclude}
    stream = _date_stream(int(seed), start, end, _check_range(start, end, None))
    inputs, targets = [], []
    while len(inputs) < n:
        text, iso = next(stream)
        if normalize_text(text) not in seen:
            inputs.append(text)
            targets.append(iso)
    return inputs, targets


def normalize_text(text: str) -> str:
    """What the model reads: whitespace runs collapsed to one space, stripped, lower-cased."""
    return " ".join(text.split()).lower()
