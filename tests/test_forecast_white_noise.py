"""White noise around 128 /min, just under the heart-rate alert threshold (130): a forecast can
see it crossing often, but prophet does no better than the mean of the history in the backtest,
so the run is marked as not beating its baseline and no predicted alert fires from it."""

from __future__ import annotations

import pytest

from fhir_api import json_io
from fhir_api.models import Resource
from forecasting.models import ForecastRun
from forecasting.services import run_forecast
from twins.models import Alert

from .forecast_support import HR, hourly, make_patient, store_readings, white_noise


@pytest.fixture
def noisy_patient(db, django_capture_on_commit_callbacks) -> str:
    patient = make_patient("Noise")
    with django_capture_on_commit_callbacks(execute=True):
        store_readings(patient, hourly(white_noise(128, 3), 10 * 24))
    return patient


def test_white_noise_does_not_beat_the_baseline_and_is_marked(noisy_patient):
    run = run_forecast(noisy_patient, HR)
    assert run.status == ForecastRun.DONE, run.reason
    assert run.skill is not None and run.skill < 0.1
    assert run.beats_baseline is False
    assert run.backtest["baseline"] == "mean"
    row = Resource.objects.get(resource_type="RiskAssessment", logical_id=run.risk_assessment_id)
    notes = " ".join(n["text"] for n in json_io.loads(row.content)["note"])
    assert "did NOT beat it" in notes and "no early warning" in notes


def test_no_predicted_alert_fires_from_it_however_likely_the_crossing(noisy_patient):
    run = run_forecast(noisy_patient, HR)
    # The noise alone takes some paths over 130 within 48 h: the chance is high ...
    assert run.direction == "above" and run.threshold == 130
    assert run.probability > 0.7
    # ... but a forecast that does not beat its baseline warns nobody.
    assert not Alert.objects.filter(patient_id=noisy_patient, predicted=True).exists()
