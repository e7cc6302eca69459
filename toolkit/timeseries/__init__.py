"""Time series: forecasting with baselines and rolling-origin backtests, and anomaly detection."""

from .baselines import BASELINES, BacktestResult, backtest, baseline_forecast, detect_seasonality, forecast_metrics
from .forecaster import MODELS, Forecaster, ForecasterConfig, make_windows

__all__ = [
    "BASELINES",
    "BacktestResult",
    "Forecaster",
    "ForecasterConfig",
    "MODELS",
    "backtest",
    "baseline_forecast",
    "detect_seasonality",
    "forecast_metrics",
    "make_windows",
]
