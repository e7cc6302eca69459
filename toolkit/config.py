"""One home for what configs and training recipes declare, and for checking config values.

Every task's config is a frozen dataclass whose fields are its training arguments: declare one
with :func:`setting`, which records the help text (and, where they make sense, the CLI choices,
a search range for tuning, another flag name, and the CLI word that stands for ``None``) in the
field's ``metadata``. ``toolkit train <task>`` builds its arguments from these fields and from
the task's ``recipe_options`` (:class:`RecipeOption`: what the recipe needs beyond the config,
such as the data source or the share held out for testing).

The ``check_*`` helpers raise the ``ValueError`` every config's ``__post_init__`` raises, with
one wording: ``"epochs must be > 0. Received 0."``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from typing import Any, Callable, Iterable


def setting(default: Any = dataclasses.MISSING, help: str = "", *, choices: Iterable | None = None,
            tune: tuple | None = None, flags: tuple[str, ...] | None = None, none: str | None = None,
            cli: bool = True, **field_kwargs: Any) -> Any:
    """A config field with its help text (``metadata["help"]``) and what the CLI and tuning read.

    choices: the values the CLI accepts. tune: (low, high) search range for tuning.
    flags: the CLI's option strings (default ``--field-name``; a bool field that defaults to True
    gets ``--no-field-name``). none: the CLI word that stands for ``None`` (e.g. ``"auto"``).
    cli: False keeps the field out of ``toolkit train``.
    """
    metadata = dict(field_kwargs.pop("metadata", {}) or {})
    metadata["help"] = help
    for key, value in (("choices", tuple(choices) if choices is not None else None), ("tune", tune),
                       ("flags", flags), ("none", none)):
        if value is not None:
            metadata[key] = value
    if not cli:
        metadata["cli"] = False
    return dataclasses.field(default=default, metadata=metadata, **field_kwargs)


#: Seeds everywhere (configs, CLI options, app sliders) are whole numbers in [0, SEED_MAX]: what
#: numpy's and Keras's seeding accept.
SEED_MAX = 2**32 - 1


class Bounded:
    """A number type for the command line (``type=`` of an argparse option): a whole number
    (``kind=int``) or a finite real (``kind=float``) in [low, high] (open ends where asked).

    A value out of range, NaN, infinity or not a number at all is refused with what was
    expected and what was received (argparse prints it after the option's name).
    """

    def __init__(self, kind: type = int, low: float | None = None, high: float | None = None, *,
                 low_closed: bool = True, high_closed: bool = True, hint: str = ""):
        self.kind, self.low, self.high = kind, low, high
        self.low_closed, self.high_closed, self.hint = low_closed, high_closed, hint
        self.__name__ = self.description  # argparse names the type in some messages

    @property
    def description(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"{what} in {'[' if self.low_closed else '('}{low}, {high}{']' if self.high_closed else ')'}"
        if self.low is not None:
            return f"{what} {'>=' if self.low_closed else '>'} {low}"
        if self.high is not None:
            return f"{what} {'<=' if self.high_closed else '<'} {high}"
        return what

    def __call__(self, text: Any) -> int | float:
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            value = None
        ok = value is not None and math.isfinite(value)
        if ok and self.low is not None:
            ok = value >= self.low if self.low_closed else value > self.low
        if ok and self.high is not None:
            ok = value <= self.high if self.high_closed else value < self.high
        if not ok:
            raise argparse.ArgumentTypeError(
                f"expected {self.description}. Received {str(text)!r}.{' ' + self.hint if self.hint else ''}")
        return value

    def __repr__(self) -> str:
        return f"Bounded({self.description})"


def _number(value: float | None) -> str:
    return "" if value is None else str(int(value)) if float(value).is_integer() else f"{value:g}"


#: A seed option: ``--seed 0`` ... ``--seed 4294967295``.
SEED = Bounded(int, 0, SEED_MAX, hint="Pick any whole number from 0 (the same seed gives the same result).")
#: A count: 1, 2, 3, ...
COUNT = Bounded(int, 1)
#: A share held out: strictly between 0 and 1.
FRACTION = Bounded(float, 0, 1, low_closed=False, high_closed=False, hint="E.g. 0.2 holds out a fifth.")


def check_seed(config: Any, *names: str) -> None:
    """Each named field is None or a whole number in [0, SEED_MAX] (numpy ints become ints)."""
    for name in names:
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= SEED_MAX:
            raise ValueError(f"{name} must be a whole number in [0, {SEED_MAX}]. Received {value!r}.")
        object.__setattr__(config, name, int(value))


@dataclasses.dataclass(frozen=True)
class RecipeOption:
    """An argument of a task's training recipe that is not a config field (the CLI adds
    ``--name-with-dashes`` for it; ``train_recipe(..., name=value)`` takes it in Python)."""

    name: str
    help: str
    default: Any = None
    type: Callable | None = str
    choices: tuple | None = None
    nargs: str | int | None = None
    required: bool = False
    flag: bool = False  # a switch: --name sets True

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def out_option() -> RecipeOption:
    return RecipeOption("out", "folder to save the model to", required=True)


def verbose_option(default: int) -> RecipeOption:
    return RecipeOption("verbose", "Keras fit verbosity", default, int, choices=(0, 1, 2))


def test_size_option(help: str = "share of the data held out for testing") -> RecipeOption:
    return RecipeOption("test_size", help, 0.2, FRACTION)


#: Where a series comes from (forecasters and anomaly detectors).
SERIES_OPTIONS = (
    RecipeOption("data", "a CSV/TSV file with a time column, or a built-in series: sunspots, co2 "
                 "(statsmodels, offline)", required=True),
    RecipeOption("time_column", "column with the timestamps (default: time/date/ts/... or the first column; "
                 "'none' for plain steps)"),
    RecipeOption("target", "column to forecast (default: the only numeric column)"),
    RecipeOption("features", "comma-separated extra input columns (default: none)"),
    RecipeOption("resample", "pandas frequency to resample to by mean, e.g. MS, W, D, h"),
)


def series_source(options: dict) -> dict:
    """The keyword arguments of the series loaders, from the ``SERIES_OPTIONS`` values."""
    time_column = options.get("time_column")
    if isinstance(time_column, str) and time_column.lower() == "none":
        time_column = False
    features = options.get("features")
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",") if f.strip()] or None
    return dict(time_column=time_column, target=options.get("target"), features=features,
                resample=options.get("resample"))


# ---------------------------------------------------------------------------- checks


def check_positive(config: Any, *names: str) -> None:
    """Each named field is > 0."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0. Received {value!r}.")


def check_non_negative(config: Any, *names: str) -> None:
    """Each named field is >= 0."""
    for name in names:
        value = getattr(config, name)
        if not value >= 0:  # NaN too
            raise ValueError(f"{name} must be >= 0. Received {value!r}.")


def check_range(name: str, value: Any, low: float, high: float, *, low_closed: bool = True,
                high_closed: bool = True) -> None:
    """``low <= value <= high`` (open ends where asked), e.g. ``dropout must be in [0, 1).``"""
    above = low <= value if low_closed else low < value
    below = value <= high if high_closed else value < high
    if not (above and below):
        span = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
        raise ValueError(f"{name} must be in {span}. Received {value!r}.")


def check_fraction(config: Any, *names: str, low_closed: bool = False, high_closed: bool = False) -> None:
    """Each named field is a share in (0, 1) (ends closed where asked)."""
    for name in names:
        check_range(name, getattr(config, name), 0, 1, low_closed=low_closed, high_closed=high_closed)


def check_choice(name: str, value: Any, choices: Iterable, what: str | None = None) -> None:
    """``value`` is one of ``choices``: ``Unknown model 'arima'. Valid models: [...]``."""
    choices = list(choices)
    if value not in choices:
        what = what or name
        raise ValueError(f"Unknown {what} {value!r}. Valid {what}s: {choices}.")


def check_int(config: Any, *names: str, low: int = 1) -> None:
    """Each named field is an int (not a bool) >= ``low``; numpy ints become ints."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be an int. Received {value!r}.")
        if value < low:
            raise ValueError(f"{name} must be >= {low}. Received {value!r}.")
        object.__setattr__(config, name, int(value))


def check_number(config: Any, name: str, low: float, high: float, *, low_closed: bool = True,
                 high_closed: bool = True) -> None:
    """The field is a real number (not a bool) in the range; it becomes a float."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not (low <= value if low_closed else low < value) or not (value <= high if high_closed else value < high):
        span = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
        raise ValueError(f"{name} must be a number in {span}. Received {value!r}.")
    object.__setattr__(config, name, float(value))


def config_fields(config_class: type) -> dict[str, dataclasses.Field]:
    """The fields of a config dataclass, by name."""
    return {f.name: f for f in dataclasses.fields(config_class)}


def config_and_options(config_class: type, recipe_options: Iterable[RecipeOption], options: dict,
                       **fixed: Any) -> tuple[Any, dict]:
    """Split a recipe's keyword arguments into (config, recipe options with their defaults).

    Config fields given as ``None`` keep the config's default; ``fixed`` values win over both.
    An unknown name is a TypeError listing the valid ones.
    """
    fields = config_fields(config_class)
    declared = {o.name: o.default for o in recipe_options}
    unknown = sorted(set(options) - set(fields) - set(declared))
    if unknown:
        raise TypeError(f"Unknown training options {unknown}. Valid: config fields {sorted(fields)} and "
                        f"recipe options {sorted(declared)}.")
    values = {k: v for k, v in options.items() if k in fields and v is not None}
    config = config_class(**{**values, **fixed})
    check_seed(config, *(name for name in fields if name == "seed" or name.endswith("_seed")))
    extra = {**declared, **{k: v for k, v in options.items() if k in declared and v is not None}}
    return config, extra


def strategy_setting() -> Any:
    """The ``strategy`` field every config has: a ``tf.distribute.Strategy`` that training builds
    the model under (None: the default strategy); not saved in cards, not a CLI option."""
    return setting(None, "a tf.distribute.Strategy", compare=False, repr=False, cli=False,
                   metadata={"serialize": False})


def tunable_fields(config_class: type) -> dict[str, dataclasses.Field]:
    """The config's fields that declare a search range (``setting(..., tune=(low, high))``), by name:
    what ``toolkit tune`` searches (toolkit/tuning.py)."""
    return {f.name: f for f in dataclasses.fields(config_class) if "tune" in f.metadata}
