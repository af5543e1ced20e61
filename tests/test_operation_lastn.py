"""Observation/$lastn (hl7.org/fhir/R4B/observation-operation-lastn.html)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
HR, BP, TEMP, GLUCOSE = "8867-4", "85354-9", "8310-5", "2339-0"


def put(api, resource: dict) -> dict:
    response = api.fhir("PUT", f"/fhir/{resource['resourceType']}/{resource['id']}", resource)
    assert response.status_code in (200, 201), response.json_body
    return response.json_body


def observation(
    api,
    ident: str,
    code: str | list[dict] | dict,
    when: str | None,
    *,
    patient: str = "p1",
    category: str = "vital-signs",
    status: str = "final",
    **extra,
) -> dict:
    if isinstance(code, str):
        concept = {"coding": [{"system": LOINC, "code": code}]}
    elif isinstance(code, list):
        concept = {"coding": code}
    else:
        concept = code
    body = {
        "resourceType": "Observation",
        "id": ident,
        "status": status,
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": concept,
        "subject": {"reference": f"Patient/{patient}"},
        **extra,
    }
    if when is not None:
        body["effectiveDateTime"] = when
    return put(api, body)


@pytest.fixture
def vitals(api) -> None:
    """p1: four heart rates, two blood pressures, a temperature, two glucose labs; p2: newer."""
    put(
        api,
        {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "mrn", "value": "1"}]},
    )
    put(api, {"resourceType": "Patient", "id": "p2"})
    observation(api, "hr-1", HR, "2024-01-01T08:00:00Z")
    observation(api, "hr-4", HR, "2024-01-04T08:00:00Z")
    observation(api, "hr-2", HR, "2024-01-02T08:00:00Z")
    observation(api, "hr-3", HR, "2024-01-03T08:00:00+02:00")
    observation(api, "bp-1", BP, "2024-01-01T09:00:00Z")
    observation(api, "bp-2", BP, "2024-01-02T09:00:00Z")
    observation(api, "temp-1", TEMP, "2024-01-01T10:00:00Z")
    observation(api, "glu-1", GLUCOSE, "2023-12-01", category="laboratory")
    observation(api, "glu-2", GLUCOSE, "2023-12-15", category="laboratory")
    observation(api, "hr-p2", HR, "2025-01-01T08:00:00Z", patient="p2")
    observation(api, "temp-p2", TEMP, "2025-01-01T08:00:00Z", patient="p2")


def lastn(api, query: str, status: int = 200, **headers) -> dict:
    response = api.fhir("GET", f"/fhir/Observation/$lastn?{query}", **headers)
    assert response.status_code == status, response.json_body
    return response.json_body


def ids(bundle: dict) -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", [])  # a Bundle with no results has no entry
        if e["resource"]["resourceType"] == "Observation" and e["search"]["mode"] == "match"
    ]


def test_the_most_recent_of_each_code(api, vitals):
    bundle = lastn(api, "patient=p1")
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 4
    # Groups in the order of their codes (system|code), one Observation each by default.
    assert ids(bundle) == ["glu-2", "temp-1", "bp-2", "hr-4"]
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"http://testserver/fhir/Observation/{entry['resource']['id']}"
        assert entry["search"]["mode"] == "match"
    self_link = next(k["url"] for k in bundle["link"] if k["relation"] == "self")
    assert self_link.startswith("http://testserver/fhir/Observation/$lastn?")
    assert "max=1" in self_link


def test_max_gives_the_n_most_recent_grouped_by_code(api, vitals):
    bundle = lastn(api, "patient=p1&max=3")
    assert ids(bundle) == ["glu-2", "glu-1", "temp-1", "bp-2", "bp-1", "hr-4", "hr-3", "hr-2"]
    codes = [e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]]
    # Grouped: each code's entries are together.
    assert codes == sorted(codes, key=codes.index)
    assert ids(lastn(api, "patient=p1&max=100")).count("hr-1") == 1


def test_time_zones_decide_what_is_recent(api, vitals):
    # hr-3 is 2024-01-03T06:00Z, before hr-4 and after hr-2.
    assert ids(lastn(api, f"patient=p1&code={HR}&max=3")) == ["hr-4", "hr-3", "hr-2"]


def test_category_and_code_filters(api, vitals):
    assert ids(lastn(api, "patient=p1&category=vital-signs")) == ["temp-1", "bp-2", "hr-4"]
    assert ids(lastn(api, f"patient=p1&category={CATEGORY}|laboratory&max=5")) == [
        "glu-2",
        "glu-1",
    ]
    assert ids(lastn(api, f"patient=p1&code={HR}&max=2")) == ["hr-4", "hr-3"]
    both = lastn(api, f"patient=p1&code={LOINC}|{HR},{LOINC}|{TEMP}")
    assert ids(both) == ["temp-1", "hr-4"]
    assert ids(lastn(api, f"patient=p1&code={LOINC}|&category=vital-signs")) == [
        "temp-1",
        "bp-2",
        "hr-4",
    ]
    assert ids(lastn(api, "patient=p1&code=nothing-like-it")) == []
    assert ids(lastn(api, "patient=p1&category=vital-signs&code=2339-0")) == []


def test_other_search_parameters_are_anded(api, vitals):
    observation(api, "hr-5", HR, "2024-01-05T08:00:00Z", status="preliminary")
    assert ids(lastn(api, f"patient=p1&code={HR}")) == ["hr-5"]
    assert ids(lastn(api, f"patient=p1&code={HR}&status=final")) == ["hr-4"]
    assert ids(lastn(api, f"patient=p1&code={HR}&date=le2024-01-02&max=5")) == ["hr-2", "hr-1"]
    assert ids(lastn(api, "patient=p1&_id=hr-1,bp-1,temp-1")) == ["temp-1", "bp-1", "hr-1"]


def test_a_newer_observation_changes_the_answer(api, vitals):
    assert ids(lastn(api, f"patient=p1&code={HR}")) == ["hr-4"]
    observation(api, "hr-9", HR, "2024-02-01T08:00:00Z")
    assert ids(lastn(api, f"patient=p1&code={HR}")) == ["hr-9"]
    # Moving an observation's time moves it in the ranking.
    observation(api, "hr-1", HR, "2024-03-01T08:00:00Z")
    assert ids(lastn(api, f"patient=p1&code={HR}&max=2")) == ["hr-1", "hr-9"]


def test_deleted_observations_are_left_out(api, vitals):
    assert api.fhir("DELETE", "/fhir/Observation/hr-4").status_code == 204
    assert ids(lastn(api, f"patient=p1&code={HR}&max=2")) == ["hr-3", "hr-2"]
    assert api.fhir("DELETE", "/fhir/Observation/temp-1").status_code == 204
    assert ids(lastn(api, "patient=p1&category=vital-signs")) == ["bp-2", "hr-3"]


def test_another_patients_observations_are_left_out(api, vitals):
    assert "hr-p2" not in ids(lastn(api, "patient=p1&max=10"))
    assert ids(lastn(api, "patient=p2")) == ["temp-p2", "hr-p2"]
    assert ids(lastn(api, "patient=nobody")) == []


def test_the_ways_to_name_the_patient(api, vitals):
    expected = ids(lastn(api, "patient=p1&max=2"))
    for query in (
        "patient=Patient/p1",
        "subject=Patient/p1",
        "subject:Patient=p1",
        "subject=p1",
        "patient.identifier=mrn|1",
        "patient=http://elsewhere.example/fhir/Patient/p1",
        "patient=p1&subject=Patient/p1",
    ):
        assert ids(lastn(api, f"{query}&max=2")) == expected, query
    # Two patients: each patient's groups in turn.
    assert ids(lastn(api, f"patient=p1,p2&code={HR}")) == ["hr-4", "hr-p2"]
    assert ids(lastn(api, "patient=p1&subject=Patient/p2")) == []


def test_the_patient_is_required(api, vitals):
    for query in ("code=8867-4", "", "category=vital-signs", "subject:missing=false"):
        bundle = lastn(api, query, status=400)
        assert bundle["resourceType"] == "OperationOutcome"
        assert "patient" in bundle["issue"][0]["diagnostics"]
    bundle = lastn(api, "subject=Group/g1", status=400)
    assert bundle["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", "100000"])
def test_a_bad_max_is_refused(api, vitals, value):
    bundle = lastn(api, f"patient=p1&max={value}", status=400)
    assert bundle["resourceType"] == "OperationOutcome"
    assert "max" in bundle["issue"][0]["diagnostics"]


def test_other_bad_input_is_refused(api, vitals):
    assert lastn(api, "patient=p1&max=1&max=2", status=400)["resourceType"] == "OperationOutcome"
    assert lastn(api, "patient=p1&date=yesterday", status=400)["resourceType"] == "OperationOutcome"
    assert lastn(api, "patient=p1&code=|", status=400)["resourceType"] == "OperationOutcome"
    strict = lastn(api, "patient=p1&colour=red", status=400, HTTP_PREFER="handling=strict")
    assert strict["resourceType"] == "OperationOutcome"
    lenient = lastn(api, "patient=p1&colour=red&_count=5")
    assert ids(lenient) == ["glu-2", "temp-1", "bp-2", "hr-4"]
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]


def test_codings_of_one_observation_are_one_code(api, vitals):
    snomed = "http://snomed.info/sct"
    # A has X, B has Y, C has X and Y: one group (the transitive rule of the specification).
    observation(api, "a", [{"system": snomed, "code": "X"}], "2024-06-01T00:00:00Z")
    observation(api, "b", [{"system": snomed, "code": "Y"}], "2024-06-03T00:00:00Z")
    observation(
        api,
        "c",
        [{"system": snomed, "code": "X"}, {"system": snomed, "code": "Y"}],
        "2024-06-02T00:00:00Z",
    )
    bundle = lastn(api, f"patient=p1&code={snomed}|X,{snomed}|Y&max=5")
    assert ids(bundle) == ["b", "c", "a"]
    assert ids(lastn(api, f"patient=p1&code={snomed}|X,{snomed}|Y")) == ["b"]
    # Asked for X alone: C and A, the Observations coded X.
    assert ids(lastn(api, f"patient=p1&code={snomed}|X&max=5")) == ["c", "a"]


def test_text_only_codes_are_grouped_by_their_text(api, vitals):
    observation(api, "t1", {"text": "Pain score"}, "2024-05-01T00:00:00Z")
    observation(api, "t2", {"text": "Pain score"}, "2024-05-02T00:00:00Z")
    observation(api, "t3", {"text": "Mood"}, "2024-05-03T00:00:00Z")
    got = ids(lastn(api, "patient=p1&_id=t1,t2,t3&max=5"))
    assert got == ["t3", "t2", "t1"]  # "mood" group, then "pain score"


def test_ties_and_missing_effective_times(api, vitals):
    observation(api, "same-a", TEMP, "2024-01-01T10:00:00Z")  # same time as temp-1, written later
    assert ids(lastn(api, f"patient=p1&code={TEMP}&max=2")) == ["same-a", "temp-1"]
    observation(api, "temp-1", TEMP, "2024-01-01T10:00:00Z", note=[{"text": "checked"}])
    assert ids(lastn(api, f"patient=p1&code={TEMP}&max=2")) == ["temp-1", "same-a"]
    observation(api, "no-time", TEMP, None)
    assert ids(lastn(api, f"patient=p1&code={TEMP}&max=5")) == ["temp-1", "same-a", "no-time"]
    period = {"start": "2024-01-01T11:00:00Z", "end": "2024-01-01T12:00:00Z"}
    observation(api, "period", TEMP, None, effectivePeriod=period)
    assert ids(lastn(api, f"patient=p1&code={TEMP}")) == ["period"]


def test_an_observation_performed_by_the_patient_about_someone_else(api, vitals):
    # Its index rows carry p1 (the compartment's performer), but its subject is not a Patient:
    # patient=p1 (subject) must not return it, and must still return max of the code.
    put(api, {"resourceType": "Group", "id": "g1", "type": "person", "actual": True})
    put(
        api,
        {
            "resourceType": "Observation",
            "id": "hr-group",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": HR}]},
            "subject": {"reference": "Group/g1"},
            "performer": [{"reference": "Patient/p1"}],
            "effectiveDateTime": "2030-01-01T00:00:00Z",
        },
    )
    assert ids(lastn(api, f"patient=p1&code={HR}&max=2")) == ["hr-4", "hr-3"]


def test_post_include_and_elements(api, vitals):
    response = api.fhir(
        "POST",
        "/fhir/Observation/$lastn",
        f"patient=p1&code={HR}&max=2",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200, response.json_body
    assert ids(response.json_body) == ["hr-4", "hr-3"]
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueString": "p1"},
            {"name": "max", "valuePositiveInt": 2},
            {"name": "code", "valueString": HR},
        ],
    }
    response = api.fhir("POST", "/fhir/Observation/$lastn", parameters)
    assert response.status_code == 200, response.json_body
    assert ids(response.json_body) == ["hr-4", "hr-3"]

    bundle = lastn(api, f"patient=p1&code={HR}&_include=Observation:subject")
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in included] == ["p1"]
    bundle = lastn(api, f"patient=p1&code={HR}&_elements=code")
    assert "effectiveDateTime" not in bundle["entry"][0]["resource"]
    assert bundle["entry"][0]["resource"]["code"]["coding"][0]["code"] == HR


def test_the_answer_is_the_brute_force_answer(api):
    """Many Observations: codes measured often, seldom and long ago, equal times, no time at
    all, deletions, filters."""
    rng = random.Random(2026)
    put(api, {"resourceType": "Patient", "id": "p1"})
    plan = [("8867-4", 120, 0), ("8310-5", 90, 0), ("2339-0", 25, 400), ("8302-2", 3, 3000)]
    plan += [("29463-7", 2, None), ("9279-1", 15, 0)]
    entries, written = [], []
    for code, n, days_ago in plan:
        for i in range(n):
            ident = f"{code}-{i}"
            when = None
            if days_ago is not None and rng.random() > 0.05:
                minutes = rng.randrange(0, 60 * 24 * 60) // 30 * 30  # on the half hour: ties
                start = datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=days_ago)
                when = (start - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = {
                "resourceType": "Observation",
                "id": ident,
                "status": rng.choice(["final", "final", "amended"]),
                "category": [
                    {"coding": [{"system": CATEGORY, "code": rng.choice(["vital-signs", "lab"])}]}
                ],
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": {"reference": "Patient/p1"},
            }
            if when:
                body["effectiveDateTime"] = when
            entries.append(
                {"resource": body, "request": {"method": "PUT", "url": f"Observation/{ident}"}}
            )
            written.append(body)
    rng.shuffle(entries)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = api.fhir("POST", "/fhir", bundle)
    assert response.status_code == 200, response.json_body
    order = {e["resource"]["id"]: i for i, e in enumerate(entries)}
    deleted = set(rng.sample(sorted(order), 25))
    for ident in deleted:
        assert api.fhir("DELETE", f"/fhir/Observation/{ident}").status_code == 204
    updated = {}
    for entry in response.json_body["entry"]:
        resource = api.fhir("GET", entry["response"]["location"].split("/_history")[0][5:])
        if resource.status_code == 200:
            updated[resource.json_body["id"]] = resource.json_body["meta"]["lastUpdated"]

    def expected(maximum: int, keep) -> list[str]:
        groups: dict[str, list[dict]] = {}
        for body in written:
            if body["id"] in deleted or not keep(body):
                continue
            groups.setdefault(body["code"]["coding"][0]["code"], []).append(body)
        out = []
        for code in sorted(groups):
            ranked = sorted(
                groups[code],
                key=lambda b: (
                    "effectiveDateTime" in b,
                    b.get("effectiveDateTime", ""),
                    updated[b["id"]],
                    order[b["id"]],
                ),
                reverse=True,
            )
            out += [b["id"] for b in ranked[:maximum]]
        return out

    def category(b: dict) -> str:
        return b["category"][0]["coding"][0]["code"]

    for maximum in (1, 2, 5, 30):
        assert ids(lastn(api, f"patient=p1&max={maximum}")) == expected(maximum, lambda b: True)
        got = ids(lastn(api, f"patient=p1&max={maximum}&category=lab"))
        assert got == expected(maximum, lambda b: category(b) == "lab")
        got = ids(lastn(api, f"patient=p1&max={maximum}&code=8302-2,8867-4&status=amended"))
        assert got == expected(
            maximum,
            lambda b: (
                b["status"] == "amended" and b["code"]["coding"][0]["code"] in ("8302-2", "8867-4")
            ),
        )
