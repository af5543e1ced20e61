"""A reading corrected after the twin applied it leaves the twin's trend: the short and long
means ($twin's trendShort and trendLong) are computed again from what is stored, as if the wrong
value had never come."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fhir_api import json_io
from fhir_api import services as store
from fhir_api.models import Resource
from twins.models import PatientTwin

from .forecast_support import last_hour, make_patient, store_readings


def heart_rate(value: float, at) -> dict:
    return {
        "type": "heart_rate",
        "value": value,
        "unit": "/min",
        "time": at.isoformat().replace("+00:00", "Z"),
    }


@pytest.fixture
def steady_then_wrong(db, django_capture_on_commit_callbacks):
    """Twelve hours of a steady 70/min every 10 minutes, then one wrong 190/min."""
    patient = make_patient("Trend")
    end = last_hour() + timedelta(minutes=50)
    steady = [heart_rate(70, end - timedelta(minutes=10 * i)) for i in range(72, 0, -1)]
    with django_capture_on_commit_callbacks(execute=True):
        store_readings(patient, steady)
    with django_capture_on_commit_callbacks(execute=True):
        wrong = store_readings(patient, [heart_rate(190, end)]).observation_ids[0]
    return patient, wrong


def trend(patient: str) -> dict:
    return PatientTwin.objects.get(patient_id=patient).state["trend"]["heart_rate"]


def correct(observation_id: str, change, capture) -> None:
    body = json_io.loads(Resource.objects.get(logical_id=observation_id).content)
    change(body)
    body.pop("meta", None)
    with capture(execute=True):
        store.update("Observation", observation_id, body)


def test_a_reading_entered_in_error_leaves_the_trend(
    steady_then_wrong, django_capture_on_commit_callbacks
):
    patient, wrong = steady_then_wrong
    assert trend(patient)["short"] > 85  # the wrong value pulled the 1-hour mean up (70 -> 88)

    correct(
        wrong, lambda o: o.update(status="entered-in-error"), django_capture_on_commit_callbacks
    )

    after = trend(patient)
    assert after["short"] == pytest.approx(70, abs=0.01)
    assert after["long"] == pytest.approx(70, abs=0.01)


def test_a_corrected_value_is_the_one_the_trend_follows(
    steady_then_wrong, django_capture_on_commit_callbacks
):
    patient, wrong = steady_then_wrong

    def fix(obs: dict) -> None:
        obs["valueQuantity"]["value"] = 72

    correct(wrong, fix, django_capture_on_commit_callbacks)

    after = trend(patient)
    # One 72 after a long 70: the 1-hour mean moves a little toward it (10 min: 1 - e^-1/6).
    assert 70.2 < after["short"] < 70.4
    assert after["long"] == pytest.approx(70, abs=0.02)


def test_the_twin_operation_shows_the_recomputed_trend(
    api, steady_then_wrong, django_capture_on_commit_callbacks
):
    patient, wrong = steady_then_wrong
    correct(
        wrong, lambda o: o.update(status="entered-in-error"), django_capture_on_commit_callbacks
    )
    body = api.fhir("GET", f"/fhir/Patient/{patient}/$twin").json_body
    text = json_io.dumps(body)
    assert '"trendShort"' in text
    shorts = [
        part["valueDecimal"]
        for p in body["parameter"]
        for part in p.get("part", [])
        if part.get("name") == "trendShort"
    ]
    assert 70.0 in shorts
