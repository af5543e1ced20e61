"""_summary and _elements (hl7.org/fhir/R4B/search.html#summary, #elements).

A shaped resource keeps ``id`` and ``meta`` and, for ``true``/``text``/``_elements``, its
mandatory elements, and is tagged ``SUBSETTED`` so that nobody writes it back as a whole.
``_summary=count`` answers the total alone. ``_elements`` does not apply to included resources.
"""

from __future__ import annotations

import pytest

from .search_support import entries, get, observation, put, quantity, status

SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")
NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Anna</div>'}


def tags(resource: dict) -> set[tuple[str, str]]:
    return {(t.get("system"), t.get("code")) for t in resource.get("meta", {}).get("tag", [])}


@pytest.fixture
def data(api):
    put(
        api,
        {
            "resourceType": "Patient",
            "id": "anna",
            "meta": {"tag": [{"system": "http://example.org/tags", "code": "vip"}]},
            "text": NARRATIVE,
            "identifier": [{"system": "http://example.org/mrn", "value": "123"}],
            "active": True,
            "name": [{"family": "Berg", "given": ["Anna"]}],
            "gender": "female",
            "birthDate": "1980-05-12",
            "_birthDate": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                        "valueDateTime": "1980-05-12T10:15:00+01:00",
                    }
                ]
            },
            "maritalStatus": {"text": "married"},
            "communication": [{"language": {"text": "Swedish"}}],
            "contact": [{"name": {"family": "Berg"}}],
        },
    )
    put(
        api,
        observation(
            "hr",
            text=NARRATIVE,
            subject={"reference": "Patient/anna"},
            effectiveDateTime="2026-03-05T10:00:00Z",
            valueQuantity=quantity(72, "/min"),
            interpretation=[{"text": "normal"}],
            note=[{"text": "at rest"}],
        ),
    )
    return api


def only(api, query: str) -> dict:
    body = get(api, query)
    matched = entries(body)
    assert len(matched) == 1, body
    return matched[0]["resource"]


def test_summary_true_keeps_the_summary_elements(data):
    patient = only(data, "Patient?_summary=true")
    assert set(patient) == {
        "resourceType",
        "id",
        "meta",
        "identifier",
        "active",
        "name",
        "gender",
        "birthDate",
        "_birthDate",  # the extension of a kept primitive goes with it
    }
    assert SUBSETTED in tags(patient)
    assert ("http://example.org/tags", "vip") in tags(patient)  # the resource's own tags stay
    assert patient["meta"]["versionId"] == "1"
    obs = only(data, "Observation?_summary=true")
    assert {"status", "code", "subject", "effectiveDateTime", "valueQuantity"} <= set(obs)
    assert not {"text", "interpretation", "note"} & set(obs)


def test_summary_text_keeps_text_id_meta_and_mandatory_elements(data):
    patient = only(data, "Patient?_summary=text")
    assert set(patient) == {"resourceType", "id", "meta", "text"}
    assert SUBSETTED in tags(patient)
    obs = only(data, "Observation?_summary=text")
    assert set(obs) == {"resourceType", "id", "meta", "text", "status", "code"}


def test_summary_data_removes_the_text(data):
    patient = only(data, "Patient?_summary=data")
    assert "text" not in patient
    assert {"maritalStatus", "communication", "contact", "name", "_birthDate"} <= set(patient)
    assert SUBSETTED in tags(patient)


def test_summary_false_is_the_whole_resource(data):
    patient = only(data, "Patient?_summary=false")
    assert "text" in patient and "contact" in patient
    assert SUBSETTED not in tags(patient)
    whole = data.fhir("GET", "/fhir/Patient/anna").json_body
    assert patient == whole


def test_summary_count_gives_the_total_only(data):
    body = get(data, "Patient?_summary=count")
    assert body["total"] == 1
    assert entries(body) == []
    assert get(data, "Observation?_summary=count&subject=Patient/anna")["total"] == 1
    assert get(data, "Observation?_summary=count&subject=Patient/nobody")["total"] == 0


def test_summary_is_kept_in_the_links(data):
    body = get(data, "Patient?_summary=true&_count=1")
    assert "_summary=true" in next(x["url"] for x in body["link"] if x["relation"] == "self")


def test_bad_summary_is_400(data):
    assert status(data, "Patient?_summary=yes") == 400


def test_elements(data):
    patient = only(data, "Patient?_elements=name,birthDate")
    assert set(patient) == {"resourceType", "id", "meta", "name", "birthDate", "_birthDate"}
    assert SUBSETTED in tags(patient)


def test_elements_keeps_the_mandatory_elements_and_expands_choices(data):
    obs = only(data, "Observation?_elements=value")
    assert set(obs) == {"resourceType", "id", "meta", "status", "code", "valueQuantity"}
    obs = only(data, "Observation?_elements=subject,effective")
    assert set(obs) == {"resourceType", "id", "meta", "status", "code", "subject"} | {
        "effectiveDateTime"
    }
    obs = only(data, "Observation?_elements=Observation.note")
    assert set(obs) == {"resourceType", "id", "meta", "status", "code", "note"}


def test_unknown_elements_are_ignored(data):
    patient = only(data, "Patient?_elements=colour,gender")
    assert set(patient) == {"resourceType", "id", "meta", "gender"}


def test_elements_do_not_apply_to_included_resources(data):
    body = get(data, "Observation?_elements=status&_include=Observation:subject")
    obs = entries(body)[0]["resource"]
    assert set(obs) == {"resourceType", "id", "meta", "status", "code"}
    included = entries(body, "include")
    assert [e["resource"]["id"] for e in included] == ["anna"]
    assert "name" in included[0]["resource"]  # whole
    assert SUBSETTED not in tags(included[0]["resource"])
