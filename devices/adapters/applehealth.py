"""Apple Health ``export.xml`` (the Health app's "Export All Health Data").

``<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" value="72"
startDate="2026-11-27 10:00:00 +0100" …/>``; blood pressure is a ``<Correlation>`` holding a
systolic and a diastolic Record. The file is read as a stream (exports run to gigabytes).
HealthKit gives SpO2 as a 0 to 1 fraction, which the mapping converts to %.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from ..readings import Reading, Rejected, number
from ..services import Parsed

RECORDS = {
    "HKQuantityTypeIdentifierHeartRate": "heart_rate",
    "HKQuantityTypeIdentifierRespiratoryRate": "respiratory_rate",
    "HKQuantityTypeIdentifierOxygenSaturation": "oxygen_saturation",
    "HKQuantityTypeIdentifierBodyTemperature": "body_temperature",
    "HKQuantityTypeIdentifierBodyMass": "body_weight",
    "HKQuantityTypeIdentifierHeight": "body_height",
    "HKQuantityTypeIdentifierBloodGlucose": "blood_glucose",
    "HKQuantityTypeIdentifierStepCount": "steps",
    "HKQuantityTypeIdentifierHeartRateVariabilitySDNN": "hrv_sdnn",
    "HKQuantityTypeIdentifierNumberOfTimesFallen": "fall",
    "HKCategoryTypeIdentifierIrregularHeartRhythmEvent": "irregular_rhythm",
}
SYSTOLIC = "HKQuantityTypeIdentifierBloodPressureSystolic"
DIASTOLIC = "HKQuantityTypeIdentifierBloodPressureDiastolic"
BLOOD_PRESSURE = "HKCorrelationTypeIdentifierBloodPressure"
UNITS = {
    "count/min": "/min",
    "%": "1",  # HealthKit stores a fraction
    "degC": "Cel",
    "degF": "[degF]",
    "kg": "kg",
    "lb": "[lb_av]",
    "g": "g",
    "cm": "cm",
    "m": "m",
    "in": "[in_i]",
    "mg/dL": "mg/dL",
    "mmol<180.1558800000541>/L": "mmol/L",
    "mmol/L": "mmol/L",
    "count": "{steps}",
    "ms": "ms",
    "mmHg": "mm[Hg]",
}


def _time(text: str | None) -> datetime:
    if not text:
        raise Rejected("the record has no startDate")
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        raise Rejected(f"date '{text}' is not in Apple Health's format") from None


def _record(element: ET.Element) -> Parsed:
    raw = dict(element.attrib)
    try:
        kind = RECORDS[raw["type"]]
        reading = Reading(kind, _time(raw.get("startDate")), raw=raw)
        if kind not in ("fall", "irregular_rhythm"):
            reading.value = number(raw.get("value"), kind)
            unit = raw.get("unit")
            reading.unit = UNITS.get(unit or "", unit)
        return Parsed(raw, reading)
    except Rejected as exc:
        return Parsed(raw, error=str(exc))


def _blood_pressure(element: ET.Element) -> Parsed:
    values = {r.get("type"): r.attrib for r in element.findall("Record")}
    raw = {
        "type": BLOOD_PRESSURE,
        "startDate": element.get("startDate"),
        "records": list(values.values()),
    }
    try:
        systolic, diastolic = values.get(SYSTOLIC), values.get(DIASTOLIC)
        if systolic is None or diastolic is None:
            raise Rejected("the blood pressure correlation lacks a systolic or diastolic record")
        reading = Reading(
            "blood_pressure",
            _time(element.get("startDate")),
            unit=UNITS.get(systolic.get("unit", "mmHg"), "mm[Hg]"),
            systolic=number(systolic.get("value"), "systolic"),
            diastolic=number(diastolic.get("value"), "diastolic"),
            raw=raw,
        )
        return Parsed(raw, reading)
    except Rejected as exc:
        return Parsed(raw, error=str(exc))


def parse(handle: IO[bytes]) -> Iterator[Parsed]:
    """The readings of an export, in file order; other record types are skipped."""
    depth = 0
    for event, element in ET.iterparse(handle, events=("start", "end")):
        if event == "start":
            if element.tag == "Correlation":
                depth += 1
            continue
        if element.tag == "Correlation":
            depth -= 1
            if element.get("type") == BLOOD_PRESSURE:
                yield _blood_pressure(element)
            element.clear()
        elif element.tag == "Record" and depth == 0:
            if element.get("type") in RECORDS:
                yield _record(element)
            element.clear()
