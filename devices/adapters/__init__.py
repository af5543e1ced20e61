"""Input adapters: each turns one wire format into ``services.Parsed`` readings.

- ``native``: CloudDTH's JSON (``{"device": …, "readings": [...]}``), documented in the README.
- ``openmhealth``: Open mHealth data points (github.com/openmhealth/schemas).
- ``applehealth`` and ``csvfile``: file imports.
A payload's shape says which adapter reads it (``parse_payload``).
"""

from __future__ import annotations

from typing import Any

from fhir_api.exceptions import BadRequest

from ..services import Parsed
from . import native, openmhealth


def device_named(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("device"), str):
        return body["device"]
    return None


def parse_payload(body: Any) -> list[Parsed]:
    """The readings of an HTTP/MQTT payload; BadRequest when the payload itself is malformed."""
    if isinstance(body, dict) and "readings" in body:
        return native.parse(body)
    if (
        openmhealth.is_data_point(body)
        or (isinstance(body, dict) and "data_points" in body)
        or (isinstance(body, list) and body and all(openmhealth.is_data_point(x) for x in body))
    ):
        return openmhealth.parse(body)
    raise BadRequest(
        'The payload is neither {"device": …, "readings": [...]} nor Open mHealth data points'
    )
