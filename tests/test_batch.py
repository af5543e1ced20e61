"""batch Bundles: each entry on its own (hl7.org/fhir/R4B/http.html#transaction)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_api.models import Resource

BASE = "http://testserver/fhir"
SYSTEM = "urn:test:mrn"


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def patient(mrn: str, family: str = "Smith", **extra) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"family": family}],
        **extra,
    }


def entry(method: str, url: str, resource: dict | None = None, **request) -> dict:
    e: dict = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        e["resource"] = resource
    return e


def batch(api, *entries: dict) -> list[dict]:
    r = api.fhir(
        "POST", "/fhir", {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}
    )
    assert r.status_code == 200, r.content
    assert r.json_body["resourceType"] == "Bundle"
    assert r.json_body["type"] == "batch-response"
    # No entries, no entry element: FHIR JSON has no empty arrays (json.html).
    assert len(r.json_body.get("entry", [])) == len(entries)
    assert entries or "entry" not in r.json_body
    return r.json_body.get("entry", [])


def create(api, body: dict) -> dict:
    r = api.fhir("POST", f"/fhir/{body['resourceType']}", body)
    assert r.status_code == 201, r.content
    return r.json_body


def status(e: dict) -> int:
    return int(e["response"]["status"].split()[0])


def assert_failed(e: dict, code: int) -> dict:
    assert status(e) == code, e
    assert "resource" not in e
    outcome = e["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] in ("error", "fatal")
    return outcome


def test_each_entry_succeeds_or_fails_on_its_own(api):
    existing = create(api, patient("B-0"))
    pid = existing["id"]
    entries = batch(
        api,
        entry("POST", "Patient", patient("B-1")),
        entry("POST", "Observation", {"resourceType": "Observation", "status": "final"}),
        entry("PUT", f"Patient/{pid}", {**patient("B-0", "Jones"), "id": "not-the-same"}),
        entry("GET", "Patient/nobody"),
        entry("PUT", f"Patient/{pid}", {**patient("B-0", "Stale"), "id": pid}, ifMatch='W/"9"'),
        entry("PUT", f"Patient/{pid}", {**patient("B-0", "Brown"), "id": pid}),
        entry("POST", "Spaceship", {"resourceType": "Spaceship"}),
        entry("GET", f"Patient/{pid}"),
    )
    created, invalid, mismatch, missing, stale, updated, unknown, read = entries

    assert status(created) == 201
    assert created["response"]["location"].startswith(f"{BASE}/Patient/")
    assert created["response"]["etag"] == 'W/"1"'
    new_id = created["resource"]["id"]
    assert api.fhir("GET", f"/fhir/Patient/{new_id}").status_code == 200

    outcome = assert_failed(invalid, 422)
    assert ["Observation.code"] in [i.get("expression") for i in outcome["issue"]]
    assert_failed(mismatch, 400)
    assert_failed(missing, 404)
    assert_failed(stale, 412)
    assert_failed(unknown, 404)

    assert status(updated) == 200
    assert updated["response"]["etag"] == 'W/"2"'
    assert updated["resource"]["name"] == [{"family": "Brown"}]
    assert status(read) == 200
    assert read["resource"]["name"] == [{"family": "Brown"}]
    assert read["response"]["etag"] == 'W/"2"'

    assert Resource.objects.filter(resource_type="Patient").count() == 2
    assert not Resource.objects.filter(resource_type="Observation").exists()


def test_a_failure_does_not_undo_the_entries_before_or_after_it(api):
    entries = batch(
        api,
        entry("POST", "Patient", patient("B-1")),
        entry("POST", "Patient", {"resourceType": "Patient", "birthDate": "soon"}),
        entry("POST", "Patient", patient("B-2")),
    )
    assert [status(e) for e in entries] == [201, 422, 201]
    assert Resource.objects.filter(resource_type="Patient").count() == 2


def test_delete_and_conditional_entries(api):
    doomed = create(api, patient("B-DEL"))
    create(api, patient("B-DUP"))
    create(api, patient("B-DUP"))
    entries = batch(
        api,
        entry("DELETE", f"Patient/{doomed['id']}"),
        entry("POST", "Patient", patient("B-NEW"), ifNoneExist=f"identifier={SYSTEM}|B-NEW"),
        entry("POST", "Patient", patient("B-NEW"), ifNoneExist=f"identifier={SYSTEM}|B-NEW"),
        entry("PUT", f"Patient?identifier={SYSTEM}|B-DUP", patient("B-DUP", "X")),
        entry("DELETE", f"Patient?identifier={SYSTEM}|B-DUP"),
    )
    assert [status(e) for e in entries] == [204, 201, 200, 412, 412]
    assert entries[1]["resource"]["id"] == entries[2]["resource"]["id"]
    assert api.fhir("GET", f"/fhir/Patient/{doomed['id']}").status_code == 410


def test_search_and_history_entries(api):
    p = create(api, patient("B-S"))
    for mrn in ("B-S2", "B-S3"):
        create(api, patient(mrn))
    search, history, vread = batch(
        api,
        entry("GET", f"Patient?identifier={SYSTEM}|B-S"),
        entry("GET", "Patient/_history?_count=2"),
        entry("GET", f"Patient/{p['id']}/_history/1"),
    )
    assert search["resource"]["type"] == "searchset"
    assert [e["resource"]["id"] for e in search["resource"]["entry"]] == [p["id"]]
    assert history["resource"]["type"] == "history"
    assert len(history["resource"]["entry"]) == 2
    links = {lk["relation"]: lk["url"] for lk in history["resource"]["link"]}
    assert links["next"].startswith(f"{BASE}/Patient/_history?")
    assert vread["resource"]["meta"]["versionId"] == "1"


def test_conditional_read_entries(api):
    p = create(api, patient("B-C"))
    url = f"Patient/{p['id']}"
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = batch(
        api,
        entry("GET", url, ifNoneMatch='W/"1"'),
        entry("GET", url, ifNoneMatch='W/"0"'),
        # Bundle.entry.request.ifModifiedSince is a FHIR instant, not an HTTP-date.
        entry("GET", url, ifModifiedSince=tomorrow),
        entry("GET", url, ifModifiedSince=hour_ago),
    )
    assert [status(e) for e in entries] == [304, 200, 304, 200]
    assert "resource" not in entries[0]
    assert entries[0]["response"]["etag"] == 'W/"1"'
    assert entries[3]["resource"]["id"] == p["id"]


def test_an_empty_batch(api):
    assert batch(api) == []


def test_entries_of_a_batch_do_not_see_each_others_fullurls(api):
    """A batch has no interdependencies: fullUrl references are not rewritten."""
    entries = batch(
        api,
        {
            "fullUrl": "urn:uuid:3f1e2d4c-0000-4000-8000-000000000001",
            **entry("POST", "Patient", patient("B-U")),
        },
        entry(
            "POST",
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "urn:uuid:3f1e2d4c-0000-4000-8000-000000000001"},
            },
        ),
    )
    assert [status(e) for e in entries] == [201, 201]
    subject = entries[1]["resource"]["subject"]["reference"]
    assert subject == "urn:uuid:3f1e2d4c-0000-4000-8000-000000000001"
