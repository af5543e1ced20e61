"""System-level search and search by POST (hl7.org/fhir/R4B/http.html#search,
search.html#searchcontexts, search.html#Introduction).

``GET [base]?_type=Patient,Observation&…`` searches the listed types, every type without
``_type``; only the parameters every listed type has apply (the common ``_id``,
``_lastUpdated``, ``_tag``, ``_profile``, ``_security``, ``_source``, or a type's own parameters
when ``_type`` names one type). ``POST [base]/_search`` and ``POST [base]/[type]/_search`` take
the parameters as a form, with those of the URL.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from .search_support import (
    STRICT,
    entries,
    follow,
    get,
    link,
    link_params,
    observation,
    put,
    status,
)

TAGS = "http://example.org/tags"


def keys(body: dict, mode: str = "match") -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries(body, mode)}


@pytest.fixture
def store(api):
    vip = {"tag": [{"system": TAGS, "code": "vip"}]}
    put(api, {"resourceType": "Patient", "id": "p1", "gender": "female", "meta": vip})
    put(api, {"resourceType": "Patient", "id": "p2", "gender": "male"})
    put(api, {"resourceType": "Patient", "id": "x", "gender": "female"})
    put(api, observation("x"))
    put(api, observation("o1", subject={"reference": "Patient/p1"}, meta=vip))
    put(
        api,
        {
            "resourceType": "Practitioner",
            "id": "d1",
            "meta": {"profile": ["http://example.org/StructureDefinition/doc"]},
        },
    )
    return api


ALL = {
    "Patient/p1",
    "Patient/p2",
    "Patient/x",
    "Observation/x",
    "Observation/o1",
    "Practitioner/d1",
}


def test_type_and_last_updated(store):
    today = store.fhir("GET", "/fhir/Patient/p1").json_body["meta"]["lastUpdated"][:10]
    body = get(store, f"?_type=Patient,Observation&_lastUpdated=ge{today}")
    assert keys(body) == ALL - {"Practitioner/d1"}
    assert body["total"] == 5
    assert get(store, f"?_type=Patient,Observation&_lastUpdated=lt{today}")["total"] == 0


def test_id_across_every_type(store):
    assert keys(get(store, "?_id=x")) == {"Patient/x", "Observation/x"}
    assert keys(get(store, "?_id=x,d1")) == {"Patient/x", "Observation/x", "Practitioner/d1"}
    assert keys(get(store, "?_type=Observation&_id=x")) == {"Observation/x"}


def test_common_parameters(store):
    assert keys(get(store, f"?_tag={quote(TAGS)}|vip")) == {"Patient/p1", "Observation/o1"}
    assert keys(get(store, "?_type=Observation&_tag=vip")) == {"Observation/o1"}
    profile = quote("http://example.org/StructureDefinition/doc")
    assert keys(get(store, f"?_profile={profile}")) == {"Practitioner/d1"}
    assert keys(get(store, "?_tag:missing=false")) == {"Patient/p1", "Observation/o1"}


def test_no_type_is_every_type(store):
    body = get(store, "")
    assert keys(body) == ALL and body["total"] == 6


def test_one_type_takes_its_own_parameters(store):
    assert keys(get(store, "?_type=Patient&gender=female")) == {"Patient/p1", "Patient/x"}


def test_parameters_not_common_to_the_types(store):
    assert status(store, "?_type=Patient,Observation&gender=female", **STRICT) == 400
    assert status(store, "?gender=female", **STRICT) == 400
    lenient = get(store, "?_type=Patient,Observation&gender=female")
    assert keys(lenient) == ALL - {"Practitioner/d1"}
    (outcome,) = entries(lenient, "outcome")
    assert "gender" in outcome["resource"]["issue"][0]["diagnostics"]


@pytest.mark.parametrize("value", ["Nope", "Patient,Nope", "", ","])
def test_unknown_types_are_400(store, value):
    response = store.fhir("GET", f"/fhir?_type={value}")
    assert response.status_code == 400, value
    assert response.json_body["resourceType"] == "OperationOutcome"


def test_repeated_type_parameters_are_anded(store):
    assert keys(get(store, "?_type=Patient,Observation&_type=Observation")) == {
        "Observation/x",
        "Observation/o1",
    }


def test_paging_across_types(store):
    body = get(store, "?_count=4&_sort=_id")
    seen = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries(body)]
    assert link(body, "self").startswith("http://testserver/fhir?")
    assert not any(name == "_type" for name, _ in link_params(link(body, "next")))
    body = get(store, follow_system(link(body, "next")))
    seen += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries(body)]
    assert len(seen) == len(set(seen)) == 6 and set(seen) == ALL
    assert link(body, "next") is None


def follow_system(url: str) -> str:
    """A link of a system search, [base]?…, as the test client's query."""
    return "?" + url.split("?", 1)[1]


def test_links_keep_the_types(store):
    body = get(store, "?_type=Patient&_count=1")
    assert len(entries(body)) == 1 and body["total"] == 3
    nxt = link(body, "next")
    assert ("_type", "Patient") in link_params(nxt)
    seen = {entries(body)[0]["resource"]["id"]}
    while nxt:
        body = get(store, follow_system(nxt))
        assert all(e["resource"]["resourceType"] == "Patient" for e in entries(body))
        seen |= {e["resource"]["id"] for e in entries(body)}
        nxt = link(body, "next")
    assert seen == {"p1", "p2", "x"}
    two = get(store, "?_type=Observation,Practitioner&_count=1")
    assert ("_type", "Observation,Practitioner") in link_params(link(two, "next"))


def test_sort_include_and_summary(store):
    assert [e["resource"]["id"] for e in entries(get(store, "?_type=Patient&_sort=-_id"))] == [
        "x",
        "p2",
        "p1",
    ]
    body = get(store, "?_type=Observation&_include=Observation:subject")
    assert keys(body) == {"Observation/x", "Observation/o1"}
    assert keys(body, "include") == {"Patient/p1"}
    body = get(store, "?_include=Observation:subject&_id=o1")
    assert keys(body, "include") == {"Patient/p1"}
    body = get(store, "?_summary=count&_type=Patient")
    assert body["total"] == 3 and entries(body) == []


def test_post_system_search(store):
    response = store.fhir(
        "POST",
        "/fhir/_search",
        "_type=Patient,Observation&_id=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200, response.json_body
    assert keys(response.json_body) == {"Patient/x", "Observation/x"}
    self_link = link(response.json_body, "self")
    assert self_link.startswith("http://testserver/fhir?")


def test_post_type_search_with_form_and_query(store):
    form = "application/x-www-form-urlencoded"
    response = store.fhir("POST", "/fhir/Patient/_search", "gender=female", content_type=form)
    assert response.status_code == 200
    assert keys(response.json_body) == {"Patient/p1", "Patient/x"}
    # URL and body parameters together, AND-ed
    response = store.fhir(
        "POST", "/fhir/Patient/_search?_id=x,p2", "gender=female", content_type=form
    )
    assert keys(response.json_body) == {"Patient/x"}
    # paging links are GET searches of the type, which carry the form's parameters
    response = store.fhir(
        "POST", "/fhir/Patient/_search?_count=1", "gender=female", content_type=form
    )
    body = response.json_body
    assert body["total"] == 2 and len(entries(body)) == 1
    nxt = link(body, "next")
    assert nxt.startswith("http://testserver/fhir/Patient?")
    assert ("gender", "female") in link_params(nxt)
    assert len(entries(get(store, follow(nxt)))) == 1
    # strict handling applies to the body too
    bad = store.fhir("POST", "/fhir/Patient/_search", "colour=red", content_type=form, **STRICT)
    assert bad.status_code == 400


def test_capability_statement_declares_system_search(api):
    rest = api.fhir("GET", "/fhir/metadata").json_body["rest"][0]
    assert {"code": "search-system"} in rest["interaction"]
    names = {p["name"] for p in rest["searchParam"]}
    assert {"_id", "_lastUpdated", "_tag", "_profile", "_security"} <= names
