"""uri search (hl7.org/fhir/R4B/search.html#uri): exact and case-sensitive, :below, :above,
:missing; the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from .search_helpers import create, ids, search

BASE = "http://acme.org/fhir/ValueSet"


def value_set(url: str | None, name: str, **extra) -> dict:
    vs = {"resourceType": "ValueSet", "status": "active", "name": name, **extra}
    if url:
        vs["url"] = url
    return vs


@pytest.fixture
def data(api):
    d = {}
    d["vitals"] = create(api, value_set(f"{BASE}/vitals", "Vitals"))
    d["vitals_adult"] = create(api, value_set(f"{BASE}/vitals/adult", "VitalsAdult"))
    d["labs"] = create(
        api,
        value_set(
            f"{BASE}/labs",
            "Labs",
            compose={"include": [{"system": "http://loinc.org"}]},
        ),
    )
    d["root"] = create(api, value_set("http://acme.org/fhir", "Root"))
    d["other_host"] = create(api, value_set("http://acme.org.evil/fhir/ValueSet/vitals", "Evil"))
    d["upper"] = create(api, value_set("http://acme.org/fhir/ValueSet/VITALS", "Upper"))
    d["oid"] = create(api, value_set("urn:oid:2.16.840.1.113883.4.642.3.1", "Oid"))
    d["no_url"] = create(api, value_set(None, "NoUrl"))
    return d


def test_exact_match_only(api, data):
    assert ids(api, f"ValueSet?url={BASE}/vitals") == {data["vitals"]}
    assert ids(api, "ValueSet?url=urn:oid:2.16.840.1.113883.4.642.3.1") == {data["oid"]}
    # no prefix, no case folding
    assert ids(api, f"ValueSet?url={BASE}/vit") == set()
    assert ids(api, f"ValueSet?url={BASE}/VITALS") == {data["upper"]}
    assert ids(api, "ValueSet?url=HTTP://ACME.ORG/fhir") == set()


def test_or(api, data):
    assert ids(api, f"ValueSet?url={BASE}/vitals,{BASE}/labs") == {data["vitals"], data["labs"]}


def test_below(api, data):
    assert ids(api, f"ValueSet?url:below={BASE}/vitals") == {
        data["vitals"],
        data["vitals_adult"],
    }
    assert ids(api, "ValueSet?url:below=http://acme.org/fhir/") == {
        data["vitals"],
        data["vitals_adult"],
        data["labs"],
        data["upper"],
    }


def test_below_is_case_sensitive_on_every_database(api, data):
    assert ids(api, f"ValueSet?url:below={BASE}/VIT") == {data["upper"]}
    assert ids(api, "ValueSet?url:below=http://ACME.org/fhir/") == set()


def test_below_treats_like_wildcards_literally(api, data):
    assert ids(api, "ValueSet?url:below=http://acme.org/fhir/Value_et") == set()
    assert ids(api, "ValueSet?url:below=http://acme.org/fhir/%25") == set()


def test_above(api, data):
    assert ids(api, f"ValueSet?url:above={BASE}/vitals/adult/_history/3") == {
        data["vitals_adult"],
        data["vitals"],
        data["root"],
    }
    assert ids(api, f"ValueSet?url:above={BASE}/labs") == {data["labs"], data["root"]}


def test_missing(api, data):
    assert ids(api, "ValueSet?url:missing=true") == {data["no_url"]}
    assert len(ids(api, "ValueSet?url:missing=false")) == 7


def test_uri_of_an_include_system(api, data):
    assert ids(api, "ValueSet?reference=http://loinc.org") == {data["labs"]}


def test_profile_is_a_uri(api):
    profile = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    us_core = create(api, {"resourceType": "Patient", "meta": {"profile": [profile]}})
    create(api, {"resourceType": "Patient"})
    assert ids(api, f"Patient?_profile={profile}") == {us_core}
    assert ids(api, "Patient?_profile:below=http://hl7.org/fhir/us/core/") == {us_core}


def test_source(api):
    sourced = create(
        api, {"resourceType": "Patient", "meta": {"source": "http://ehr.example.org/epic#a1"}}
    )
    assert ids(api, "Patient?_source=http://ehr.example.org/epic%23a1") == {sourced}


def test_unsupported_modifier(api, data):
    response = search(api, "ValueSet?url:contains=acme", HTTP_PREFER="handling=strict")
    assert response.status_code == 400
