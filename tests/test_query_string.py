"""The query string of a FHIR request reads as Django would read it (fhir_api/query_string.py):
UTF-8, percent-escapes, raw Latin-1 from old clients, ``+`` as a space, repeats in order, and a
400 OperationOutcome past ``DATA_UPLOAD_MAX_NUMBER_FIELDS``."""

from __future__ import annotations

import pytest
from django.test import override_settings

from .search_helpers import bundle, create, search


def patient(family: str) -> dict:
    return {"resourceType": "Patient", "name": [{"family": family}]}


def ids(body: dict) -> set[str]:
    return {entry["resource"]["id"] for entry in body.get("entry", [])}


@pytest.fixture
def zoe(api) -> str:
    create(api, patient("Other"))
    return create(api, patient("Zoë Ångström"))


def test_percent_encoded_utf8_value_matches(api, zoe):
    assert ids(bundle(api, "Patient?family:exact=Zo%C3%AB%20%C3%85ngstr%C3%B6m")) == {zoe}


def test_raw_utf8_value_matches(api, zoe):
    # The test client hands the path's query to Django as WSGI does: UTF-8 bytes as Latin-1.
    assert ids(bundle(api, "Patient?family:exact=Zoë Ångström")) == {zoe}


def test_raw_latin1_bytes_read_as_latin1(api, zoe):
    # An old client that sends its query in Latin-1, unescaped: not UTF-8, so read as Latin-1.
    query = "family:exact=" + "Zoë Ångström".encode("latin-1").decode("iso-8859-1")
    response = api.fhir("GET", "/fhir/Patient", QUERY_STRING=query)
    assert response.status_code == 200
    assert ids(response.json_body) == {zoe}


def test_plus_is_a_space(api, zoe):
    assert ids(bundle(api, "Patient?family:exact=Zo%C3%AB+%C3%85ngstr%C3%B6m")) == {zoe}


def test_repeated_parameters_are_all_applied(api):
    early = create(api, {**patient("A"), "birthDate": "1940-01-01"})
    create(api, {**patient("B"), "birthDate": "1950-06-01"})
    create(api, {**patient("C"), "birthDate": "1930-01-01"})
    body = bundle(api, "Patient?birthdate=ge1935&birthdate=lt1945")
    assert ids(body) == {early}
    self_link = next(link["url"] for link in body["link"] if link["relation"] == "self")
    assert "birthdate=ge1935&birthdate=lt1945" in self_link


def test_format_parameter_is_not_a_search_parameter(api, zoe):
    body = bundle(api, "Patient?family=Zo%C3%AB&_format=json&_pretty=true")
    assert ids(body) == {zoe}
    self_link = next(link["url"] for link in body["link"] if link["relation"] == "self")
    assert "_format" not in self_link and "_pretty" not in self_link


def test_pretty_and_format_still_apply(api, zoe):
    response = search(api, "Patient?family=Zo%C3%AB&_format=application/json&_pretty=true")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.content.startswith(b"{\n")


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=5)
def test_too_many_parameters_is_400_operation_outcome(api):
    query = "&".join(f"family=x{i}" for i in range(6))
    response = search(api, f"Patient?{query}")
    assert response.status_code == 400
    assert response.json_body["resourceType"] == "OperationOutcome"
    assert response.json_body["issue"][0]["severity"] == "error"


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=5)
def test_parameters_within_the_limit_are_searched(api, zoe):
    query = "&".join(["family=Zo%C3%AB"] * 5)
    assert ids(bundle(api, f"Patient?{query}")) == {zoe}
