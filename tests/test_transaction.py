"""transaction Bundles (hl7.org/fhir/R4B/http.html#transaction)."""

from __future__ import annotations

import base64
import json

import pytest

from fhir_api.models import Resource, ResourceVersion, TokenIndex

BASE = "http://testserver/fhir"
SYSTEM = "urn:test:mrn"
PAT_UUID = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
OBS_UUID = "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059"


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


def observation(subject: str, **extra) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": subject},
        **extra,
    }


def transaction(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def entry(method: str, url: str, resource: dict | None = None, full_url: str | None = None, **req):
    e: dict = {"request": {"method": method, "url": url, **req}}
    if resource is not None:
        e["resource"] = resource
    if full_url is not None:
        e["fullUrl"] = full_url
    return e


def post(api, bundle: dict, path: str = "/fhir"):
    return api.fhir("POST", path, bundle)


def ok(api, bundle: dict, path: str = "/fhir") -> list[dict]:
    r = post(api, bundle, path)
    assert r.status_code == 200, r.content
    assert r.json_body["resourceType"] == "Bundle"
    assert r.json_body["type"] == "transaction-response"
    # No entries, no entry element: FHIR JSON has no empty arrays (json.html).
    assert bundle.get("entry") or "entry" not in r.json_body
    return r.json_body.get("entry", [])


def create(api, body: dict) -> dict:
    r = api.fhir("POST", f"/fhir/{body['resourceType']}", body)
    assert r.status_code == 201, r.content
    return r.json_body


def counts() -> tuple[int, int, int]:
    return Resource.objects.count(), ResourceVersion.objects.count(), TokenIndex.objects.count()


def read(api, reference: str) -> dict:
    r = api.fhir("GET", f"/fhir/{reference}")
    assert r.status_code == 200, r.content
    return r.json_body


def reference_of(location: str) -> str:
    """Type/id from a Location such as http://testserver/fhir/Patient/1/_history/1."""
    return "/".join(location.removeprefix(BASE + "/").split("/")[:2])


def test_creates_with_urn_uuid_references_rewritten(api):
    entries = ok(
        api,
        transaction(
            entry("POST", "Observation", observation(PAT_UUID), OBS_UUID),
            entry("POST", "Patient", patient("T-1"), PAT_UUID),
        ),
    )
    assert len(entries) == 2
    obs_entry, pat_entry = entries
    for e in entries:
        assert e["response"]["status"].startswith("201")
        assert e["response"]["etag"] == 'W/"1"'
        assert e["response"]["location"].endswith("/_history/1")
        assert e["response"]["lastModified"].endswith("Z")
    patient_ref = reference_of(pat_entry["response"]["location"])
    assert patient_ref.startswith("Patient/")
    assert reference_of(obs_entry["response"]["location"]).startswith("Observation/")
    assert pat_entry["resource"]["resourceType"] == "Patient"
    stored = read(api, reference_of(obs_entry["response"]["location"]))
    assert stored["subject"] == {"reference": patient_ref}
    assert obs_entry["resource"]["subject"] == {"reference": patient_ref}
    assert read(api, patient_ref)["identifier"][0]["value"] == "T-1"


def test_post_to_base_with_and_without_trailing_slash(api):
    assert len(ok(api, transaction(entry("POST", "Patient", patient("S-1"))), "/fhir")) == 1
    assert len(ok(api, transaction(entry("POST", "Patient", patient("S-2"))), "/fhir/")) == 1
    assert Resource.objects.filter(resource_type="Patient").count() == 2


def test_one_bad_entry_writes_nothing_and_names_the_entry(api):
    before = counts()
    bad = {"resourceType": "Observation", "status": "final"}  # no code: invalid
    r = post(
        api,
        transaction(
            entry("POST", "Patient", patient("T-1"), PAT_UUID),
            entry("POST", "Observation", bad),
            entry("PUT", "Patient/put-me", patient("T-2", id="put-me")),
        ),
    )
    assert r.status_code == 422, r.content
    outcome = r.json_body
    assert outcome["resourceType"] == "OperationOutcome"
    assert "entry 1" in outcome["issue"][0]["diagnostics"]
    assert ["Observation.code"] in [issue.get("expression") for issue in outcome["issue"]]
    assert counts() == before


def test_a_failing_delete_rolls_back_the_creates(api):
    existing = create(api, patient("T-0"))
    create(api, patient("T-0b"))
    api.fhir(
        "PUT", f"/fhir/Patient/{existing['id']}", {**patient("T-0", "Newer"), "id": existing["id"]}
    )
    before = counts()
    r = post(
        api,
        transaction(
            entry("POST", "Patient", patient("T-1")),
            entry("DELETE", f"Patient/{existing['id']}", ifMatch='W/"1"'),
        ),
    )
    assert r.status_code == 412
    assert "entry 1" in r.json_body["issue"][0]["diagnostics"]
    assert counts() == before
    assert read(api, f"Patient/{existing['id']}")["meta"]["versionId"] == "2"


def test_conditional_reference_is_resolved(api):
    existing = create(api, patient("MRN-7"))
    entries = ok(
        api,
        transaction(
            entry("POST", "Observation", observation(f"Patient?identifier={SYSTEM}|MRN-7"))
        ),
    )
    stored = read(api, reference_of(entries[0]["response"]["location"]))
    assert stored["subject"] == {"reference": f"Patient/{existing['id']}"}


def test_conditional_reference_that_matches_nothing_is_412_and_writes_nothing(api):
    create(api, patient("MRN-7"))
    before = counts()
    r = post(
        api,
        transaction(
            entry("POST", "Patient", patient("T-1")),
            entry("POST", "Observation", observation(f"Patient?identifier={SYSTEM}|MRN-404")),
        ),
    )
    assert r.status_code == 412, r.content
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert "MRN-404" in r.json_body["issue"][0]["diagnostics"]
    assert counts() == before


def test_conditional_reference_that_matches_several_is_412(api):
    create(api, patient("DUP"))
    create(api, patient("DUP"))
    r = post(
        api,
        transaction(entry("POST", "Observation", observation(f"Patient?identifier={SYSTEM}|DUP"))),
    )
    assert r.status_code == 412


def test_processing_order_delete_post_put_get_and_response_in_request_order(api):
    doomed = create(api, patient("OLD"))
    kept = create(api, patient("KEEP"))
    entries = ok(
        api,
        transaction(
            entry("GET", f"Patient?identifier={SYSTEM}|NEW"),
            entry("GET", f"Patient?identifier={SYSTEM}|OLD"),
            entry("PUT", f"Patient/{kept['id']}", {**patient("KEEP", "Put"), "id": kept["id"]}),
            entry("POST", "Patient", patient("NEW")),
            entry("DELETE", f"Patient/{doomed['id']}"),
            entry("GET", f"Patient/{kept['id']}"),
        ),
    )
    assert [e["response"]["status"][:3] for e in entries] == [
        "200",
        "200",
        "200",
        "201",
        "204",
        "200",
    ]
    sees_new, sees_old, put, created, deleted, read_kept = entries
    # GETs run last: they see the POSTed resource and not the deleted one.
    assert sees_new["resource"]["type"] == "searchset"
    assert sees_new["resource"]["total"] == 1
    new_ref = reference_of(created["response"]["location"])
    assert sees_new["resource"]["entry"][0]["fullUrl"] == f"{BASE}/{new_ref}"
    assert sees_old["resource"]["total"] == 0
    assert read_kept["resource"]["name"] == [{"family": "Put"}]
    assert read_kept["response"]["etag"] == 'W/"2"'
    assert put["response"]["location"] == f"{BASE}/Patient/{kept['id']}/_history/2"
    assert put["response"]["etag"] == 'W/"2"'
    assert deleted["response"]["etag"] == 'W/"2"'
    assert "resource" not in deleted
    assert api.fhir("GET", f"/fhir/Patient/{doomed['id']}").status_code == 410


def test_search_entry_links_point_at_the_searched_type(api):
    create(api, patient("L-1"))
    entries = ok(api, transaction(entry("GET", f"Patient?identifier={SYSTEM}|L-1&_count=5")))
    links = {lk["relation"]: lk["url"] for lk in entries[0]["resource"]["link"]}
    assert links["self"].startswith(f"{BASE}/Patient?")
    assert "identifier=" in links["self"]


def test_conditional_create_entries(api):
    existing = create(api, patient("C-1"))
    entries = ok(
        api,
        transaction(
            entry(
                "POST",
                "Patient",
                patient("C-1", "Ignored"),
                PAT_UUID,
                ifNoneExist=f"identifier={SYSTEM}|C-1",
            ),
            entry(
                "POST",
                "Patient",
                patient("C-2"),
                "urn:uuid:0b8c3f2e-5a1c-4a30-9a6f-3f0b1c2d3e4f",
                ifNoneExist=f"identifier={SYSTEM}|C-2",
            ),
            entry("POST", "Observation", observation(PAT_UUID)),
            entry(
                "POST",
                "Observation",
                observation("urn:uuid:0b8c3f2e-5a1c-4a30-9a6f-3f0b1c2d3e4f"),
            ),
        ),
    )
    found, created, obs1, obs2 = entries
    assert found["response"]["status"].startswith("200")
    assert found["resource"]["id"] == existing["id"]
    assert found["resource"]["name"] == [{"family": "Smith"}]
    assert created["response"]["status"].startswith("201")
    assert Resource.objects.filter(resource_type="Patient").count() == 2
    # References to a conditional create's fullUrl point at what it found or made.
    assert obs1["resource"]["subject"] == {"reference": f"Patient/{existing['id']}"}
    new_ref = reference_of(created["response"]["location"])
    assert obs2["resource"]["subject"] == {"reference": new_ref}


def test_conditional_update_entries_create_then_update(api):
    url = f"Patient?identifier={SYSTEM}|CU-1"
    first = ok(api, transaction(entry("PUT", url, patient("CU-1"))))
    assert first[0]["response"]["status"].startswith("201")
    second = ok(api, transaction(entry("PUT", url, patient("CU-1", "Updated"))))
    assert second[0]["response"]["status"].startswith("200")
    assert second[0]["response"]["etag"] == 'W/"2"'
    assert reference_of(first[0]["response"]["location"]) == reference_of(
        second[0]["response"]["location"]
    )
    assert Resource.objects.filter(resource_type="Patient").count() == 1


def test_put_entry_creates_and_updates_with_a_client_id(api):
    entries = ok(
        api, transaction(entry("PUT", "Patient/tx-put", {**patient("P-1"), "id": "tx-put"}))
    )
    assert entries[0]["response"]["status"].startswith("201")
    assert entries[0]["response"]["location"] == f"{BASE}/Patient/tx-put/_history/1"
    entries = ok(
        api, transaction(entry("PUT", "Patient/tx-put", {**patient("P-1", "Two"), "id": "tx-put"}))
    )
    assert entries[0]["response"]["status"].startswith("200")
    assert read(api, "Patient/tx-put")["name"] == [{"family": "Two"}]


def test_put_entry_with_an_absolute_url(api):
    entries = ok(
        api,
        transaction(entry("PUT", f"{BASE}/Patient/abs-1", {**patient("A-1"), "id": "abs-1"})),
    )
    assert entries[0]["response"]["location"] == f"{BASE}/Patient/abs-1/_history/1"


def binary_patch(operations: list[dict]) -> dict:
    return {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(operations).encode()).decode(),
    }


def test_patch_entry_with_a_binary_json_patch(api):
    existing = create(api, patient("PA-1"))
    ops = [{"op": "replace", "path": "/name/0/family", "value": "Patched"}]
    entries = ok(api, transaction(entry("PATCH", f"Patient/{existing['id']}", binary_patch(ops))))
    assert entries[0]["response"]["status"].startswith("200")
    assert entries[0]["response"]["etag"] == 'W/"2"'
    assert read(api, f"Patient/{existing['id']}")["name"] == [{"family": "Patched"}]


def test_patch_entry_with_a_failing_test_rolls_back(api):
    existing = create(api, patient("PA-1"))
    before = counts()
    ops = [{"op": "test", "path": "/active", "value": True}]
    r = post(
        api,
        transaction(
            entry("POST", "Patient", patient("PA-2")),
            entry("PATCH", f"Patient/{existing['id']}", binary_patch(ops)),
        ),
    )
    assert r.status_code == 422
    assert counts() == before


def test_the_same_resource_changed_twice_is_400(api):
    existing = create(api, patient("TW-1"))
    before = counts()
    pid = existing["id"]
    r = post(
        api,
        transaction(
            entry("PUT", f"Patient/{pid}", {**patient("TW-1", "A"), "id": pid}),
            entry("DELETE", f"Patient/{pid}"),
        ),
    )
    assert r.status_code == 400
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert counts() == before


def test_a_conditional_update_and_a_put_on_the_same_resource_is_400(api):
    existing = create(api, patient("TW-2"))
    pid = existing["id"]
    r = post(
        api,
        transaction(
            entry("PUT", f"Patient?identifier={SYSTEM}|TW-2", patient("TW-2", "A")),
            entry("PUT", f"Patient/{pid}", {**patient("TW-2", "B"), "id": pid}),
        ),
    )
    assert r.status_code == 400
    assert read(api, f"Patient/{pid}")["meta"]["versionId"] == "1"


def test_an_entry_for_an_unknown_type_fails_the_transaction(api):
    before = counts()
    r = post(
        api,
        transaction(
            entry("POST", "Patient", patient("U-1")),
            entry("POST", "Spaceship", {"resourceType": "Spaceship"}),
        ),
    )
    assert r.status_code == 404
    assert counts() == before


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        {"resourceType": "Patient"},
        {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {}}]},
        {"resourceType": "Bundle", "type": "transaction", "entry": "nope"},
        [],
    ],
)
def test_a_post_to_the_base_that_is_not_a_transaction_or_batch_is_400(api, bundle):
    r = post(api, bundle)
    assert r.status_code == 400
    assert r.json_body["resourceType"] == "OperationOutcome"


def test_an_empty_transaction_answers_an_empty_response(api):
    assert ok(api, transaction()) == []


def test_prefer_return_minimal_leaves_resources_out_of_the_response(api):
    r = api.fhir(
        "POST",
        "/fhir",
        transaction(entry("POST", "Patient", patient("M-1"))),
        HTTP_PREFER="return=minimal",
    )
    assert r.status_code == 200
    only = r.json_body["entry"][0]
    assert "resource" not in only
    assert only["response"]["location"].startswith(f"{BASE}/Patient/")


def test_decimals_keep_their_text_in_a_transaction(api):
    text = json.dumps(transaction(entry("POST", "Observation", observation("Patient/x"))))
    text = text.replace(
        '"status": "final"', '"status": "final", "valueQuantity": {"value": 7.250E+1}'
    )
    r = api.fhir("POST", "/fhir", text)
    assert r.status_code == 200, r.content
    location = r.json_body["entry"][0]["response"]["location"]
    assert b'"value":7.250E+1' in api.fhir("GET", f"/fhir/{reference_of(location)}").content


@pytest.mark.parametrize(
    "request_fields",
    [
        {"method": "POST", "url": "Patient", "ifNoneExist": 5},
        {"method": "PUT", "url": "Patient/x", "ifMatch": 1},
        {"method": "GET", "url": "Patient/x", "ifNoneMatch": ['W/"1"']},
        {"method": "GET", "url": "Patient/x", "ifModifiedSince": 20200101},
        {"method": 7, "url": "Patient"},
        {"method": "POST", "url": {"type": "Patient"}},
    ],
)
def test_request_fields_that_are_not_strings_are_400(api, request_fields):
    api.fhir("PUT", "/fhir/Patient/x", {**patient("X-1"), "id": "x"})
    before = counts()
    body = {"resourceType": "Patient", "id": "x"}
    r = post(api, transaction({"request": request_fields, "resource": body}))
    assert r.status_code == 400, r.content
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert counts() == before


@pytest.mark.parametrize("data", [123, None, ["W3t9XQ=="], "not base64!"])
def test_patch_entry_whose_binary_data_is_not_base64_text_is_400(api, data):
    existing = create(api, patient("PA-1"))
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}
    r = post(api, transaction(entry("PATCH", f"Patient/{existing['id']}", binary)))
    assert r.status_code == 400, r.content
    assert read(api, f"Patient/{existing['id']}")["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    "bad",
    [
        entry("POST", "Patient", patient("DUP"), ifNoneExist=f"identifier={SYSTEM}|DUP"),
        entry("PUT", f"Patient?identifier={SYSTEM}|DUP", patient("DUP")),
        entry("POST", "Patient", patient("X"), ifNoneExist="shoe-size=9"),
    ],
)
def test_a_failing_condition_names_its_entry_and_writes_nothing(api, bad):
    create(api, patient("DUP"))
    create(api, patient("DUP"))
    before = counts()
    r = post(api, transaction(entry("POST", "Patient", patient("OK")), bad))
    assert r.status_code in (400, 412), r.content
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert "entry 1" in r.json_body["issue"][0]["diagnostics"].lower()
    assert counts() == before


def test_conditional_create_entry_that_finds_a_match_answers_like_a_create(api):
    """http.html#ccreate: 200 OK "with headers and body populated as they would have been"."""
    existing = create(api, patient("C-9"))
    bundle = transaction(
        entry("POST", "Patient", patient("C-9"), ifNoneExist=f"identifier={SYSTEM}|C-9")
    )
    (found,) = ok(api, bundle)
    assert found["response"]["status"].startswith("200")
    assert found["response"]["location"] == f"{BASE}/Patient/{existing['id']}/_history/1"
    assert found["response"]["etag"] == 'W/"1"'
    r = api.fhir("POST", "/fhir", bundle, HTTP_PREFER="return=minimal")
    assert "resource" not in r.json_body["entry"][0]


def test_deleting_and_conditionally_creating_the_same_resource_is_400(api):
    existing = create(api, patient("C-10"))
    before = counts()
    r = post(
        api,
        transaction(
            entry("DELETE", f"Patient/{existing['id']}"),
            entry("POST", "Patient", patient("C-10"), ifNoneExist=f"identifier={SYSTEM}|C-10"),
        ),
    )
    assert r.status_code == 400, r.content
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert counts() == before
