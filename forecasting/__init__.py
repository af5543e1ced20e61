"""Prophet forecasts of each patient's vital signs, backtests and early warning."""
