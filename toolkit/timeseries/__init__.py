"""Time series: forecasting with baselines and rolling-origin backtests, and anomaly detection."""

from .baselines import BASELINES, BacktestResult, backtest, baseline_forecast, detect_seasonality, forecast_metrics
from .forecaster import MODELS, Forecaster, ForecasterConfig, make_windows
from .anomaly import AnomalyDetector, AnomalyDetectorConfig, synthetic_sensor
from .lite import TFLiteAnomalyDetector, TFLiteForecaster

__all__ = [
    "AnomalyDetector",
    "AnomalyDetectorConfig",
    "BASELINES",
    "BacktestResult",
    "Forecaster",
    "ForecasterConfig",
    "MODELS",
    "TFLiteAnomalyDetector",
    "TFLiteForecaster",
    "backtest",
    "baseline_forecast",
    "detect_seasonality",
    "forecast_metrics",
    "make_windows",
    "synthetic_sensor",
]
