"""Weight and glucose are forecast as daily means 14 days ahead (weekly seasonality from two
weeks of data); forecast_patient forecasts every vital of the patient that has data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from forecasting.models import ForecastRun
from forecasting.services import forecast_patient

from .forecast_support import HR, hourly, last_hour, make_patient, sine_trend_noise, store_readings

WEIGHT = "29463-7"


@pytest.fixture
def patient(db, django_capture_on_commit_callbacks, settings) -> str:
    settings.FORECAST_ON_NEW_DATA = False
    patient = make_patient("Daily")
    noise = np.random.default_rng(5).normal(0, 0.2, 40)
    end = last_hour()
    # A morning weighing for 40 days (two missed), losing 0.1 kg a day.
    weights = [
        {
            "type": "body_weight",
            "value": round(76 + 0.1 * (39 - d) + noise[d], 2),
            "unit": "kg",
            "time": (end - timedelta(days=39 - d)).isoformat(),
        }
        for d in range(40)
        if d not in (20, 21)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        store_readings(patient, weights + hourly(sine_trend_noise(), 60))
    return patient


def test_forecast_patient_forecasts_each_vital_with_data(patient):
    runs = {run.code: run for run in forecast_patient(patient)}
    assert set(runs) == {HR, WEIGHT}
    weight = runs[WEIGHT]
    assert weight.status == ForecastRun.DONE, weight.reason
    assert weight.granularity == "day" and weight.horizon == 14 and len(weight.points) == 14
    days = [v for _t, v in weight.history]
    assert len(days) >= 39 and days.count(None) == 2  # the missed days are gaps
    assert "weekly" in weight.backtest["seasonalities"]
    # Still losing weight two weeks on: about 1.4 kg below the last day.
    assert weight.points[-1]["yhat"] < weight.points[0]["yhat"] - 0.8
    assert runs[HR].granularity == "hour"
    # Asked again with the same data: the same runs.
    assert {r.pk for r in forecast_patient(patient)} == {r.pk for r in runs.values()}
