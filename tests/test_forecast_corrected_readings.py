"""A clinician correcting a reading changes the forecast: an Observation of a vital deleted,
marked entered-in-error or given a corrected value leaves the next forecast's history (its
hour's mean is counted again from what is stored), and the twin's hourly aggregates, latest
value and baseline follow, so NEWS2 no longer reads it either."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fhir_api import json_io
from fhir_api import services as store
from fhir_api.models import Resource
from forecasting.services import run_forecast
from twins.models import PatientTwin, VitalHour

from .forecast_support import HR, hourly, last_hour, make_patient, sine_trend_noise, store_readings

HOURS = 96


@pytest.fixture
def patient(db, settings, django_capture_on_commit_callbacks) -> tuple[str, list[str]]:
    settings.FORECAST_ON_NEW_DATA = False
    patient = make_patient("Corrected")
    with django_capture_on_commit_callbacks(execute=True):
        ids = store_readings(patient, hourly(sine_trend_noise(), HOURS)).observation_ids
    assert len(ids) == HOURS
    return patient, ids


def _history(run) -> dict[str, float | None]:
    return dict((t, v) for t, v in run.history)


def _hour(index: int) -> str:
    first = last_hour() - timedelta(hours=HOURS - 1)
    return (first + timedelta(hours=index)).isoformat().replace("+00:00", "Z")


def _content(observation_id: str) -> dict:
    return json_io.loads(Resource.objects.get(logical_id=observation_id).content)


def _update(observation_id: str, change, capture) -> None:
    body = _content(observation_id)
    change(body)
    body.pop("meta", None)
    with capture(execute=True):
        store.update("Observation", observation_id, body)


def test_a_deleted_reading_leaves_the_next_forecast(patient, django_capture_on_commit_callbacks):
    patient_id, ids = patient
    before = _history(run_forecast(patient_id, HR))
    assert before[_hour(50)] is not None
    with django_capture_on_commit_callbacks(execute=True):
        store.delete("Observation", ids[50])
    after = _history(run_forecast(patient_id, HR))
    assert after[_hour(50)] is None  # its hour has no reading left: a gap
    assert {t: v for t, v in after.items() if t != _hour(50)} == {
        t: v for t, v in before.items() if t != _hour(50)
    }
    assert not VitalHour.objects.filter(
        patient_id=patient_id, vital="heart_rate", hour=last_hour() - timedelta(hours=45)
    ).exists()


def test_a_reading_entered_in_error_leaves_the_next_forecast(
    patient, django_capture_on_commit_callbacks
):
    patient_id, ids = patient
    run_forecast(patient_id, HR)
    _update(
        ids[70],
        lambda obs: obs.update(status="entered-in-error"),
        django_capture_on_commit_callbacks,
    )
    assert _history(run_forecast(patient_id, HR))[_hour(70)] is None


def test_a_corrected_value_replaces_the_wrong_one(patient, django_capture_on_commit_callbacks):
    patient_id, ids = patient
    first = run_forecast(patient_id, HR)
    assert _history(first)[_hour(80)] != 61.5

    def correct(obs: dict) -> None:
        obs["valueQuantity"]["value"] = 61.5

    _update(ids[80], correct, django_capture_on_commit_callbacks)
    second = run_forecast(patient_id, HR)
    assert second.pk != first.pk
    assert _history(second)[_hour(80)] == 61.5


def test_the_twin_forgets_a_deleted_newest_reading(patient, django_capture_on_commit_callbacks):
    patient_id, ids = patient
    twin = PatientTwin.objects.get(patient_id=patient_id)
    assert twin.state["latest"]["heart_rate"]["observation"] == ids[-1]
    hours_before = twin.state["baseline"]["heart_rate"]["hours"]
    with django_capture_on_commit_callbacks(execute=True):
        store.delete("Observation", ids[-1])
    twin.refresh_from_db()
    latest = twin.state["latest"]["heart_rate"]
    assert latest["observation"] == ids[-2]
    assert latest["value"] == float(_content(ids[-2])["valueQuantity"]["value"])
    assert twin.state["baseline"]["heart_rate"]["hours"] == hours_before - 1
    assert twin.news2["components"]  # the rules ran again on what is left
