"""Each history entry says which interaction made its version and what it answered
(hl7.org/fhir/R4B/http.html#history, bundle.html): POST 201, PUT 200 or 201 when it made the
resource exist (update-as-create, or again after a delete), PATCH 200, DELETE 204."""

from __future__ import annotations

JSON_PATCH = "application/json-patch+json"


def patient(pid: str, family: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}


def history_of(api, pid: str) -> list[tuple[str, str, str, str]]:
    """(request.method, request.url, response.status, etag) of each entry, oldest first."""
    r = api.fhir("GET", f"/fhir/Patient/{pid}/_history")
    assert r.status_code == 200, r.content
    return [
        (
            e["request"]["method"],
            e["request"]["url"],
            e["response"]["status"],
            e["response"]["etag"],
        )
        for e in reversed(r.json_body["entry"])
    ]


def test_every_interaction_in_a_history(api):
    pid = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient"}).json_body["id"]
    assert api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "A")).status_code == 200
    ops = [{"op": "add", "path": "/gender", "value": "female"}]
    patched = api.fhir("PATCH", f"/fhir/Patient/{pid}", ops, content_type=JSON_PATCH)
    assert patched.status_code == 200
    assert api.fhir("DELETE", f"/fhir/Patient/{pid}").status_code == 204
    again = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "B"))
    assert again.status_code == 201, again.content
    assert api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "C")).status_code == 200
    assert history_of(api, pid) == [
        ("POST", "Patient", "201 Created", 'W/"1"'),
        ("PUT", f"Patient/{pid}", "200 OK", 'W/"2"'),
        ("PATCH", f"Patient/{pid}", "200 OK", 'W/"3"'),
        ("DELETE", f"Patient/{pid}", "204 No Content", 'W/"4"'),
        ("PUT", f"Patient/{pid}", "201 Created", 'W/"5"'),
        ("PUT", f"Patient/{pid}", "200 OK", 'W/"6"'),
    ]


def test_update_as_create_then_delete_and_recreate_twice(api):
    assert api.fhir("PUT", "/fhir/Patient/p-uac", patient("p-uac", "A")).status_code == 201
    for _ in range(2):
        assert api.fhir("DELETE", "/fhir/Patient/p-uac").status_code == 204
        assert api.fhir("PUT", "/fhir/Patient/p-uac", patient("p-uac", "A")).status_code == 201
    statuses = [status for _, _, status, _ in history_of(api, "p-uac")]
    assert statuses == [
        "201 Created",
        "204 No Content",
        "201 Created",
        "204 No Content",
        "201 Created",
    ]


def test_recreated_in_a_transaction_and_seen_in_type_and_system_history(api):
    assert api.fhir("PUT", "/fhir/Patient/p-tx", patient("p-tx", "A")).status_code == 201
    assert api.fhir("DELETE", "/fhir/Patient/p-tx").status_code == 204
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": patient("p-tx", "Back"),
                "request": {"method": "PUT", "url": "Patient/p-tx"},
            }
        ],
    }
    r = api.fhir("POST", "/fhir", bundle)
    assert r.status_code == 200, r.content
    assert r.json_body["entry"][0]["response"]["status"].startswith("201")
    for path in ("/fhir/Patient/_history", "/fhir/_history"):
        entries = api.fhir("GET", path).json_body["entry"]
        newest = entries[0]
        assert newest["fullUrl"].endswith("/Patient/p-tx")
        assert newest["response"]["status"] == "201 Created"
        assert newest["response"]["etag"] == 'W/"3"'
        assert "resource" not in entries[1] and entries[1]["request"]["method"] == "DELETE"
