"""A reading whose optional device ``id`` holds a control character (``\\u0000``, ``\\u0007``)
is rejected with the reason and kept as a dead letter; the other readings of the batch are
stored. The id becomes the Observation's identifier, a FHIR string, which holds no control
character (the FHIR API refuses one with a 422).

Was, on PostgreSQL: the NUL reached the index rows' COPY, so the request was a 500 and the
whole batch was lost, with no dead letter.
"""

from __future__ import annotations

import pytest

from devices import services
from devices.models import DeadLetter
from devices.readings import parse_time
from fhir_api import json_io

URL = "/api/devices/readings"


@pytest.fixture
def device_key(api) -> str:
    r = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Id"}]})
    dev = services.register_device("EUI-ID")
    services.pair(dev, r.json_body["id"], start=parse_time("2026-11-01T00:00:00Z"))
    return services.issue_key(dev)


@pytest.mark.parametrize("reading_id", ["\x00", "a\x07b"])
def test_a_reading_id_with_a_control_character_is_rejected_and_the_rest_stored(
    anon, device_key, reading_id
):
    body = {
        "device": "EUI-ID",
        "readings": [
            {"type": "heart_rate", "value": 70, "unit": "/min", "time": "2026-11-27T10:00:00Z"},
            {
                "type": "heart_rate",
                "value": 71,
                "unit": "/min",
                "time": "2026-11-27T10:01:00Z",
                "id": reading_id,
            },
        ],
    }
    response = anon.post(
        URL,
        data=json_io.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Device {device_key}",
    )
    assert response.status_code == 202, response.content
    result = response.json()
    assert result["accepted"] == 1 and result["rejected"] == 1
    assert result["rejections"] == [{"index": 1, "reason": result["rejections"][0]["reason"]}]
    assert "control characters" in result["rejections"][0]["reason"]
    assert json_io.loads(DeadLetter.objects.get().payload)["reading"]["id"] == reading_id
