"""Patient/[id]/$everything (hl7.org/fhir/R4B/patient-operation-everything.html)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from fhir_api import json_io

FORM = "application/x-www-form-urlencoded"


def put(api, resource: dict) -> dict:
    response = api.fhir("PUT", f"/fhir/{resource['resourceType']}/{resource['id']}", resource)
    assert response.status_code in (200, 201), response.json_body
    return response.json_body


def ref(target: str) -> dict:
    return {"reference": target}


def code(value: str, system: str = "http://loinc.org") -> dict:
    return {"coding": [{"system": system, "code": value}]}


@pytest.fixture
def record(api) -> dict[str, set[str]]:
    """Patient p1 with a clinical record, another patient p2 with theirs, and who they point to.

    Returns what $everything of p1 must give: matches (p1 and its compartment) and includes.
    """
    put(api, {"resourceType": "Organization", "id": "org1", "name": "General Hospital"})
    put(api, {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Who"}]})
    put(api, {"resourceType": "Practitioner", "id": "pr2", "name": [{"family": "Other"}]})
    put(api, {"resourceType": "Location", "id": "loc1", "name": "Ward 3"})
    put(api, {"resourceType": "Medication", "id": "med1", "code": code("197361", "rxnorm")})
    put(api, {"resourceType": "Device", "id": "dev-unused", "status": "active"})
    put(
        api,
        {
            "resourceType": "Patient",
            "id": "p1",
            "generalPractitioner": [ref("Practitioner/pr1")],
            "managingOrganization": ref("Organization/org1"),
        },
    )
    put(api, {"resourceType": "Patient", "id": "p2"})
    put(
        api,
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": ref("Patient/p1"),
            "participant": [{"individual": ref("Practitioner/pr1")}],
            "serviceProvider": ref("Organization/org1"),
            "location": [{"location": ref("Location/loc1")}],
            "period": {"start": "2024-05-01T09:00:00Z", "end": "2024-05-01T10:00:00Z"},
        },
    )
    put(
        api,
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": ref("Patient/p1"),
            "encounter": ref("Encounter/e1"),
            "code": code("44054006", "http://snomed.info/sct"),
            "onsetDateTime": "2019-02-03",
        },
    )
    for ident, when in (("o1", "2024-05-01T09:30:00Z"), ("o2", "2020-01-01T08:00:00Z")):
        put(
            api,
            {
                "resourceType": "Observation",
                "id": ident,
                "status": "final",
                "code": code("8867-4"),
                "subject": ref("Patient/p1"),
                "performer": [ref("Practitioner/pr1")],
                "encounter": ref("Encounter/e1"),
                "effectiveDateTime": when,
            },
        )
    put(
        api,
        {
            "resourceType": "MedicationRequest",
            "id": "mr1",
            "status": "active",
            "intent": "order",
            "subject": ref("Patient/p1"),
            "medicationReference": ref("Medication/med1"),
            "requester": ref("Practitioner/pr1"),
            "authoredOn": "2024-05-01",
        },
    )
    put(
        api,
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": ref("Patient/p1"),
            "code": code("227493005", "http://snomed.info/sct"),
        },
    )
    put(
        api,
        {
            "resourceType": "Procedure",
            "id": "proc1",
            "status": "completed",
            "subject": ref("Patient/p1"),
            "performedDateTime": "2024-05-01",
        },
    )
    # Gone: not part of the record any more.
    put(
        api,
        {
            "resourceType": "Observation",
            "id": "o-gone",
            "status": "final",
            "code": code("8867-4"),
            "subject": ref("Patient/p1"),
        },
    )
    assert api.fhir("DELETE", "/fhir/Observation/o-gone").status_code == 204
    # The other patient's record, and a practitioner only it references.
    put(
        api,
        {
            "resourceType": "Observation",
            "id": "o-p2",
            "status": "final",
            "code": code("8867-4"),
            "subject": ref("Patient/p2"),
            "performer": [ref("Practitioner/pr2")],
        },
    )
    put(
        api,
        {
            "resourceType": "Condition",
            "id": "c-p2",
            "subject": ref("Patient/p2"),
            "code": code("44054006", "http://snomed.info/sct"),
        },
    )
    return {
        "match": {
            "Patient/p1",
            "Encounter/e1",
            "Condition/c1",
            "Observation/o1",
            "Observation/o2",
            "MedicationRequest/mr1",
            "AllergyIntolerance/a1",
            "Procedure/proc1",
        },
        "include": {"Practitioner/pr1", "Organization/org1", "Location/loc1", "Medication/med1"},
    }


def local(url: str) -> str:
    return url[url.index("/fhir/") :]


def entries(bundle: dict, mode: str | None = None) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
        if e["search"]["mode"] != "outcome" and (mode is None or e["search"]["mode"] == mode)
    ]


def link(bundle: dict, relation: str) -> str | None:
    return next((k["url"] for k in bundle["link"] if k["relation"] == relation), None)


def everything(api, query: str = "", patient: str = "p1", **headers) -> dict:
    response = api.fhir("GET", f"/fhir/Patient/{patient}/$everything{query}", **headers)
    assert response.status_code == 200, response.json_body
    return response.json_body


def all_pages(api, url: str) -> list[dict]:
    pages = []
    while url:
        response = api.fhir("GET", local(url))
        assert response.status_code == 200, response.json_body
        pages.append(response.json_body)
        url = link(response.json_body, "next")
    return pages


def test_everything_returns_the_patient_its_compartment_and_what_they_reference(api, record):
    bundle = everything(api)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert entries(bundle)[0] == "Patient/p1"
    assert set(entries(bundle, "match")) == record["match"]
    assert set(entries(bundle, "include")) == record["include"]
    assert len(entries(bundle)) == len(record["match"]) + len(record["include"])
    assert bundle["total"] == len(record["match"])
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert (
            entry["fullUrl"]
            == f"http://testserver/fhir/{resource['resourceType']}/{resource['id']}"
        )
    assert link(bundle, "self").startswith("http://testserver/fhir/Patient/p1/$everything?")


def test_nothing_of_another_patient(api, record):
    got = set(entries(everything(api)))
    for other in ("Patient/p2", "Observation/o-p2", "Condition/c-p2", "Practitioner/pr2"):
        assert other not in got
    assert "Observation/o-gone" not in got  # deleted
    assert "Device/dev-unused" not in got  # referenced by nothing of p1

    theirs = everything(api, patient="p2")
    assert set(entries(theirs, "match")) == {"Patient/p2", "Observation/o-p2", "Condition/c-p2"}
    assert set(entries(theirs, "include")) == {"Practitioner/pr2"}


def test_a_resource_in_the_compartment_through_another_parameter(api, record):
    # Observation.performer is a Patient compartment parameter too: p1 reported this one about p2.
    put(
        api,
        {
            "resourceType": "Observation",
            "id": "o-by-p1",
            "status": "final",
            "code": code("8867-4"),
            "subject": ref("Patient/p2"),
            "performer": [ref("Patient/p1")],
        },
    )
    assert "Observation/o-by-p1" in entries(everything(api), "match")
    assert "Observation/o-by-p1" in entries(everything(api, patient="p2"), "match")


def test_unknown_and_deleted_patients(api, record):
    missing = api.fhir("GET", "/fhir/Patient/nobody/$everything")
    assert missing.status_code == 404
    assert missing.json_body["resourceType"] == "OperationOutcome"
    assert api.fhir("DELETE", "/fhir/Patient/p2").status_code == 204
    gone = api.fhir("GET", "/fhir/Patient/p2/$everything")
    assert gone.status_code == 410
    assert gone.json_body["resourceType"] == "OperationOutcome"


def test_type_limits_the_types_returned(api, record):
    bundle = everything(api, "?_type=Observation,Condition")
    assert set(entries(bundle)) == {"Observation/o1", "Observation/o2", "Condition/c1"}
    bundle = everything(api, "?_type=Observation&_type=Practitioner")
    assert set(entries(bundle, "match")) == {"Observation/o1", "Observation/o2"}
    assert set(entries(bundle, "include")) == {"Practitioner/pr1"}
    refused = api.fhir("GET", "/fhir/Patient/p1/$everything?_type=Nonsense")
    assert refused.status_code == 400
    assert refused.json_body["resourceType"] == "OperationOutcome"


def test_since_returns_only_what_changed(api, record):
    condition = api.fhir("GET", "/fhir/Condition/c1").json_body
    condition["clinicalStatus"] = code("active", "http://terminology.hl7.org/CodeSystem/c")
    since = put(api, condition)["meta"]["lastUpdated"]
    new = {
        "resourceType": "Observation",
        "id": "o-new",
        "status": "final",
        "code": code("8310-5"),
        "subject": ref("Patient/p1"),
        "performer": [ref("Practitioner/pr1")],
    }
    put(api, new)
    bundle = everything(api, "?" + urlencode({"_since": since}))
    assert set(entries(bundle)) == {"Condition/c1", "Observation/o-new"}
    assert "entry" not in everything(api, "?_since=2999-01-01")  # no empty arrays in FHIR JSON
    assert api.fhir("GET", "/fhir/Patient/p1/$everything?_since=yesterday").status_code == 400


def test_paging_gives_each_resource_once(api, record):
    everything_at_once = entries(everything(api))
    for count in (1, 3, 5, 8, 12):
        pages = all_pages(api, f"/fhir/Patient/p1/$everything?_count={count}")
        seen = [e for page in pages for e in entries(page)]
        assert seen == everything_at_once, count
        assert all(len(entries(page)) <= count for page in pages)
        assert all(page["total"] == len(record["match"]) for page in pages)
    # Each page's entries keep their mode across the cut between matches and includes.
    pages = all_pages(api, "/fhir/Patient/p1/$everything?_count=5")
    assert {e for p in pages for e in entries(p, "include")} == record["include"]
    assert {e for p in pages for e in entries(p, "match")} == record["match"]


def test_paging_is_stable_while_data_is_added(api, record):
    first = everything(api, "?_count=4")
    put(
        api,
        {
            "resourceType": "Observation",
            "id": "o-later",
            "status": "final",
            "code": code("8867-4"),
            "subject": ref("Patient/p1"),
        },
    )
    seen = entries(first) + [
        e for page in all_pages(api, link(first, "next")) for e in entries(page)
    ]
    assert len(seen) == len(set(seen))
    assert set(seen) == record["match"] | record["include"]
    assert "Observation/o-later" in entries(everything(api))
    # A page's self link gives the same page again, the added resource still left out.
    second = all_pages(api, link(first, "next"))[0]
    assert entries(api.fhir("GET", local(link(second, "self"))).json_body) == entries(second)
    assert api.fhir("GET", "/fhir/Patient/p1/$everything?_cursor=x1").status_code == 400


def test_start_and_end_select_by_care_date(api, record):
    bundle = everything(api, "?start=2024-01-01")
    got = set(entries(bundle, "match"))
    # o2 (2020) and c1 (onset 2019) are before the range; undated resources stay.
    assert got == record["match"] - {"Observation/o2", "Condition/c1"}
    bundle = everything(api, "?end=2020-12-31")
    assert set(entries(bundle, "match")) == {
        "Patient/p1",
        "Observation/o2",
        "Condition/c1",
        "AllergyIntolerance/a1",
    }
    # Referenced resources follow what is returned: o2 points to e1 and pr1.
    assert set(entries(bundle, "include")) == {
        "Encounter/e1",
        "Practitioner/pr1",
        "Organization/org1",
    }
    assert api.fhir("GET", "/fhir/Patient/p1/$everything?start=2025&end=2024").status_code == 400


def test_post_with_a_form_or_parameters(api, record):
    response = api.fhir(
        "POST", "/fhir/Patient/p1/$everything", "_type=Observation&_count=1", content_type=FORM
    )
    assert response.status_code == 200, response.json_body
    assert entries(response.json_body) == ["Observation/o1"]
    nxt = link(response.json_body, "next")
    assert "/fhir/Patient/p1/$everything?" in nxt
    assert entries(api.fhir("GET", local(nxt)).json_body) == ["Observation/o2"]

    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "_type", "valueCode": "Condition,AllergyIntolerance"}],
    }
    response = api.fhir("POST", "/fhir/Patient/p1/$everything", parameters)
    assert response.status_code == 200, response.json_body
    assert set(entries(response.json_body)) == {"Condition/c1", "AllergyIntolerance/a1"}
    response = api.fhir("POST", "/fhir/Patient/p1/$everything")
    assert set(entries(response.json_body)) == record["match"] | record["include"]
    bad = api.fhir("POST", "/fhir/Patient/p1/$everything", {"resourceType": "Patient"})
    assert bad.status_code == 400


def test_unknown_parameters_follow_the_handling_preference(api, record):
    strict = api.fhir(
        "GET", "/fhir/Patient/p1/$everything?colour=red", HTTP_PREFER="handling=strict"
    )
    assert strict.status_code == 400
    assert strict.json_body["resourceType"] == "OperationOutcome"
    lenient = everything(api, "?colour=red")
    assert set(entries(lenient)) == record["match"] | record["include"]
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert "colour" not in link(lenient, "self")
    assert api.fhir("GET", "/fhir/Patient/p1/$everything?_count=x").status_code == 400


def test_other_operation_urls_are_not_reads(api, record):
    for url in (
        "/fhir/Patient/$everything",
        "/fhir/Observation/o1/$everything",
        "/fhir/Patient/p1/$nonsense",
        "/fhir/Condition/$lastn",
    ):
        response = api.fhir("GET", url)
        assert response.status_code == 404, url
        assert response.json_body["resourceType"] == "OperationOutcome"
        assert response.json_body["issue"][0]["code"] == "not-supported"


def test_the_capability_statement_declares_the_operations(api):
    statement = api.fhir("GET", "/fhir/metadata").json_body
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    # Other apps add their own (the twins app's $twin); $everything is fhir_api's.
    assert [o for o in by_type["Patient"]["operation"] if o["name"] == "everything"] == [
        {
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        }
    ]
    assert by_type["Observation"]["operation"] == [
        {"name": "lastn", "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn"}
    ]
    assert all(
        "operation" not in r for t, r in by_type.items() if t not in ("Patient", "Observation")
    )


def test_the_answer_is_fhir_json(api, record):
    response = api.get("/fhir/Patient/p1/$everything", HTTP_ACCEPT="application/fhir+json")
    assert response["Content-Type"].startswith("application/fhir+json")
    assert json_io.loads(response.content)["type"] == "searchset"


def test_paging_when_the_record_was_written_before_the_patient(api):
    # References may name a Patient that is written later (a transaction's order, an import).
    for ident in ("early-1", "early-2"):
        put(
            api,
            {
                "resourceType": "Observation",
                "id": ident,
                "status": "final",
                "code": code("8867-4"),
                "subject": ref("Patient/late"),
            },
        )
    put(api, {"resourceType": "Patient", "id": "late"})
    pages = all_pages(api, "/fhir/Patient/late/$everything?_count=1")
    assert [entries(page) for page in pages] == [
        ["Patient/late"],
        ["Observation/early-1"],
        ["Observation/early-2"],
    ]


def test_a_reference_to_another_servers_patient_of_the_same_id_is_not_in_the_compartment(
    api, record
):
    """``http://elsewhere.example/fhir/Patient/p1`` is another server's p1, not ours: what points
    there is not in our p1's record; an absolute reference under our own base is."""
    observation = {"resourceType": "Observation", "status": "final", "code": code("8867-4")}
    put(
        api,
        {
            **observation,
            "id": "o-elsewhere",
            "subject": ref("http://elsewhere.example/fhir/Patient/p1"),
        },
    )
    put(
        api,
        {
            **observation,
            "id": "o-own-absolute",
            "subject": ref("http://testserver/fhir/Patient/p1"),
        },
    )

    got = set(entries(everything(api)))

    assert "Observation/o-elsewhere" not in got
    assert "Observation/o-own-absolute" in got
    assert record["match"] <= got
