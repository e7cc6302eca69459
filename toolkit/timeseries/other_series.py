"""What a forecaster offers for series other than its own (the demo's uploads): the baselines'
forecasts of them, how to read their file like its training data, and its columns put on them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..data.series import SeriesData
from ..errors import DataError
from .baselines import baseline_forecasts


class OtherSeries:
    """Mixin of :class:`~toolkit.timeseries.Forecaster`: reads ``config``, ``season_``,
    ``columns_``, ``frequency_`` and ``data_spec_``."""

    def baseline_forecasts(self, history: Any, horizon: int | None = None) -> dict[str, np.ndarray]:
        """The naive, seasonal naive (at this model's season) and drift forecasts of ``history``'s
        target (a SeriesData or a 1-D array) for ``horizon`` steps (default: the model's)."""
        y = history.target if isinstance(history, SeriesData) else np.asarray(history, float)
        return baseline_forecasts(y, horizon or self.config.horizon, self.season_)

    def reading_plan(self, series: SeriesData) -> tuple[list[str], str | None]:
        """How to read the file behind ``series`` again for this model: (the feature columns to add,
        when its target is this model's but its columns are not; the training data's resampling rule,
        when it is dated at another frequency). ([], None): it reads as it is."""
        import pandas as pd

        self._check_fitted()
        columns = list(series.columns)
        same = [c.lower() for c in self.columns_] == [c.lower() for c in columns]
        features = list(self.columns_[1:]) if not same and self.columns_[0].lower() == columns[0].lower() else []
        rule = (self.data_spec_ or {}).get("resample")
        dated = isinstance(series.index, pd.DatetimeIndex)
        resample = rule if isinstance(rule, str) and self.frequency_ and series.frequency != self.frequency_ and dated \
            else None
        return features, resample

    def adapt(self, series: SeriesData, name: str = "this") -> tuple[SeriesData, list[str]]:
        """``series`` under this model's column names (it checks names), with a note when its columns
        are others; a DataError when the number of columns differs. ``name`` names the model in messages."""
        self._check_fitted()
        columns, notes = list(series.columns), []
        if [c.lower() for c in self.columns_] != [c.lower() for c in columns]:
            if len(self.columns_) != len(columns):
                raise DataError(f"The {name} model reads the columns {self.columns_}; this series has {columns}. "
                                "Choose another model or train a quick model on this series.")
            notes.append(f"The {name} model was trained on {self.columns_}; it is applied to {columns} as you "
                         "asked. Its scaling was fitted on its own series, so expect poor forecasts: a quick "
                         "model trained on this series is the fair comparison.")
        if columns != list(self.columns_):
            series = dataclasses.replace(series, columns=list(self.columns_))
        return series, notes
