"""Hostile search input never makes a 500 (hl7.org/fhir/R4B/search.html#errors).

Every request below is answered 200 or a 4xx OperationOutcome, on SQLite and on PostgreSQL
(which refuses NUL characters in text and overflows on numbers past 64 bits): huge numbers,
NUL bytes, garbage prefixes, unknown modifiers, malformed quantities and composites, chains on
parameters that are not references, bad ``_include``/``_sort``/``_has``, repeated and very long
parameters, and the same for ``$lastn`` and ``$everything``.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from .search_helpers import STRICT, create, observation, put

HUGE = "1" + "0" * 20
ENORMOUS = "9" * 5000  # more digits than Python turns into an int by default
NUL = "%00"
LONG = "a" * 20_000

QUERIES = {
    "numbers": [
        f"Observation?_offset={HUGE}",
        f"Observation?_count={HUGE}",
        f"Observation?_count={ENORMOUS}",
        f"Observation?_offset={ENORMOUS}",
        f"Observation?_snapshot={HUGE}",
        "Observation?_count=%C2%B2",  # ² is a digit to Python
        "Observation?_offset=%D9%A3",  # Arabic-Indic three
        "Observation?_count=-1",
        "Observation?_count=1&_count=2",
        f"Observation?_sort=date&_offset={HUGE}",
        f"Observation?_sort=-date&_count={HUGE}",
        f"?_type=Observation&_offset={HUGE}",
    ],
    "the ends of the calendar": [
        "Observation?date=9999-12-31T23:59:59Z",
        "Observation?date=9999-12-31T23:59:59.999999Z",
        "Observation?date=gt9999-12-31",
        "Observation?date=ge9999",
        "Observation?date=sa9999-12-31",
        "Observation?date=ap9999-12-31",
        "Observation?date=lt0001-01-01",
        "Observation?date=eb0001-01-01",
        "Observation?date=ap0001-01-01",
        "Observation?date=0001-01-01T00:00:00%2B14:00",
        "Observation?date=9999-12-31T23:00:00-14:00",
        "Observation?date=9999",
        "Observation?date=9999-12",
        "Observation?_lastUpdated=gt9999-12-31",
        "Observation?_lastUpdated=ap0001-01-01",
        "Observation?_lastUpdated=lt0001-01-01T00:00:00%2B01:00",
        "Patient?birthdate=ne9999-12-31",
        "Observation?date=2026-13-01",
        "Observation?date=2026-02-30",
        "Observation?date=2026-01-01T25:00",
        "Observation?date=2026-01-01T10:00:00%2B99:00",
        "Observation?date=xx2026",
        "Observation?date=gt",
    ],
    "NUL anywhere": [
        f"Observation?code={NUL}",
        f"Observation?code=http://loinc.org|{NUL}",
        f"Observation?code:text={NUL}",
        f"Patient?name={NUL}",
        f"Patient?name:exact=a{NUL}b",
        f"Patient?_id={NUL}",
        f"Observation?subject=Patient/{NUL}",
        f"Observation?subject:identifier=a|{NUL}",
        f"Observation?value-quantity=5|{NUL}|kg",
        f"Observation?code-value-quantity=a{NUL}$5",
        f"Observation?{NUL}=x",
        f"Observation?code{NUL}=x",
        f"Observation?_sort={NUL}",
        f"Observation?_include=Observation:{NUL}",
        f"Observation?_has:Observation:{NUL}:code=x",
        f"Observation?subject:Patient.name={NUL}",
        f"Observation?_list={NUL}",
        f"Observation?_tag=a|{NUL}",
        f"Observation?_profile={NUL}",
        f"Observation?date=2026{NUL}",
        f"?_type=Patient&_id={NUL}",
    ],
    "quantities and numbers": [
        "Observation?value-quantity=zz5",
        "Observation?value-quantity=gtabc",
        "Observation?value-quantity=5|",
        "Observation?value-quantity=5|||",
        "Observation?value-quantity=1e400",
        "Observation?value-quantity=-1e400",
        "Observation?value-quantity=1e-400",
        "Observation?value-quantity=NaN",
        "Observation?value-quantity=Infinity",
        "Observation?value-quantity=ap0",
        "Observation?value-quantity=" + "9" * 400,
        "Observation?value-quantity=5|http://unitsofmeasure.org|%5Bfoo%5D",
        "Observation?value-quantity=5||kg/0",
        "RiskAssessment?probability=1e999999",
        "RiskAssessment?probability=gt%2B",
    ],
    "modifiers": [
        "Observation?code:foo=x",
        "Observation?code:in=x",
        "Patient?name:below=x",
        "Observation?date:exact=2026",
        "Observation?subject:Foo=1",
        "Observation?subject:identifier=",
        "Observation?code:of-type=a|b",
        "Observation?code:missing=maybe",
        "Observation?_id:missing=x",
    ],
    "composites": [
        "Observation?code-value-quantity=a",
        "Observation?code-value-quantity=$",
        "Observation?code-value-quantity=a$",
        "Observation?code-value-quantity=$5",
        "Observation?code-value-quantity=a$b$c",
        "Observation?code-value-quantity=a$gtx",
        "Observation?component-code-value-quantity=http://loinc.org|8480-6$gtx",
        "Observation?code-value-concept=a$",
        "Observation?combo-code-value-quantity=a$1e999",
        "Observation?code-value-date=a$9999-12-31T23:59:59Z",
        "Observation?code-value-date=a$gt9999-12-31",
    ],
    "chains and _has": [
        "Observation?code.name=x",
        "Observation?date.x=1",
        "Observation?subject.foo=x",
        "Observation?subject:Patient.foo=x",
        "Observation?subject.=x",
        "Observation?subject:Patient.organization.partof.partof.partof.name=x",
        "Observation?_has=x",
        "Observation?_has:Observation=x",
        "Observation?_has:Observation:patient=x",
        "Patient?_has:Foo:patient:code=x",
        "Patient?_has:Observation:code:code=x",
        "Patient?_has:Observation:patient:_has:Observation:patient:code=x",
    ],
    "_include": [
        "Observation?_include=Observation:foo",
        "Observation?_include=Foo:bar",
        "Observation?_include=:",
        "Observation?_include=Observation",
        "Observation?_include=Observation:subject:Foo",
        "Observation?_include:weird=Observation:subject",
        "Observation?_revinclude=Foo:bar:baz:qux",
        "Observation?_include:iterate=*",
        "Observation?_sort=foo",
        "Observation?_sort=-",
        "Observation?_sort=,,,",
        "Observation?_sort=-foo,bar,code",
        "Observation?_sort=date&_sort=code",
        "Observation?_total=x",
        "Observation?_summary=x",
        "Observation?_elements=",
        "Observation?_elements=%2C%2C",
        "Observation?_contained=true",
        "?_type=Foo",
        "?_type=",
    ],
    "very long values": [
        f"Observation?code={LONG}",
        f"Observation?code={LONG}|{LONG}",
        f"Patient?name={LONG}",
        f"Patient?name:contains={LONG}",
        f"Observation?subject=Patient/{LONG}",
        f"Observation?_id={LONG}",
        f"Observation?_sort={LONG}",
        f"Observation?_include=Observation:{LONG}",
        f"Observation?{LONG}=x",
        f"Observation?date={LONG}",
        f"Observation?value-quantity={LONG}",
        "Observation?code=" + ",".join(["x"] * 2000),
        "Observation?" + "&".join(["code=x"] * 300),
        "Observation?" + "&".join(["_include=Observation:subject"] * 300),
        "Observation?"
        + "&".join(f"_include=Observation:subject:{t}" for t in ("Patient", "Group") * 40),
        "Observation?_sort=" + ",".join(["code"] * 2000),
    ],
    "operations": [
        f"Observation/$lastn?patient=p1&max={HUGE}",
        f"Observation/$lastn?patient=p1&max={ENORMOUS}",
        "Observation/$lastn?patient=p1&max=0",
        "Observation/$lastn?patient=p1&max=%C2%B2",
        f"Observation/$lastn?patient={NUL}",
        f"Observation/$lastn?patient=p1&code={NUL}",
        f"Observation/$lastn?patient=Patient/{LONG}",
        "Observation/$lastn?patient=p1&date=gt9999-12-31",
        f"Patient/p1/$everything?_count={HUGE}",
        f"Patient/p1/$everything?_count={ENORMOUS}",
        f"Patient/p1/$everything?_snapshot={HUGE}",
        f"Patient/p1/$everything?_cursor=m{HUGE}",
        "Patient/p1/$everything?_since=9999-12-31T23:59:59Z",
        "Patient/p1/$everything?start=9999-12-31&end=9999-12-31",
        f"Patient/p1/$everything?_type={NUL}",
        f"Patient/p1/$everything?_since={NUL}",
    ],
}


@pytest.fixture
def data(api):
    put(api, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Ng"}]})
    create(api, observation("Patient/p1", "8867-4", value=72, unit="/min"))


def problem(response, query: str) -> str | None:
    """What is wrong with the answer to a hostile query, if anything."""
    if response.status_code >= 500:
        return f"{response.status_code}: {query[:120]}"
    expected = "OperationOutcome" if response.status_code >= 400 else "Bundle"
    if (response.json_body or {}).get("resourceType") != expected:
        return f"{response.status_code} without an {expected}: {query[:120]}"
    return None


@pytest.mark.parametrize("group", QUERIES)
def test_no_500(api, data, group):
    problems = []
    for query in QUERIES[group]:
        for headers in ({}, STRICT):
            found = problem(api.fhir("GET", f"/fhir/{query}", **headers), query)
            if found:
                problems.append(found)
    assert problems == []


def test_no_500_by_post(api, data):
    problems = []
    for body in (
        {"code": "a\x00b"},
        {"_count": HUGE},
        {"_offset": HUGE},
        {"date": "gt9999-12-31"},
        {"subject": "Patient/\x00"},
    ):
        form = "&".join(f"{quote(k)}={quote(v)}" for k, v in body.items())
        response = api.fhir(
            "POST",
            "/fhir/Observation/_search",
            form,
            content_type="application/x-www-form-urlencoded",
        )
        found = problem(response, form)
        if found:
            problems.append(found)
    assert problems == []


def test_a_nul_byte_is_a_400(api, data):
    response = api.fhir("GET", f"/fhir/Observation?code={NUL}")
    assert response.status_code == 400
    assert "NUL" in response.json_body["issue"][0]["diagnostics"]


def test_an_offset_no_database_can_hold_is_a_400_and_a_huge_count_is_the_maximum(
    api, data, settings
):
    assert api.fhir("GET", f"/fhir/Observation?_offset={HUGE}").status_code == 400
    body = api.fhir("GET", f"/fhir/Observation?_count={HUGE}").json_body
    self_link = next(link["url"] for link in body["link"] if link["relation"] == "self")
    assert f"_count={settings.FHIR_MAX_COUNT}" in self_link
    assert len(body["entry"]) == 1
    # An offset past the last match is an empty page, not an error.
    body = api.fhir("GET", f"/fhir/Observation?_offset={2**63 - 1}").json_body
    assert body["total"] == 1 and not body.get("entry")
