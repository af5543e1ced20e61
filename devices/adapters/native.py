"""CloudDTH's own reading format (README, "Sending readings").

``{"device": "<serial>", "readings": [{"type": "heart_rate", "value": 72, "unit": "/min",
"time": "2026-11-27T10:00:00Z", "id": "<optional>"}, …]}``; blood pressure has ``systolic``
and ``diastolic`` instead of ``value``; events (``fall``, ``irregular_rhythm``) need only a
time; ``battery`` has a value in %.
"""

from __future__ import annotations

from typing import Any

from fhir_api.exceptions import BadRequest

from ..mapping import READING_TYPES
from ..readings import Reading, Rejected, number, parse_time
from ..services import Parsed

MAX_READINGS = 10_000


def reading(item: Any) -> Reading:
    if not isinstance(item, dict):
        raise Rejected("a reading must be a JSON object")
    kind = item.get("type")
    if kind not in READING_TYPES:
        raise Rejected(f"unknown reading type {kind!r} (known: {', '.join(READING_TYPES)})")
    unit = item.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise Rejected("unit must be a UCUM code string")
    out = Reading(type=kind, time=parse_time(item.get("time")), unit=unit, raw=item)
    if kind == "blood_pressure":
        out.systolic = number(item.get("systolic"), "systolic")
        out.diastolic = number(item.get("diastolic"), "diastolic")
    elif item.get("value") is not None or kind not in ("fall", "irregular_rhythm"):
        out.value = number(item.get("value"), f"{kind} value")
    if item.get("id") is not None:
        out.reading_id = str(item["id"])
    return out


def parse(body: dict[str, Any]) -> list[Parsed]:
    readings = body.get("readings")
    if not isinstance(readings, list):
        raise BadRequest('"readings" must be a list of readings')
    if len(readings) > MAX_READINGS:
        raise BadRequest(f"At most {MAX_READINGS} readings per request")
    out = []
    for item in readings:
        try:
            out.append(Parsed(item, reading(item)))
        except Rejected as exc:
            out.append(Parsed(item, error=str(exc)))
    return out
