"""The fleet API refuses what a registry cannot hold with a 400 OperationOutcome: a device
identifier with a NUL or another control character (was a 500 on PostgreSQL) and a kind that
is neither sensor nor gateway (was stored as given, "spaceship" or the text of a JSON object)."""

from __future__ import annotations

import pytest

from devices.models import Device


@pytest.fixture
def staff(api, user):
    user.is_staff = True
    user.save()
    return api


@pytest.mark.parametrize(
    "body",
    [
        {"identifier": "EUI\x00-1"},
        {"identifier": "EUI\n-1"},
        {"identifier": "EUI-1", "kind": "spaceship"},
        {"identifier": "EUI-1", "kind": {"a": 1}},
        {"identifier": "EUI-1", "kind": "a-kind-longer-than-ten"},
    ],
)
def test_a_bad_registration_is_a_400_and_registers_nothing(staff, body):
    response = staff.post("/api/devices/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["resourceType"] == "OperationOutcome"
    assert not Device.objects.exists()


def test_a_good_registration_still_registers(staff):
    response = staff.post(
        "/api/devices/", {"identifier": "EUI-1", "kind": "gateway"}, format="json"
    )
    assert response.status_code == 201
    assert Device.objects.get().kind == "gateway"
