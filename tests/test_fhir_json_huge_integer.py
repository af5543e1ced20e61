"""A JSON number of more digits than Python converts (4,300) is a 400 OperationOutcome saying
the body is not valid JSON, on the FHIR API and on the devices' readings endpoint (was a 500)."""

from __future__ import annotations

from devices import services
from devices.models import DeadLetter

HUGE = "9" * 5000


def test_a_fhir_resource_with_a_5000_digit_integer_is_a_400(api):
    body = (
        '{"resourceType":"Observation","status":"final","code":{"text":"x"},'
        f'"valueInteger":{HUGE}}}'
    )
    response = api.fhir("POST", "/fhir/Observation", body)
    assert response.status_code == 400
    assert response.json_body["resourceType"] == "OperationOutcome"
    assert "not valid JSON" in response.json_body["issue"][0]["diagnostics"]


def test_a_device_payload_with_a_5000_digit_number_is_a_400_and_a_dead_letter(anon):
    key = services.issue_key(services.register_device("EUI-X"))
    payload = (
        '{"device":"EUI-X","readings":[{"type":"heart_rate","value":'
        f'{HUGE},"unit":"/min","time":"2026-11-27T10:00:00Z"}}]}}'
    )
    response = anon.post(
        "/api/devices/readings",
        data=payload,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Device {key}",
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    letter = DeadLetter.objects.get()
    assert letter.payload == payload
