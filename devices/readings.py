"""Readings as the devices send them, checked, converted and mapped to FHIR Observations.

``Reading`` is the one internal form every input (HTTP JSON, Open mHealth, MQTT, files)
is parsed into. ``check`` rejects what cannot be true of a living person (HR 0 or 400, SpO2
over 100 %, 60 °C) and converts to the canonical unit; values that are abnormal but possible
are kept, because they are what the twin watches. ``observation`` builds the Observation by
construction from the mapping table, with no generic model parse on this path
(../shared/docs/architecture.md, "The path of a reading").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from django.utils import timezone

from fhir_api.search.dates import format_instant
from fhir_api.validation import CONTROL_MESSAGE, CONTROL_RE

from .mapping import (
    BLOOD_PRESSURE,
    DIASTOLIC,
    EVENTS,
    GATEWAY_URL,
    LOINC,
    MDC,
    MEASURES,
    OBSERVATION_CATEGORY,
    ORIGINAL_VALUE_URL,
    PHD_CATEGORY,
    READING_ID_SYSTEM,
    SYSTOLIC,
    UCUM,
    Measure,
)
from .ranges import EVENT_CODES, Ranges, interpretation

# Readings stamped further ahead than this are refused: a device clock gone wrong.
FUTURE_TOLERANCE = timedelta(minutes=10)


class Rejected(ValueError):
    """A reading that cannot be stored, with the reason a person will read."""


@dataclass(slots=True)
class Reading:
    type: str
    time: datetime
    value: float | None = None
    unit: str | None = None
    systolic: float | None = None
    diastolic: float | None = None
    reading_id: str | None = None
    raw: Any = None


@dataclass(slots=True)
class Checked:
    """A plausible reading in canonical units, with the original value when it was converted."""

    reading: Reading
    value: Decimal | None
    systolic: Decimal | None = None
    diastolic: Decimal | None = None
    original: tuple[float, str] | None = None
    instant: str = field(init=False)  # the reading's time as FHIR writes an instant

    def __post_init__(self) -> None:
        self.instant = _instant(self.reading.time)


def _instant(value: datetime) -> str:
    """``format_instant`` (UTC, microseconds, ``Z``) by ``isoformat``, several times faster
    than its ``strftime``; the two differ only before year 1000, left to ``format_instant``."""
    utc = value.astimezone(UTC)
    if utc.year < 1000:
        return format_instant(utc)
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: Any) -> datetime:
    if not isinstance(text, str) or not text:
        raise Rejected("time is missing: give an ISO 8601 instant such as 2026-11-27T10:00:00Z")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(f"time '{text}' is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise Rejected(f"time '{text}' has no time zone: add Z or an offset such as +01:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00: before the first instant in UTC
        raise Rejected(f"time '{text}' is outside the years 1 to 9999 in UTC") from None


def number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise Rejected(f"{what} must be a number")
    try:
        result = float(value)
    except ValueError:
        raise Rejected(f"{what} '{value}' is not a number") from None
    except OverflowError:  # an integer of hundreds of digits
        raise Rejected(f"{what} must be a finite number") from None
    if not math.isfinite(result):
        raise Rejected(f"{what} must be a finite number")
    return result


def _decimal(value: float, places: int = 2) -> Decimal:
    rounded = round(value, places)
    if rounded == int(rounded):
        return Decimal(int(rounded))
    return Decimal(repr(rounded))


def _convert(measure: Measure, value: float, unit: str | None) -> tuple[float, bool]:
    code = unit or measure.unit
    for option in measure.units:
        if option.code == code:
            converted = option.to_canonical(value)
            return converted, code != measure.unit
    accepted = ", ".join(u.code for u in measure.units)
    raise Rejected(f"{measure.type}: unit '{code}' is not accepted (use one of {accepted})")


def _in_range(measure: Measure, value: float, what: str | None = None) -> None:
    if not measure.low <= value <= measure.high:
        raise Rejected(
            f"{what or measure.type} {value:g} {measure.unit} is physiologically impossible"
            f" (accepted {measure.low:g} to {measure.high:g} {measure.unit})"
        )


def check(reading: Reading, now: datetime | None = None) -> Checked:
    """Validate and convert; raise ``Rejected`` with the reason otherwise."""
    now = now or timezone.now()
    if reading.reading_id and CONTROL_RE.search(str(reading.reading_id)):
        raise Rejected(f"id: {CONTROL_MESSAGE}")  # it becomes the Observation's identifier
    if reading.time > now + FUTURE_TOLERANCE:
        raise Rejected(f"time {format_instant(reading.time)} is in the future")
    if reading.type == "blood_pressure":
        if reading.systolic is None or reading.diastolic is None:
            raise Rejected("blood_pressure needs systolic and diastolic")
        sys_v, converted = _convert(BLOOD_PRESSURE, reading.systolic, reading.unit)
        dia_v, _ = _convert(BLOOD_PRESSURE, reading.diastolic, reading.unit)
        _in_range(BLOOD_PRESSURE, sys_v, "systolic")
        _in_range(BLOOD_PRESSURE, dia_v, "diastolic")
        if dia_v >= sys_v:
            raise Rejected(f"diastolic {dia_v:g} is not below systolic {sys_v:g}")
        return Checked(reading, None, _decimal(sys_v, 0), _decimal(dia_v, 0))
    if reading.type in EVENTS:
        if reading.type == "battery":
            level = number(reading.value, "battery")
            if reading.unit == "1" or (
                reading.unit is None and 0 <= level <= 1 and level != int(level)
            ):
                level *= 100
            if not 0 <= level <= 100:
                raise Rejected(f"battery {level:g} % is not between 0 and 100")
            return Checked(reading, _decimal(level, 0))
        return Checked(reading, None)
    measure = MEASURES.get(reading.type)
    if measure is None:
        raise Rejected(f"unknown reading type '{reading.type}'")
    if reading.value is None:
        raise Rejected(f"{reading.type} has no value")
    value, converted = _convert(measure, reading.value, reading.unit)
    _in_range(measure, value)
    places = 1 if reading.type in ("body_temperature", "body_weight", "body_height") else 2
    original = (reading.value, reading.unit or measure.unit) if converted else None
    return Checked(reading, _decimal(value, places), original=original)


def identifier(device: str, patient: str, checked: Checked) -> str:
    """The reading's identifier, from device, patient, type, time and unit (PHD IG): a resend
    of the same reading gets the same one, and is recognised as a duplicate."""
    r = checked.reading
    unit = r.unit or ""
    key = f"{device}|{patient}|{r.type}|{checked.instant}|{unit}"
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _quantity(value: Decimal, measure_unit: str, display: str) -> dict[str, Any]:
    return {"value": value, "unit": display, "system": UCUM, "code": measure_unit}


@cache
def _coded(kind: str) -> tuple[list[dict[str, Any]], dict[str, Any], tuple[dict[str, Any], ...]]:
    """(category, code, component codes) of a reading type: the same for every reading of it.

    Shared by every Observation of the type, so never to be changed in place.
    """
    if kind in EVENTS:
        event = EVENTS[kind]
        category = [{"coding": [_coding(PHD_CATEGORY, "phd", "PHD generated")]}]
        code = {"coding": [_coding(event.system, event.code, event.display)], "text": kind}
        return category, code, ()
    if kind == "blood_pressure":
        m = BLOOD_PRESSURE
        code = {
            "coding": [
                _coding(LOINC, m.loinc, m.display),
                _coding(MDC, m.mdc or "", m.mdc_display or ""),
            ],
            "text": "Blood pressure",
        }
        components = tuple(
            {"coding": [_coding(LOINC, part[0], part[1]), _coding(MDC, part[2], part[3])]}
            for part in (SYSTOLIC, DIASTOLIC)
        )
        return _categories("vital-signs"), code, components
    m = MEASURES[kind]
    codings = [_coding(LOINC, m.loinc, m.display)]
    codings += [_coding(LOINC, code, display) for code, display in m.extra_loinc]
    if m.mdc:
        codings.append(_coding(MDC, m.mdc, m.mdc_display or ""))
    return _categories(m.category), {"coding": codings, "text": m.display}, ()


def observation(
    checked: Checked,
    *,
    patient: str,
    device_fhir_id: str,
    key: str,
    gateway_fhir_id: str | None = None,
    ranges: Ranges | None = None,
) -> dict[str, Any]:
    """The FHIR Observation of a checked reading (observation-vitalsigns, PHD IG).

    ``ranges``: how the patient's values read (``devices.ranges``: the twin's thresholds or
    the NEWS2 bands), giving each vital value its ``interpretation`` and ``referenceRange``;
    None reads them with the defaults (NEWS2 scale 1).

    The category, code, interpretation and range parts are shared between Observations
    (``_coded``, ``devices.ranges``): serialise the result or copy it before changing it.
    """
    ranges = ranges or DEFAULT_RANGES
    r = checked.reading
    kind = r.type
    category, code, components = _coded(kind)
    identifiers = [{"system": READING_ID_SYSTEM, "value": key}]
    if r.reading_id:
        identifiers.append(
            {"system": f"{READING_ID_SYSTEM}:device", "value": str(r.reading_id)[:200]}
        )
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": identifiers,
        "status": "final",
        "category": category,
        "code": code,
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": checked.instant,
        "device": {"reference": f"Device/{device_fhir_id}"},
    }
    extensions = []
    if gateway_fhir_id:
        extensions.append(
            {"url": GATEWAY_URL, "valueReference": {"reference": f"Device/{gateway_fhir_id}"}}
        )
    if components:
        systolic, diastolic = components
        obs["component"] = [
            _judged(
                {"code": systolic, "valueQuantity": _quantity(checked.systolic, "mm[Hg]", "mmHg")},
                ranges,
                "systolic",
                checked.systolic,
            ),
            _judged(
                {
                    "code": diastolic,
                    "valueQuantity": _quantity(checked.diastolic, "mm[Hg]", "mmHg"),
                },
                ranges,
                "diastolic",
                checked.diastolic,
            ),
        ]
    elif kind == "battery":
        obs["valueQuantity"] = _quantity(checked.value, "%", "%")
    elif kind in EVENTS:
        obs["valueBoolean"] = True
        obs["interpretation"] = interpretation(EVENT_CODES[kind])
    else:
        m = MEASURES[kind]
        obs["valueQuantity"] = _quantity(checked.value, m.unit, m.unit_display)
        _judged(obs, ranges, kind, checked.value)
        if checked.original is not None:
            value, unit = checked.original
            extensions.append(
                {
                    "url": ORIGINAL_VALUE_URL,
                    "valueQuantity": {"value": _decimal(value, 4), "system": UCUM, "code": unit},
                }
            )
    if extensions:
        obs["extension"] = extensions
    return obs


DEFAULT_RANGES = Ranges()


def _judged(element: dict[str, Any], ranges: Ranges, vital: str, value: Decimal | None):
    """``element`` (an Observation or a component) with the interpretation and reference
    range of its value, when the vital has thresholds."""
    verdict = ranges.judge(vital)(float(value)) if value is not None else None
    if verdict is not None:
        element["interpretation"], element["referenceRange"] = verdict
    return element


def _categories(code: str) -> list[dict[str, Any]]:
    display = {"vital-signs": "Vital Signs", "activity": "Activity"}[code]
    return [
        {"coding": [_coding(OBSERVATION_CATEGORY, code, display)]},
        {"coding": [_coding(PHD_CATEGORY, "phd", "PHD generated")]},
    ]
