"""Dead letters: seen in the admin, replayed after the cause is fixed, stored exactly once."""

from __future__ import annotations

import pytest

from devices import services
from devices.adapters import parse_payload
from devices.models import DeadLetter
from devices.readings import parse_time
from fhir_api import json_io
from fhir_api.models import Resource


@pytest.fixture
def setup(db):
    from fhir_api import services as fhir

    patient = fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Late"}]}
    ).resource.logical_id
    device = services.register_device("DL-1")
    services.pair(device, patient, start=parse_time("2026-11-20T00:00:00Z"))
    return device, patient


def send(device, *readings):
    return services.ingest(device, parse_payload({"readings": list(readings)}), source="http")


def test_a_reading_from_before_the_pairing_is_kept_then_replayed_once_paired(setup, admin_client):
    device, patient = setup
    early = {"type": "heart_rate", "value": 88, "unit": "/min", "time": "2026-11-10T08:00:00Z"}
    result = send(device, early)
    assert result.accepted == 0 and len(result.rejected) == 1
    letter = DeadLetter.objects.get()
    assert json_io.loads(letter.payload) == {"device": "DL-1", "reading": early}

    # The clinician sees it in the admin …
    page = admin_client.get("/admin/devices/deadletter/")
    assert "paired to no patient" in page.content.decode()
    # … a replay before the cause is fixed leaves it there, with the reason …
    admin_client.post(
        "/admin/devices/deadletter/", {"action": "replay", "_selected_action": [letter.pk]}
    )
    letter.refresh_from_db()
    assert letter.status == DeadLetter.NEW and letter.handled_by == "admin"
    # … and once the past period is paired, the replay stores it, once.
    services.pair(
        device,
        patient,
        start=parse_time("2026-11-01T00:00:00Z"),
        end=parse_time("2026-11-20T00:00:00Z"),
    )
    admin_client.post(
        "/admin/devices/deadletter/", {"action": "replay", "_selected_action": [letter.pk]}
    )
    letter.refresh_from_db()
    assert letter.status == DeadLetter.REPLAYED
    assert Resource.objects.filter(resource_type="Observation").count() == 1
    admin_client.post(
        "/admin/devices/deadletter/", {"action": "replay", "_selected_action": [letter.pk]}
    )
    assert Resource.objects.filter(resource_type="Observation").count() == 1


def test_out_of_order_readings_land_at_their_own_times(setup, api):
    device, patient = setup
    times = ["2026-11-27T10:05:00Z", "2026-11-27T10:00:00Z", "2026-11-27T10:10:00Z"]
    send(
        device,
        *(
            {"type": "heart_rate", "value": 60 + i, "unit": "/min", "time": t}
            for i, t in enumerate(times)
        ),
    )
    send(
        device, {"type": "heart_rate", "value": 99, "unit": "/min", "time": "2026-11-27T09:55:00Z"}
    )  # late arrival
    page = api.fhir("GET", f"/fhir/Observation?patient={patient}&_sort=date").json_body
    got = [
        (e["resource"]["effectiveDateTime"][11:16], e["resource"]["valueQuantity"]["value"])
        for e in page["entry"]
    ]
    assert got == [("09:55", 99), ("10:00", 61), ("10:05", 60), ("10:10", 62)]
    last = api.fhir("GET", f"/fhir/Observation?patient={patient}&_sort=-date&_count=1").json_body
    assert last["entry"][0]["resource"]["valueQuantity"]["value"] == 62


def test_a_moved_device_never_attributes_readings_to_the_wrong_patient(setup):
    device, first = setup
    from fhir_api import services as fhir

    second = fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Next"}]}
    ).resource.logical_id
    services.pair(device, second, start=parse_time("2026-11-25T00:00:00Z"))
    send(
        device,
        {"type": "heart_rate", "value": 70, "unit": "/min", "time": "2026-11-24T23:59:00Z"},
        {"type": "heart_rate", "value": 71, "unit": "/min", "time": "2026-11-25T00:01:00Z"},
    )
    subjects = {
        json_io.loads(r.content)["valueQuantity"]["value"]: json_io.loads(r.content)["subject"][
            "reference"
        ]
        for r in Resource.objects.filter(resource_type="Observation")
    }
    assert subjects == {70: f"Patient/{first}", 71: f"Patient/{second}"}
