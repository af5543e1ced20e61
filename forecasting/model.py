"""The forecasting model: prophet on one regular series, with its predictive samples.

A pure function of its input (no database), so ``bench/forecast.py`` times exactly what the
Celery task runs. Prophet (facebook.github.io/prophet, its bundled Stan model, fitted by MAP
optimisation) gets daily seasonality only when the series spans at least two days of hourly
data and weekly seasonality only when it spans two weeks; yearly seasonality never (a month or
a season of data cannot show it). Gaps (``None``) are left out of the fit, never interpolated.

The forecast's 80% and 95% intervals are quantiles of prophet's predictive sample paths (trend
uncertainty plus observation noise), the same paths ``forecasting.warning`` reads the chance of
crossing a threshold from.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

# prophet logs at import that plotly is missing (we draw no plots) and cmdstanpy logs every fit.
logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
logging.getLogger("prophet").setLevel(logging.WARNING)

HOURLY = "hour"
DAILY = "day"
STEP = {HOURLY: timedelta(hours=1), DAILY: timedelta(days=1)}
# Fewest buckets with data a forecast is fitted on: two days of hours, two weeks of days.
MIN_POINTS = {HOURLY: 48, DAILY: 14}
HORIZONS = {HOURLY: (24, 72), DAILY: (14, 14)}
DEFAULT_HORIZON = {HOURLY: 48, DAILY: 14}
DEFAULT_SAMPLES = 200
# Part of every run's digest: a new model version fits again what an old one fitted.
MODEL_VERSION = "prophet-1.5.0/1"
SEED = 20261127

History = list[tuple[datetime, float | None]]


class Skip(Exception):
    """The series cannot be forecast honestly; the message says why (stored with the run)."""


@dataclass
class Forecast:
    """``points``: one dict per future step (t, yhat, lo80, hi80, lo95, hi95); ``samples``: the
    predictive sample paths, shape (steps, samples); ``times``: the steps' instants."""

    points: list[dict[str, Any]]
    samples: np.ndarray
    times: list[datetime]
    fit_seconds: float
    seasonalities: list[str] = field(default_factory=list)


def observed(history: History) -> list[tuple[datetime, float]]:
    return [(t, v) for t, v in history if v is not None]


def seasonalities(history: History, granularity: str) -> list[str]:
    """The seasonal cycles the series' span supports (at least two full cycles of each)."""
    seen = observed(history)
    if not seen:
        return []
    span = seen[-1][0] - seen[0][0] + STEP[granularity]
    out = []
    if granularity == HOURLY and span >= timedelta(days=2):
        out.append("daily")
    if span >= timedelta(days=14):
        out.append("weekly")
    return out


def _naive(moment: datetime) -> datetime:
    """Prophet wants naive timestamps; all of ours are UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)


@contextmanager
def _no_pandas_notices():
    """prophet 1.5 calls pandas in ways pandas 3 announces it will drop (inplace=True)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword", module="prophet")
        yield


@contextmanager
def _seeded() -> Iterator[None]:
    """Prophet 1.5 draws its predictive samples from numpy's global generator (``np.random.normal``,
    ``laplace``, ``poisson``; it takes no generator of its own): that generator is seeded for the
    sampling, so the same data gives the same run, and its state is put back afterwards, so the
    caller's random numbers are the ones it would have drawn without a forecast in between."""
    saved = np.random.get_state()
    np.random.seed(SEED)
    try:
        yield
    finally:
        np.random.set_state(saved)


def _quiet() -> None:
    """cmdstanpy sets its logger to INFO with a handler of its own when first used."""
    logger = logging.getLogger("cmdstanpy")
    logger.setLevel(logging.WARNING)
    for handler in logger.handlers:
        handler.setLevel(logging.WARNING)


def _model(history: History, granularity: str, samples: int):
    import pandas as pd
    from prophet import Prophet

    _quiet()

    seen = observed(history)
    if len(seen) < MIN_POINTS[granularity]:
        unit = "hourly" if granularity == HOURLY else "daily"
        raise Skip(
            f"only {len(seen)} {unit} values with data (at least {MIN_POINTS[granularity]} needed)"
        )
    values = np.array([v for _t, v in seen], dtype=float)
    if not np.all(np.isfinite(values)):
        raise Skip("the series holds values that are not finite numbers")
    cycles = seasonalities(history, granularity)
    model = Prophet(
        daily_seasonality="daily" in cycles,
        weekly_seasonality="weekly" in cycles,
        yearly_seasonality=False,
        uncertainty_samples=samples,
    )
    frame = pd.DataFrame({"ds": [_naive(t) for t, _v in seen], "y": values})
    with _no_pandas_notices():
        model.fit(frame)
    _quiet()
    return model, cycles


def future_times(history: History, granularity: str, horizon: int) -> list[datetime]:
    last = history[-1][0]
    return [last + STEP[granularity] * (i + 1) for i in range(horizon)]


def check_horizon(granularity: str, horizon: int) -> None:
    low, high = HORIZONS[granularity]
    if not low <= horizon <= high:
        unit = "hours" if granularity == HOURLY else "days"
        raise ValueError(f"the horizon of a {granularity}ly forecast is {low}-{high} {unit}")


def fit_predict(
    history: History, granularity: str, horizon: int, *, samples: int = DEFAULT_SAMPLES
) -> Forecast:
    """Fit prophet on ``history`` (regular buckets, ``None`` for a gap) and forecast ``horizon``
    steps after its last bucket with ``samples`` predictive sample paths. Raises ``Skip``."""
    import pandas as pd

    check_horizon(granularity, horizon)
    if samples < 20:
        raise ValueError("at least 20 predictive samples are needed for a 95% interval")
    started = time.perf_counter()
    model, cycles = _model(history, granularity, samples)
    times = future_times(history, granularity, horizon)
    future = pd.DataFrame({"ds": [_naive(t) for t in times]})
    with _no_pandas_notices(), _seeded():
        paths = np.asarray(model.predictive_samples(future)["yhat"], dtype=float)
        model.uncertainty_samples = 0  # the expected value, without sampling a second time
        mean = np.asarray(model.predict(future)["yhat"], dtype=float)
    quantiles = np.quantile(paths, [0.025, 0.1, 0.9, 0.975], axis=1)
    elapsed = time.perf_counter() - started
    points = [
        {
            "t": t.isoformat().replace("+00:00", "Z"),
            "yhat": round(float(mean[i]), 3),
            "lo80": round(float(quantiles[1][i]), 3),
            "hi80": round(float(quantiles[2][i]), 3),
            "lo95": round(float(quantiles[0][i]), 3),
            "hi95": round(float(quantiles[3][i]), 3),
        }
        for i, t in enumerate(times)
    ]
    return Forecast(points, paths, times, round(elapsed, 4), cycles)


def point_forecast(history: History, granularity: str, steps: int) -> list[float]:
    """Prophet's expected values only (no uncertainty sampling): what the backtest scores."""
    import pandas as pd

    model, _cycles = _model(history, granularity, 0)
    times = future_times(history, granularity, steps)
    with _no_pandas_notices():
        predicted = model.predict(pd.DataFrame({"ds": [_naive(t) for t in times]}))
    return [float(v) for v in predicted["yhat"]]
