"""A device still paired to a Patient who has since been deleted: its readings are kept as dead
letters with the reason, never stored as Observations of a deleted Patient, and a replay after
the pairing is corrected stores them once."""

from __future__ import annotations

import pytest

from devices import services
from devices.adapters import parse_payload
from devices.models import DeadLetter
from devices.readings import parse_time
from fhir_api import services as fhir
from fhir_api.models import Resource

READING = {"type": "heart_rate", "value": 91, "unit": "/min", "time": "2026-11-21T08:00:00Z"}


@pytest.fixture
def paired(db):
    patient = fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Gone"}]}
    ).resource.logical_id
    device = services.register_device("DEL-1")
    services.pair(device, patient, start=parse_time("2026-11-20T00:00:00Z"))
    return device, patient


def send(device):
    return services.ingest(device, parse_payload({"readings": [READING]}), source="http")


def observations() -> int:
    return Resource.objects.filter(resource_type="Observation", deleted=False).count()


def test_a_reading_for_a_deleted_patient_is_a_dead_letter(paired):
    device, patient = paired
    fhir.delete("Patient", patient)

    result = send(device)

    assert result.accepted == 0
    assert "has been deleted" in result.rejected[0]["reason"]
    letter = DeadLetter.objects.get()
    assert f"Patient/{patient}" in letter.reason
    assert observations() == 0


def test_the_dead_letter_is_stored_once_replayed_after_the_device_is_paired_again(paired):
    device, _gone = paired
    fhir.delete("Patient", _gone)
    send(device)
    letter = DeadLetter.objects.get()

    other = fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Right"}]}
    ).resource.logical_id
    services.pair(device, other, start=parse_time("2026-11-20T00:00:00Z"))
    services.replay(letter, by="test")
    services.replay(letter, by="test")

    letter.refresh_from_db()
    assert letter.status == DeadLetter.REPLAYED
    assert observations() == 1


def test_a_live_patient_still_gets_the_reading(paired):
    device, _patient = paired
    assert send(device).accepted == 1
    assert observations() == 1
