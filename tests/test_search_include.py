"""_include and _revinclude (hl7.org/fhir/R4B/search.html#include, #revinclude).

Included resources come after the matches with ``search.mode = include``, each once, never
repeating a match, and are not counted in ``total``. ``:iterate`` applies the rule to included
resources too; ``*`` means every reference parameter. Includes follow the page's matches only.
"""

from __future__ import annotations

import pytest

from .search_support import entries, follow, get, link, link_params, observation, ordered, put


def ref(target: str) -> dict:
    return {"reference": target}


@pytest.fixture
def graph(api):
    put(api, {"resourceType": "Practitioner", "id": "doc1"})
    put(api, {"resourceType": "Practitioner", "id": "doc2"})
    put(
        api,
        {
            "resourceType": "Patient",
            "id": "pat1",
            "generalPractitioner": [ref("Practitioner/doc1")],
        },
    )
    put(
        api,
        {
            "resourceType": "Patient",
            "id": "pat2",
            "generalPractitioner": [ref("Practitioner/doc2")],
        },
    )
    put(api, {"resourceType": "Group", "id": "g1", "type": "person", "actual": True})
    put(api, observation("o1", subject=ref("Patient/pat1"), performer=[ref("Practitioner/doc1")]))
    put(api, observation("o2", subject=ref("Patient/pat1")))
    put(api, observation("o3", subject=ref("Patient/pat2")))
    put(api, observation("o4", subject=ref("Group/g1")))
    put(api, observation("o5", subject=ref("Patient/ghost")))  # dangling: nothing to include
    for pid, target in (("prov1", "Observation/o1"), ("prov2", "Patient/pat1")):
        put(
            api,
            {
                "resourceType": "Provenance",
                "id": pid,
                "target": [ref(target)],
                "recorded": "2026-03-05T10:00:00Z",
                "agent": [{"who": ref("Practitioner/doc1")}],
            },
        )
    for mid, patient, requester in (("mr1", "pat1", "doc1"), ("mr2", "pat2", "doc2")):
        put(
            api,
            {
                "resourceType": "MedicationRequest",
                "id": mid,
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {"text": "aspirin"},
                "subject": ref(f"Patient/{patient}"),
                "requester": ref(f"Practitioner/{requester}"),
            },
        )
    return api


def keys(body: dict, mode: str) -> list[str]:
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries(body, mode)
    )


def check_shape(body: dict) -> None:
    """Matches first, then includes; every resource once; fullUrl and mode set."""
    modes = [e["search"]["mode"] for e in body["entry"] if e["search"]["mode"] != "outcome"]
    assert modes == sorted(modes, key=lambda m: m != "match")
    urls = [e["fullUrl"] for e in body["entry"] if "fullUrl" in e]
    assert len(urls) == len(set(urls)), urls
    for e in body["entry"]:
        if "fullUrl" in e:
            r = e["resource"]
            assert e["fullUrl"].endswith(f"/{r['resourceType']}/{r['id']}")


def test_include_subject(graph):
    body = get(graph, "Observation?_include=Observation:subject")
    check_shape(body)
    assert body["total"] == 5  # matches only
    assert keys(body, "match") == [f"Observation/o{i}" for i in range(1, 6)]
    assert keys(body, "include") == ["Group/g1", "Patient/pat1", "Patient/pat2"]


def test_include_with_a_target_type(graph):
    body = get(graph, "Observation?_include=Observation:subject:Patient")
    assert keys(body, "include") == ["Patient/pat1", "Patient/pat2"]
    body = get(graph, "Observation?_include=Observation:subject:Group")
    assert keys(body, "include") == ["Group/g1"]


def test_include_star_follows_every_reference(graph):
    body = get(graph, "Observation?_id=o1&_include=*")
    assert keys(body, "include") == ["Patient/pat1", "Practitioner/doc1"]
    body = get(graph, "Observation?_id=o1&_include=Observation:*")
    assert keys(body, "include") == ["Patient/pat1", "Practitioner/doc1"]


def test_revinclude(graph):
    body = get(graph, "Patient?_revinclude=Provenance:target")
    check_shape(body)
    assert body["total"] == 2
    assert keys(body, "include") == ["Provenance/prov2"]  # prov1 targets an Observation
    body = get(graph, "Patient?_id=pat1&_revinclude=Observation:subject")
    assert keys(body, "include") == ["Observation/o1", "Observation/o2"]


def test_revinclude_star(graph):
    body = get(graph, "Patient?_id=pat1&_revinclude=*")
    check_shape(body)
    assert keys(body, "include") == [
        "MedicationRequest/mr1",
        "Observation/o1",
        "Observation/o2",
        "Provenance/prov2",
    ]


def test_include_and_revinclude_together(graph):
    body = get(
        graph, "Observation?_id=o1&_include=Observation:subject&_revinclude=Provenance:target"
    )
    check_shape(body)
    assert keys(body, "include") == ["Patient/pat1", "Provenance/prov1"]


def test_iterate(graph):
    query = (
        "MedicationRequest?_include=MedicationRequest:patient"
        "&_include:iterate=Patient:general-practitioner"
    )
    body = get(graph, query)
    check_shape(body)
    assert body["total"] == 2
    assert keys(body, "include") == [
        "Patient/pat1",
        "Patient/pat2",
        "Practitioner/doc1",
        "Practitioner/doc2",
    ]
    # without :iterate the Patient rule is not applied to what MedicationRequest:patient adds
    plain = get(graph, "MedicationRequest?_include=MedicationRequest:patient")
    assert keys(plain, "include") == ["Patient/pat1", "Patient/pat2"]
    # a reverse include iterated over an included resource
    body = get(
        graph,
        "Observation?_id=o2&_include=Observation:subject&_revinclude:iterate=Provenance:target",
    )
    assert keys(body, "include") == ["Patient/pat1", "Provenance/prov2"]
    for relation in ("self", "first"):
        assert ("_revinclude:iterate", "Provenance:target") in link_params(link(body, relation))


def test_iterate_through_a_chain_and_a_cycle(api):
    put(api, observation("a", hasMember=[ref("Observation/b")]))
    put(api, observation("b", hasMember=[ref("Observation/c")]))
    put(api, observation("c", hasMember=[ref("Observation/a")]))  # back to the match
    body = get(api, "Observation?_id=a&_include:iterate=Observation:has-member")
    check_shape(body)
    assert keys(body, "match") == ["Observation/a"]
    assert keys(body, "include") == ["Observation/b", "Observation/c"]
    once = get(api, "Observation?_id=a&_include=Observation:has-member")
    assert keys(once, "include") == ["Observation/b"]


def test_a_match_is_never_repeated_as_an_include(graph):
    query = (
        "Practitioner?_revinclude=Patient:general-practitioner"
        "&_include:iterate=Patient:general-practitioner"
    )
    body = get(graph, query)
    check_shape(body)
    assert keys(body, "match") == ["Practitioner/doc1", "Practitioner/doc2"]
    assert keys(body, "include") == ["Patient/pat1", "Patient/pat2"]


def test_includes_follow_the_page(graph):
    body = get(graph, "Observation?_include=Observation:subject&_sort=_id&_count=2")
    assert ordered(body) == ["o1", "o2"]
    assert keys(body, "include") == ["Patient/pat1"]
    assert ("_include", "Observation:subject") in link_params(link(body, "next"))
    body = get(graph, follow(link(body, "next")))
    assert ordered(body) == ["o3", "o4"]
    assert keys(body, "include") == ["Group/g1", "Patient/pat2"]


def test_deleted_resources_are_not_included(graph):
    assert graph.fhir("DELETE", "/fhir/Patient/pat2").status_code in (200, 204)
    body = get(graph, "Observation?_include=Observation:subject:Patient")
    assert keys(body, "include") == ["Patient/pat1"]


def test_count_summary_includes_nothing(graph):
    body = get(graph, "Observation?_include=Observation:subject&_summary=count")
    assert body["total"] == 5 and body.get("entry", []) == []


@pytest.mark.parametrize(
    "query",
    [
        "Observation?_include=Observation:colour",
        "Observation?_include=Observation",
        "Observation?_include=Observation:code",  # a token, not a reference
        "Observation?_include=Observation:subject:Patient:extra",
        "Observation?_revinclude=Provenance:recorded",
        "Observation?_include:deep=Observation:subject",
    ],
)
def test_invalid_includes_are_400(graph, query):
    response = graph.fhir("GET", f"/fhir/{query}")
    assert response.status_code == 400, query
    assert response.json_body["resourceType"] == "OperationOutcome"
