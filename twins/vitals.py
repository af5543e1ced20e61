"""The vitals a twin follows, and how to read them out of stored Observations.

Codes from ../shared/docs/clinical-reference.md; a blood-pressure panel gives ``systolic`` and
``diastolic``; device events (fall, irregular rhythm, battery) are read from their codes too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_api.exceptions import BadRequest
from fhir_api.search.dates import parse_interval

LOINC_VITALS = {
    "8867-4": "heart_rate",
    "9279-1": "respiratory_rate",
    "2708-6": "oxygen_saturation",
    "59408-5": "oxygen_saturation",
    "8310-5": "body_temperature",
    "29463-7": "body_weight",
    "8302-2": "body_height",
    "41653-7": "blood_glucose",
    "2339-0": "blood_glucose",
    "55423-8": "steps",
    "80404-7": "hrv_sdnn",
    "8480-6": "systolic",
    "8462-4": "diastolic",
}
EVENT_CODES = {"1912002": "fall", "361137007": "irregular_rhythm", "67996": "battery"}
BP_PANEL = "85354-9"
UNITS = {
    "heart_rate": "/min",
    "respiratory_rate": "/min",
    "oxygen_saturation": "%",
    "body_temperature": "Cel",
    "systolic": "mm[Hg]",
    "diastolic": "mm[Hg]",
    "body_weight": "kg",
    "body_height": "cm",
    "blood_glucose": "mg/dL",
    "steps": "{steps}",
    "hrv_sdnn": "ms",
}
LABELS = {
    "heart_rate": "Heart rate",
    "respiratory_rate": "Respiratory rate",
    "oxygen_saturation": "SpO₂",
    "body_temperature": "Temperature",
    "systolic": "Systolic BP",
    "diastolic": "Diastolic BP",
    "body_weight": "Weight",
    "body_height": "Height",
    "blood_glucose": "Glucose",
    "steps": "Steps",
    "hrv_sdnn": "HRV (SDNN)",
}
# A value older than this no longer counts as the patient's current state (NEWS2 says stale).
FRESH_SECONDS = {
    "heart_rate": 3600,
    "oxygen_saturation": 3600,
    "respiratory_rate": 4 * 3600,
    "body_temperature": 12 * 3600,
    "systolic": 12 * 3600,
    "diastolic": 12 * 3600,
}


def _codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [c.get("code") for c in concept.get("coding") or [] if isinstance(c, dict)]


def effective(obs: dict[str, Any]) -> datetime | None:
    value = obs.get("effectiveDateTime") or obs.get("effectiveInstant")
    if value is None and isinstance(obs.get("effectivePeriod"), dict):
        value = obs["effectivePeriod"].get("end") or obs["effectivePeriod"].get("start")
    if not isinstance(value, str):
        return None
    try:
        return parse_interval(value).low
    except BadRequest:
        return None


def _quantity(holder: dict[str, Any]) -> float | None:
    q = holder.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        return float(q["value"])
    return None


def readings_of(obs: dict[str, Any]) -> list[tuple[str, float | None]]:
    """(vital or event, value) pairs an Observation carries; empty when it is not one we follow."""
    if obs.get("status") in ("entered-in-error", "cancelled"):
        return []
    codes = _codes(obs.get("code"))
    out: list[tuple[str, float | None]] = []
    if BP_PANEL in codes:
        for component in obs.get("component") or []:
            for code in _codes(component.get("code")):
                if code in ("8480-6", "8462-4"):
                    value = _quantity(component)
                    if value is not None:
                        out.append((LOINC_VITALS[code], value))
        return out
    for code in codes:
        if code in LOINC_VITALS:
            value = _quantity(obs)
            return [(LOINC_VITALS[code], value)] if value is not None else []
        if code in EVENT_CODES:
            return [(EVENT_CODES[code], _quantity(obs))]
    return []
