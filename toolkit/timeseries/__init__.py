"""Time series: forecasting with baselines and backtests, and anomaly detection."""
