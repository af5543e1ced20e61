from __future__ import annotations

import requests


def test_create_then_read_keeps_decimal_text(api):
    created = api.fhir(
        "POST",
        "/fhir/Observation",
        '{"resourceType":"Observation","status":"final","code":{"text":"HR"},'
        '"valueQuantity":{"value":72.50,"unit":"/min"}}',
    )
    assert created.status_code == 201, created.content
    location = created["Location"]
    read = api.fhir("GET", location.split("testserver")[1].rsplit("/_history", 1)[0])
    assert b'"value":72.50' in read.content


def test_live_server_answers_with_token(live):
    r = requests.get(
        f"{live['base']}/Patient", headers={"Authorization": f"Bearer {live['token']}"}
    )
    assert r.status_code == 200
    assert r.json()["type"] == "searchset"
