"""date search (hl7.org/fhir/R4B/search.html#date, #prefix).

A date search value and a stored date are both ranges: ``2026-03`` is the whole month, a
dateTime to the second is that second, a Period is [start, end] and open at a missing end.
The prefixes compare the two ranges as the specification's table says:

- eq: the search range fully contains the target range
- ne: it does not
- gt: the range above the search value overlaps the target
- lt: the range below the search value overlaps the target
- ge: gt, or the search range fully contains the target (le likewise with lt)
- sa: the target starts after the search range ends; eb: it ends before it starts
- ap: approximately (this server: overlapping the search range widened by 10 % of its distance
  from now)

Times without a zone are UTC (the server's zone); times with one are compared as instants.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from .search_support import STRICT, found, get, observation, put, status

# id -> effective[x] of an Observation; comments give the UTC range each covers.
EFFECTIVE = {
    "day": {"effectiveDateTime": "2026-03-05"},  # [03-05, 03-06)
    "month": {"effectiveDateTime": "2026-03"},  # [03-01, 04-01)
    "year": {"effectiveDateTime": "2026"},  # [2026-01-01, 2027-01-01)
    "utc": {"effectiveDateTime": "2026-03-05T10:30:00Z"},  # the second 10:30:00Z
    "plus2": {"effectiveDateTime": "2026-03-05T10:30:00+02:00"},  # 08:30:00Z
    "minus5": {"effectiveDateTime": "2026-03-05T23:30:00-05:00"},  # 03-06T04:30:00Z
    "feb-end": {"effectiveDateTime": "2026-02-28T23:59:59Z"},  # ends exactly at 03-01T00:00Z
    "apr-1": {"effectiveDateTime": "2026-04-01T00:00:00Z"},
    "instant": {"effectiveInstant": "2026-03-05T10:00:00.123Z"},
    "period": {"effectivePeriod": {"start": "2026-03-10", "end": "2026-03-20"}},  # [03-10, 03-21)
    "open-end": {"effectivePeriod": {"start": "2026-03-25T00:00:00Z"}},  # [03-25, ∞)
    "open-start": {"effectivePeriod": {"end": "2026-02-15"}},  # (-∞, 02-16)
    "span": {"effectivePeriod": {"start": "2026-02-15", "end": "2026-03-15"}},  # [02-15, 03-16)
    "none": {},
}
IN_MARCH = {"day", "month", "utc", "plus2", "minus5", "instant", "period"}
WITH_DATE = set(EFFECTIVE) - {"none"}


@pytest.fixture
def dated(api):
    for oid, effective in EFFECTIVE.items():
        put(api, observation(oid, **effective))
    return api


CASES = [
    # eq: the search range contains the target range
    ("2026-03", IN_MARCH),
    ("eq2026-03", IN_MARCH),
    ("2026", WITH_DATE - {"open-end", "open-start"}),
    ("2026-03-05", {"day", "utc", "plus2", "instant"}),
    ("2026-03-06", {"minus5"}),  # 23:30-05:00 is the 6th in UTC
    ("2026-03-05T10", {"utc", "instant"}),  # the hour 10:00 to 11:00 UTC
    ("2026-03-05T10:30", {"utc"}),  # the minute
    ("2026-03-05T10:30:00Z", {"utc"}),
    ("2026-03-05T10:30:00+02:00", {"plus2"}),  # = 08:30:00Z
    ("2026-03-05T08:30:00", {"plus2"}),  # no zone: UTC
    ("2026-03-05T10:00:00.123Z", {"instant"}),
    ("2026-03-05T10:00:00Z", {"instant"}),  # the second contains the millisecond
    ("2026-03-05T10:00:00.124Z", set()),
    ("2026-03-10", set()),  # the period is longer than the day
    # ne: the search range does not contain the target range
    ("ne2026-03", WITH_DATE - IN_MARCH),
    # gt: some of the target is after the search range
    ("gt2026-03", {"year", "apr-1", "open-end"}),
    # lt: some of the target is before it
    ("lt2026-03", {"year", "feb-end", "open-start", "span"}),
    # ge = gt or eq: "span" (02-15…03-15) only reaches into March, so it is neither
    ("ge2026-03", IN_MARCH | {"year", "apr-1", "open-end"}),
    # le = lt or eq: "open-end" (from 03-25 on) is neither
    ("le2026-03", IN_MARCH | {"year", "feb-end", "open-start", "span"}),
    # sa: starts after the search range; eb: ends before it
    ("sa2026-03", {"apr-1"}),
    ("eb2026-03", {"feb-end", "open-start"}),
    ("sa2026-03-20", {"open-end", "apr-1"}),
    ("eb2026-03-10", {"day", "utc", "plus2", "minus5", "instant", "feb-end", "open-start"}),
    # instants on a boundary: feb-end is [23:59:59, 00:00:00) — it does not reach March
    ("gt2026-02-28T23:59:59Z", WITH_DATE - {"feb-end", "open-start"}),
    ("lt2026-03-01T00:00:00Z", {"year", "feb-end", "open-start", "span"}),
    # open-ended periods
    ("gt2100-01-01", {"open-end"}),
    ("lt1900-01-01", {"open-start"}),
    # OR
    ("2026-03-05,2026-04", {"day", "utc", "plus2", "instant", "apr-1"}),
]


def test_prefixes_compare_ranges(dated):
    """Every case against one data set (written once: the writes are the slow part)."""
    got = {value: found(dated, f"Observation?date={quote(value)}") for value, _ in CASES}
    assert got == dict(CASES)


def test_repeated_parameters_are_anded(dated):
    # ge2026-03-05 & le2026-03-05 means: within the day, or overlapping after and before it.
    query = "Observation?date=ge2026-03-05&date=le2026-03-05"
    # minus5 (the 6th) is not le; feb-end and open-start are not ge; period, apr-1 and
    # open-end are not le.
    assert found(dated, query) == {"day", "utc", "plus2", "instant", "month", "year", "span"}


def test_an_unescaped_plus_in_a_time_zone_is_read_as_plus(dated):
    """``+02:00`` typed in a URL arrives as `` 02:00`` (a + in a query is a space); a client
    cannot be expected to escape it, so the server reads the space back as a +."""
    response = dated.fhir("GET", "/fhir/Observation?date=2026-03-05T10:30:00+02:00")
    assert response.status_code == 200, response.json_body
    assert [e["resource"]["id"] for e in response.json_body["entry"]] == ["plus2"]
    assert found(dated, "Observation?date=2026-03-05T10:30:00%2B02:00") == {"plus2"}


def test_missing(dated):
    assert found(dated, "Observation?date:missing=true") == {"none"}
    assert found(dated, "Observation?date:missing=false") == WITH_DATE


@pytest.mark.parametrize(
    "value",
    ["2026-13", "2026-02-30", "tomorrow", "ge", "2026-03-05T25:00", "2026/03/05", "gt2026-3"],
)
def test_invalid_dates_are_400(api, value):
    response = api.fhir("GET", f"/fhir/Observation?date={quote(value)}")
    assert response.status_code == 400
    assert response.json_body["resourceType"] == "OperationOutcome"


def test_ap_is_within_ten_percent_of_the_distance_from_now(api):
    """ap (search.html#prefix): 10 % of the gap between now and the date."""
    today = datetime.now(UTC).date()

    def day(days_ago: int) -> str:
        return (today - timedelta(days=days_ago)).isoformat()

    put(api, observation("exact", effectiveDateTime=day(100)))
    put(api, observation("near", effectiveDateTime=day(108)))  # 8 days off, margin ~10
    put(api, observation("far", effectiveDateTime=day(120)))  # 20 days off
    put(api, observation("recent", effectiveDateTime=day(1)))
    assert found(api, f"Observation?date=ap{day(100)}") == {"exact", "near"}
    assert found(api, f"Observation?date=eq{day(100)}") == {"exact"}


def test_patient_birthdate(api):
    put(api, {"resourceType": "Patient", "id": "p1980", "birthDate": "1980-05-12"})
    put(api, {"resourceType": "Patient", "id": "p1980b", "birthDate": "1980"})
    put(api, {"resourceType": "Patient", "id": "p1999", "birthDate": "1999-12-31"})
    put(api, {"resourceType": "Patient", "id": "unknown"})
    assert found(api, "Patient?birthdate=1980") == {"p1980", "p1980b"}
    assert found(api, "Patient?birthdate=1980-05") == {"p1980"}
    assert found(api, "Patient?birthdate=1980-05-12") == {"p1980"}
    assert found(api, "Patient?birthdate=lt1980-05-12") == {"p1980b"}  # the year starts before
    assert found(api, "Patient?birthdate=le1980-05-12") == {"p1980", "p1980b"}
    assert found(api, "Patient?birthdate=gt1990") == {"p1999"}
    assert found(api, "Patient?birthdate=sa1980-05-12") == {"p1999"}
    assert found(api, "Patient?birthdate=eb1999") == {"p1980", "p1980b"}
    assert found(api, "Patient?birthdate=ne1980-05-12") == {"p1980b", "p1999"}
    assert found(api, "Patient?birthdate:missing=true") == {"unknown"}
    # a day is not within a single second
    assert found(api, "Patient?birthdate=1980-05-12T10:00:00Z") == set()


def test_encounter_date_is_its_period(api):
    def encounter(eid, period):
        return {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished" if "end" in period else "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": period,
        }

    put(api, encounter("morning", {"start": "2026-03-01T08:00:00Z", "end": "2026-03-01T12:00:00Z"}))
    put(api, encounter("ongoing", {"start": "2026-03-02T09:00:00+01:00"}))
    put(
        api,
        encounter("overnight", {"start": "2026-03-01T22:00:00Z", "end": "2026-03-02T06:00:00Z"}),
    )
    assert found(api, "Encounter?date=2026-03-01") == {"morning"}
    assert found(api, "Encounter?date=2026-03") == {"morning", "overnight"}  # ongoing has no end
    assert found(api, "Encounter?date=ge2026-03-10") == {"ongoing"}
    assert found(api, "Encounter?date=lt2026-03-02") == {"morning", "overnight"}
    assert found(api, "Encounter?date=gt2026-03-01") == {"ongoing", "overnight"}
    assert found(api, "Encounter?date=sa2026-03-01") == {"ongoing"}
    assert found(api, "Encounter?date=eb2026-03-02") == {"morning"}
    assert found(api, "Encounter?date=2026-03-01T10") == set()  # 08h-12h is not within 10h-11h
    assert found(api, "Encounter?date=ap2026-03-01T10") >= {"morning"}


def test_last_updated(api):
    first = put(api, {"resourceType": "Patient", "id": "first"})["meta"]["lastUpdated"]
    second = put(api, {"resourceType": "Patient", "id": "second"})["meta"]["lastUpdated"]
    assert first < second
    today = first[:10]
    assert found(api, f"Patient?_lastUpdated={today}") == {"first", "second"}
    assert found(api, f"Patient?_lastUpdated=eq{quote(first)}") == {"first"}
    assert found(api, f"Patient?_lastUpdated=ne{quote(first)}") == {"second"}
    assert found(api, f"Patient?_lastUpdated=gt{quote(first)}") == {"second"}
    assert found(api, f"Patient?_lastUpdated=ge{quote(first)}") == {"first", "second"}
    assert found(api, f"Patient?_lastUpdated=lt{quote(second)}") == {"first"}
    assert found(api, f"Patient?_lastUpdated=le{quote(second)}") == {"first", "second"}
    assert found(api, f"Patient?_lastUpdated=sa{quote(first)}") == {"second"}
    assert found(api, f"Patient?_lastUpdated=eb{quote(second)}") == {"first"}
    assert found(api, f"Patient?_lastUpdated=lt{today}") == set()
    assert found(api, f"Patient?_lastUpdated=ap{quote(first)}") >= {"first"}
    # the same instant written in another zone
    instant = datetime.fromisoformat(first.replace("Z", "+00:00"))
    text = instant.astimezone(timezone(timedelta(hours=-3))).isoformat(timespec="microseconds")
    assert found(api, f"Patient?_lastUpdated={quote(text)}") == {"first"}
    assert status(api, "Patient?_lastUpdated=yesterday") == 400


def test_unknown_date_param_is_refused_when_strict(api):
    assert status(api, "Observation?datex=2026", **STRICT) == 400
    assert get(api, "Observation?datex=2026").get("total") == 0
