"""Series that cannot be forecast honestly are skipped, and the run stored with the reason:
too few hourly values, too few days of weight, no recent data. Gaps stay gaps (None) in the
series the model sees, and a reading the devices app rejected is in no series."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devices.models import DeadLetter
from forecasting.models import ForecastRun
from forecasting.services import run_forecast

from .forecast_support import HR, hourly, last_hour, make_patient, store_readings

WEIGHT = "29463-7"


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    def store(patient: str, readings: list[dict]):
        with django_capture_on_commit_callbacks(execute=True):
            return store_readings(patient, readings)

    return store


def test_too_few_hours_are_skipped_with_the_reason(db, commit):
    patient = make_patient()
    commit(patient, hourly(lambda i: 70 + i % 3, 20))
    run = run_forecast(patient, HR)
    assert run.status == ForecastRun.SKIPPED
    assert run.reason == "only 20 hourly values with data (at least 48 needed)"
    assert run.points == [] and run.risk_assessment_id == "" and run.n_points == 20


def test_too_few_days_of_weight_are_skipped_with_the_reason(db, commit):
    patient = make_patient()
    end = last_hour()
    readings = [
        {
            "type": "body_weight",
            "value": 70 + d / 10,
            "unit": "kg",
            "time": (end - timedelta(days=d)).isoformat(),
        }
        for d in range(5)
    ]
    commit(patient, readings)
    run = run_forecast(patient, WEIGHT)
    assert run.status == ForecastRun.SKIPPED and run.granularity == "day"
    assert run.reason == "only 5 daily values with data (at least 14 needed)"


def test_a_series_that_stopped_long_ago_is_skipped(db, commit):
    patient = make_patient()
    commit(patient, hourly(lambda i: 70 + i % 5, 72, end=last_hour() - timedelta(days=5)))
    run = run_forecast(patient, HR)
    assert run.status == ForecastRun.SKIPPED
    assert "older than the 48-hour horizon" in run.reason


def test_gaps_are_none_and_rejected_readings_are_in_no_series(db, commit):
    patient = make_patient()
    readings = hourly(lambda i: 70 + i % 4, 72, skip={10, 11, 12})
    readings[30]["value"] = 400  # implausible: the devices app rejects it
    result = commit(patient, readings)
    assert len(result.rejected) == 1 and DeadLetter.objects.count() == 1
    run = run_forecast(patient, HR)
    assert run.status == ForecastRun.DONE, run.reason
    values = [v for _t, v in run.history]
    assert len(values) == 72 and values[10:13] == [None, None, None]
    assert run.n_points == 68  # 72 hours, 3 without readings, 1 whose reading was rejected
    assert values[33] is None  # readings[30] is hour 33 (hours 10-12 have no reading)
    assert max(v for v in values if v is not None) < 75
