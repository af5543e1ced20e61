"""Open mHealth data points (github.com/openmhealth/schemas, schema namespace ``omh``).

A data point is ``{"header": {"schema_id": {"name": "heart-rate", …}, …}, "body": {…}}``; the
body holds the measure as a unit-value (``{"value": 72, "unit": "beats/min"}``) and an
``effective_time_frame`` (a ``date_time``, or a ``time_interval`` whose end is taken).
A payload is one data point, a list of them, or ``{"device": …, "data_points": [...]}``.
"""

from __future__ import annotations

from typing import Any

from fhir_api.exceptions import BadRequest

from ..readings import Reading, Rejected, number, parse_time
from ..services import Parsed

# schema name -> (reading type, body key)
SCHEMAS = {
    "heart-rate": ("heart_rate", "heart_rate"),
    "oxygen-saturation": ("oxygen_saturation", "oxygen_saturation"),
    "body-temperature": ("body_temperature", "body_temperature"),
    "respiratory-rate": ("respiratory_rate", "respiratory_rate"),
    "body-weight": ("body_weight", "body_weight"),
    "blood-glucose": ("blood_glucose", "blood_glucose"),
    "step-count": ("steps", "step_count"),
    "blood-pressure": ("blood_pressure", None),
}
# Open mHealth unit names -> UCUM codes
UNITS = {
    "beats/min": "/min",
    "breaths/min": "/min",
    "%": "%",
    "C": "Cel",
    "F": "[degF]",
    "K": "K",
    "kg": "kg",
    "g": "g",
    "lb": "[lb_av]",
    "mg/dL": "mg/dL",
    "mmol/L": "mmol/L",
    "mmHg": "mm[Hg]",
    "kPa": "kPa",
    "steps": "{steps}",
}


def is_data_point(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("header"), dict)
        and isinstance(value.get("body"), dict)
    )


def _unit_value(body: dict[str, Any], key: str) -> tuple[float, str | None]:
    item = body.get(key)
    if isinstance(item, dict):
        unit = item.get("unit")
        if unit is not None and unit not in UNITS:
            raise Rejected(f"Open mHealth unit {unit!r} is not supported")
        return number(item.get("value"), key), UNITS.get(unit) if unit else None
    return number(item, key), None  # step-count 1.x: a bare number


def _time(body: dict[str, Any]) -> Any:
    frame = body.get("effective_time_frame")
    if not isinstance(frame, dict):
        raise Rejected("effective_time_frame is missing")
    if "date_time" in frame:
        return frame["date_time"]
    interval = frame.get("time_interval")
    if isinstance(interval, dict):
        return interval.get("end_date_time") or interval.get("start_date_time")
    raise Rejected("effective_time_frame has neither date_time nor time_interval")


def reading(point: Any) -> Reading:
    if not is_data_point(point):
        raise Rejected("not an Open mHealth data point (header and body)")
    schema = point["header"].get("schema_id") or {}
    name = schema.get("name") if isinstance(schema, dict) else None
    if name not in SCHEMAS:
        raise Rejected(f"Open mHealth schema {name!r} is not supported")
    kind, key = SCHEMAS[name]
    body = point["body"]
    time = parse_time(_time(body))
    reading_id = point["header"].get("id")
    if kind == "blood_pressure":
        systolic, unit = _unit_value(body, "systolic_blood_pressure")
        diastolic, _ = _unit_value(body, "diastolic_blood_pressure")
        return Reading(kind, time, None, unit, systolic, diastolic, reading_id, point)
    assert key is not None
    value, unit = _unit_value(body, key)
    return Reading(kind, time, value, unit, reading_id=reading_id, raw=point)


def parse(body: Any) -> list[Parsed]:
    if isinstance(body, dict) and "data_points" in body:
        points = body["data_points"]
        if not isinstance(points, list):
            raise BadRequest('"data_points" must be a list')
    elif isinstance(body, list):
        points = body
    else:
        points = [body]
    out = []
    for point in points:
        try:
            out.append(Parsed(point, reading(point)))
        except Rejected as exc:
            out.append(Parsed(point, error=str(exc)))
    return out
