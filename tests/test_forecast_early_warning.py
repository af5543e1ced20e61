"""A heart rate rising 0.7 /min per hour that reaches the alert threshold (above 130 /min) about
10 hours after its last reading: the forecast gives a high probability of crossing, near 10 h,
and opens a predicted alert on the twin (low severity, "Predicted: …", with its Flag); once the
clinician raises the patient's threshold, the next run no longer predicts it and resolves it."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from fhir_api import json_io
from fhir_api.models import Resource
from forecasting.models import ForecastRun
from forecasting.services import run_forecast
from twins import services as twin_services
from twins.models import Alert

from .forecast_support import HR, hourly, make_patient, store_readings

RISE = 0.7  # /min per hour
LAST = 123.0  # the last hour's mean: 130 is crossed (131 > 130) after 8/0.7 ≈ 11 h


@pytest.fixture
def rising_patient(db, django_capture_on_commit_callbacks) -> str:
    patient = make_patient("Rising")
    noise = np.random.default_rng(3).normal(0, 1, 96)
    with django_capture_on_commit_callbacks(execute=True):
        store_readings(patient, hourly(lambda i: LAST - (95 - i) * RISE + noise[i], 96))
    return patient


def test_a_series_crossing_in_about_ten_hours_gives_a_high_probability_near_then(
    rising_patient,
):
    run = run_forecast(rising_patient, HR)
    assert run.status == ForecastRun.DONE, run.reason
    assert run.beats_baseline, run.backtest
    assert (run.threshold, run.direction) == (130, "above")
    assert run.probability >= 0.9
    hours = (run.crossing_at - run.window_end).total_seconds() / 3600 + 1
    assert 6 <= hours <= 13, hours


def test_the_warning_opens_a_predicted_alert_of_low_severity_with_its_flag(rising_patient):
    run = run_forecast(rising_patient, HR)
    alert = Alert.objects.get(patient_id=rising_patient, predicted=True)
    assert alert.status == Alert.ACTIVE and alert.problem == "forecast:heart_rate"
    assert alert.severity == 1  # a real threshold alert is 2
    assert alert.summary.startswith("Predicted: Heart rate above 130")
    assert f"{run.probability:.0%}" in alert.summary
    flag = json_io.loads(
        Resource.objects.get(resource_type="Flag", logical_id=alert.flag_id).content
    )
    assert flag["status"] == "active" and flag["code"]["text"] == alert.summary
    # The twin's own rules, run again, leave a predicted alert alone.
    twin_services.refresh(rising_patient, now=run.window_end + timedelta(hours=2))
    alert.refresh_from_db()
    assert alert.status == Alert.ACTIVE


def test_a_later_run_that_no_longer_predicts_it_resolves_the_alert(rising_patient):
    run_forecast(rising_patient, HR)
    alert = Alert.objects.get(patient_id=rising_patient, predicted=True)
    # The clinician sets this patient's own heart-rate threshold: the forecast runs again.
    twin_services.update_settings(
        rising_patient,
        scale=1,
        on_oxygen=None,
        consciousness="",
        thresholds={"heart_rate": {"high": 180}},
    )
    later = run_forecast(rising_patient, HR)
    assert later.threshold == 180 and later.probability < 0.7
    alert.refresh_from_db()
    assert alert.status == Alert.RESOLVED
    flag = json_io.loads(
        Resource.objects.get(resource_type="Flag", logical_id=alert.flag_id).content
    )
    assert flag["status"] == "inactive"
    assert ForecastRun.objects.filter(patient_id=rising_patient).count() == 2
