"""The index rows the ingest builds directly (devices.indexrows) are exactly extract's rows.

The ingest does not run the generic extraction (``fhir_api.search.extract.extract``) on the
Observations it maps: it writes their rows down by construction. These tests build the
Observation of every reading type in every unit it is accepted in, with and without a device
reading id and a gateway, and compare the direct rows with the generic ones table by table,
so that a change to either side (a new search parameter, a new value rule, a new element in
the mapping) fails here instead of leaving unsearchable readings.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from devices.indexrows import observation_rows
from devices.mapping import BLOOD_PRESSURE, EVENTS, MEASURES, READING_TYPES
from devices.models import Device, Pairing
from devices.readings import Reading, check, identifier, observation
from fhir_api.indexing import index_rows
from fhir_api.models import INDEX_MODELS, Resource
from fhir_api.search.extract import extract

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WHEN = datetime(2026, 11, 27, 10, 15, 30, 250000, tzinfo=UTC)


def _value_in(measure, unit: str) -> float:
    """A plausible value of ``measure`` given in ``unit`` (the middle of the range, converted back)."""
    middle = (measure.low + measure.high) / 2
    for option in measure.units:
        if option.code == unit:
            # to_canonical is linear: solve option.to_canonical(x) == middle
            a = option.to_canonical(1.0) - option.to_canonical(0.0)
            b = option.to_canonical(0.0)
            return round((middle - b) / a, 3)
    raise AssertionError(unit)


def readings() -> list[Reading]:
    out = []
    for kind, measure in MEASURES.items():
        for unit in [None, *(u.code for u in measure.units)]:
            value = _value_in(measure, unit or measure.unit)
            out.append(Reading(kind, WHEN, value=value, unit=unit))
        out.append(Reading(kind, WHEN, value=measure.low, unit=measure.unit, reading_id="r-17"))
        out.append(Reading(kind, WHEN, value=measure.high, unit=measure.unit))
    for unit in [None, *(u.code for u in BLOOD_PRESSURE.units)]:
        if unit == "kPa":
            out.append(Reading("blood_pressure", WHEN, systolic=16.0, diastolic=10.7, unit=unit))
        else:
            out.append(Reading("blood_pressure", WHEN, systolic=121, diastolic=79, unit=unit))
    for kind in EVENTS:
        out.append(Reading(kind, WHEN, value=57 if kind == "battery" else None, unit=None))
    out.append(Reading("battery", WHEN, value=0.42, unit="1", reading_id="b-1"))
    out.append(Reading("fall", WHEN, value=1, reading_id="f" * 300))
    return out


def as_counters(rows) -> tuple[str | None, dict]:
    return rows.patient, {m: Counter(r) for m, r in rows.rows.items() if r}


def test_every_reading_type_is_covered():
    assert {r.type for r in readings()} == set(READING_TYPES)


@pytest.mark.parametrize("gateway", [None, "gw-1"])
@pytest.mark.parametrize("reading", readings(), ids=lambda r: f"{r.type}-{r.unit}-{r.reading_id}")
def test_direct_rows_equal_the_generic_extraction(reading, gateway):
    checked = check(reading, NOW)
    key = identifier("SERIAL-1", "patient-1", checked)
    obs = observation(
        checked, patient="patient-1", device_fhir_id="device-1", key=key, gateway_fhir_id=gateway
    )
    generic = extract("Observation", {**obs, "id": "obs-1"})
    direct = observation_rows(checked, obs)
    assert as_counters(direct) == as_counters(generic)
    assert set(direct.rows) <= set(INDEX_MODELS)


def test_a_stored_reading_has_the_rows_a_reindex_would_give(db):
    """End to end: what the ingest wrote equals what extract makes of the stored JSON."""
    from devices import services
    from devices.adapters import parse_payload
    from fhir_api import json_io
    from fhir_api import services as fhir

    patient = fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Rows"}]}
    ).resource.logical_id
    device = services.register_device("ROWS-1")
    Pairing.objects.create(
        device=device, patient_id=patient, start=datetime(2026, 1, 1, tzinfo=UTC)
    )
    body = {
        "readings": [
            {"type": "heart_rate", "value": 72, "unit": "/min", "time": "2026-11-27T10:00:00Z"},
            {"type": "body_temperature", "value": 99.1, "unit": "[degF]", "time": "2026-11-27T10:00:00Z"},
            {"type": "blood_pressure", "systolic": 130, "diastolic": 85, "unit": "mm[Hg]", "time": "2026-11-27T10:00:00Z"},
            {"type": "fall", "time": "2026-11-27T10:00:00Z", "id": "ev-9"},
        ]
    }  # fmt: skip
    result = services.ingest(Device.objects.get(pk=device.pk), parse_payload(body), source="http")
    assert result.accepted == 4
    for row in Resource.objects.filter(resource_type="Observation"):
        expected = index_rows("Observation", row.logical_id, json_io.loads(row.content))
        stored = {}
        for model in INDEX_MODELS:
            names = ("param", *[c for c in _columns(model)])
            values = model.objects.filter(resource=row).values_list(*names)
            if values:
                stored[model] = Counter(tuple(v) for v in values)
        assert stored == {m: Counter(r) for m, r in expected.rows.items() if r}
        assert set(
            m.objects.filter(resource=row).values_list("patient", flat=True).distinct()[0]
            for m in stored
        ) == {patient}


def _columns(model) -> tuple[str, ...]:
    from fhir_api.search.extract import COLUMNS

    return COLUMNS[model]


@pytest.mark.parametrize(
    "when",
    [
        WHEN,
        datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        datetime(1999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime.fromisoformat("2026-11-27T11:15:30.5+01:00"),
    ],
)
def test_a_readings_instant_is_written_as_format_instant_writes_it(when):
    from devices.readings import _instant
    from fhir_api.search.dates import format_instant

    assert _instant(when) == format_instant(when)
