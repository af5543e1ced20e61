"""Rolling-origin backtest: how prophet would have done on this series against simple baselines.

At each origin (the last ``ORIGINS`` cut-offs, one test block apart: 24 h for hourly series,
7 days for daily ones) the models see only the history before it and forecast the block after
it; the errors over all blocks (gaps left out) give MAE and MAPE per model (Hyndman and
Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., §5.10 time series
cross-validation). The baselines:

- ``naive``: the last value seen ("same as now");
- ``seasonal_naive``: the value one season before the forecast time (same hour yesterday for
  hourly series, same day last week for daily ones), the last value when that bucket is a gap;
- ``mean``: the mean of the history seen (FPP §5.2 "mean method"). On white noise a mean
  forecast beats both naive ones (their errors add two noises), so without it a model that
  learnt nothing would look skilful there.

``skill = 1 − MAE(prophet) / MAE(best baseline)``. The forecast beats its baseline when the
skill is at least ``FORECAST_MIN_SKILL`` (default 0.1, 10% better): on white noise prophet's
skill against the mean scatters a few hundredths around 0, so ``skill > 0`` alone would call a
forecast of noise skilful about half the time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .model import DAILY, HOURLY, MIN_POINTS, STEP, History, Skip, point_forecast

ORIGINS = 3
BLOCK = {HOURLY: 24, DAILY: 7}
SEASON = {HOURLY: timedelta(days=1), DAILY: timedelta(days=7)}
BASELINES = ("naive", "seasonal_naive", "mean")


def _scores(errors: list[tuple[float, float]]) -> dict[str, float | None]:
    """MAE and MAPE (%) of (actual, forecast) pairs; MAPE leaves out actual values of 0."""
    if not errors:
        return {"mae": None, "mape": None}
    mae = sum(abs(a - f) for a, f in errors) / len(errors)
    relative = [abs(a - f) / abs(a) for a, f in errors if a != 0]
    mape = 100 * sum(relative) / len(relative) if relative else None
    return {"mae": round(float(mae), 4), "mape": None if mape is None else round(float(mape), 3)}


def beats(skill: float | None, min_skill: float) -> bool:
    return skill is not None and skill >= min_skill


def backtest(history: History, granularity: str, origins: int = ORIGINS) -> dict[str, Any]:
    """MAE and MAPE of prophet and of each baseline, and the skill; ``origins`` is how many
    origins had enough history before them (0: nothing could be scored, skill None)."""
    block = BLOCK[granularity]
    season = int(SEASON[granularity] / STEP[granularity])
    pairs: dict[str, list[tuple[float, float]]] = {m: [] for m in ("prophet", *BASELINES)}
    used = 0
    for k in range(origins, 0, -1):
        cut = len(history) - k * block
        train, test = history[:cut], history[cut : cut + block]
        seen = [v for _t, v in train if v is not None]
        if len(seen) < MIN_POINTS[granularity] or not any(v is not None for _t, v in test):
            continue
        try:
            predicted = point_forecast(train, granularity, len(test))
        except Skip:
            continue
        used += 1
        last, mean = seen[-1], sum(seen) / len(seen)
        values = [v for _t, v in history]
        for i, (_t, actual) in enumerate(test):
            if actual is None:
                continue
            back = cut + i - season
            seasonal = values[back] if 0 <= back < cut and values[back] is not None else last
            pairs["prophet"].append((actual, predicted[i]))
            pairs["naive"].append((actual, last))
            pairs["seasonal_naive"].append((actual, seasonal))
            pairs["mean"].append((actual, mean))
    out: dict[str, Any] = {name: _scores(p) for name, p in pairs.items()}
    out["origins"] = used
    out["block"] = block
    out["points"] = len(pairs["prophet"])
    best = min(
        (name for name in BASELINES if out[name]["mae"] is not None),
        key=lambda name: out[name]["mae"],
        default=None,
    )
    out["baseline"] = best
    skill = None
    if best is not None and out["prophet"]["mae"] is not None:
        if out[best]["mae"] > 0:
            skill = round(1 - out["prophet"]["mae"] / out[best]["mae"], 4)
        else:  # a baseline that was exact cannot be beaten
            skill = 0.0 if out["prophet"]["mae"] == 0 else -1.0
    out["skill"] = skill
    return out
