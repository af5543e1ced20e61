"""A forecast leaves the caller's random numbers alone: prophet samples from numpy's global
generator, which ``model.fit_predict`` seeds for its sampling only and then puts back, so code
that drew from it before a forecast draws the same numbers after it as without one, and the
same series still gives the same forecast every time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from forecasting.model import HOURLY, fit_predict

from .forecast_support import sine_trend_noise


def _history() -> list[tuple[datetime, float | None]]:
    shape = sine_trend_noise()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [(start + timedelta(hours=i), float(shape(i))) for i in range(96)]


def test_the_callers_random_numbers_are_the_same_with_a_forecast_in_between():
    history = _history()
    np.random.seed(4242)
    np.random.random(3)
    expected = np.random.random(5)

    np.random.seed(4242)
    np.random.random(3)
    first = fit_predict(history, HOURLY, 24, samples=50)
    assert np.array_equal(np.random.random(5), expected)

    # Seeded differently by the caller, the forecast is still the same.
    np.random.seed(1)
    second = fit_predict(history, HOURLY, 24, samples=50)
    assert second.points == first.points
    assert np.array_equal(second.samples, first.samples)
