"""fhirpy 2.3.1 (beda-software's sync client) against the live production server, as a new user
would.

What a user of fhirpy should expect from this server:

- writes go out as ``Content-Type: application/json`` (``requests`` ``json=``) and are accepted;
- fhirpy has no If-Match argument: a client made with ``extra_headers={"If-Match": ...}`` sends
  it, and a stale version is refused with 412, which fhirpy raises as ``MultipleResourcesFound``
  (its name for every 412);
- conditional create is ``searchset.get_or_create(resource)``, which fhirpy sends as
  ``POST [base]/Patient?identifier=...`` (no If-None-Exist header): one resource, however often
  it is called;
- 404 and 410 are both raised as ``ResourceNotFound``;
- ``resource.patch(**fields)`` sends a partial resource, not a JSON Patch: refused with 400.
"""

from __future__ import annotations

import uuid

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, OperationOutcome, ResourceNotFound

pytestmark = pytest.mark.live

SYSTEM = "http://hospital.example/mrn"


@pytest.fixture
def client(live) -> SyncFHIRClient:
    return SyncFHIRClient(live["base"], authorization=f"Bearer {live['token']}")


def with_headers(live, **headers: str) -> SyncFHIRClient:
    """A client that adds headers to every request (how fhirpy sends If-Match/If-None-Exist)."""
    return SyncFHIRClient(
        live["base"], authorization=f"Bearer {live['token']}", extra_headers=headers
    )


def new_patient(client: SyncFHIRClient, family: str = "Okafor", mrn: str | None = None):
    patient = client.resource(
        "Patient",
        identifier=[{"system": SYSTEM, "value": mrn or uuid.uuid4().hex}],
        name=[{"family": family, "given": ["Ada"]}],
        gender="female",
        birthDate="1984-03-09",
    )
    patient.save()
    return patient


def test_create_assigns_id_and_version_and_read_returns_the_content(client):
    patient = new_patient(client)

    assert patient.id
    assert patient["meta"]["versionId"] == "1"
    read = client.get("Patient", patient.id)
    assert read["name"] == [{"family": "Okafor", "given": ["Ada"]}]
    assert read["birthDate"] == "1984-03-09"
    assert read["identifier"] == patient["identifier"]
    # The same through a reference, as fhirpy users resolve links.
    assert client.reference("Patient", patient.id).to_resource()["gender"] == "female"


def test_update_with_current_if_match_makes_version_2(client, live):
    patient = new_patient(client)
    patient["gender"] = "other"

    guarded = with_headers(live, **{"If-Match": 'W/"1"'})
    guarded.resource("Patient", **patient).save()

    read = client.get("Patient", patient.id)
    assert read["gender"] == "other"
    assert read["meta"]["versionId"] == "2"


def test_update_with_stale_if_match_is_refused_and_changes_nothing(client, live):
    patient = new_patient(client)
    patient["gender"] = "other"
    patient.save()  # now version 2, so W/"1" is stale
    patient["gender"] = "unknown"

    guarded = with_headers(live, **{"If-Match": 'W/"1"'})
    with pytest.raises(MultipleResourcesFound) as raised:  # fhirpy's exception for any 412
        guarded.resource("Patient", **patient).save()

    assert "If-Match" in str(raised.value)
    read = client.get("Patient", patient.id)
    assert read["gender"] == "other"
    assert read["meta"]["versionId"] == "2"


def test_get_or_create_twice_makes_one_resource(client):
    mrn = uuid.uuid4().hex
    wanted = client.resource(
        "Patient", identifier=[{"system": SYSTEM, "value": mrn}], name=[{"family": "Nguyen"}]
    )
    search = client.resources("Patient").search(identifier=f"{SYSTEM}|{mrn}")

    first, created_first = search.get_or_create(wanted)
    second, created_second = search.get_or_create(wanted)

    assert (created_first, created_second) == (True, False)
    assert second.id == first.id
    assert search.count() == 1
    assert second["name"] == [{"family": "Nguyen"}]


def test_resource_create_with_search_params_is_conditional(client):
    """``resource.create(identifier=...)``: fhirpy's other spelling of a conditional create."""
    existing = new_patient(client, mrn="mrn-77")
    again = client.resource(
        "Patient", identifier=[{"system": SYSTEM, "value": "mrn-77"}], name=[{"family": "Dup"}]
    )

    again.create(identifier=f"{SYSTEM}|mrn-77")

    assert again.id == existing.id
    assert again["name"] == [{"family": "Okafor", "given": ["Ada"]}]  # the stored one, unchanged
    assert client.resources("Patient").search(identifier=f"{SYSTEM}|mrn-77").count() == 1


def test_if_none_exist_header_twice_makes_one_resource(client, live):
    mrn = uuid.uuid4().hex
    conditional = with_headers(live, **{"If-None-Exist": f"identifier={SYSTEM}|{mrn}"})
    body = {"identifier": [{"system": SYSTEM, "value": mrn}], "name": [{"family": "Hdr"}]}

    first = conditional.resource("Patient", **body)
    first.save()
    second = conditional.resource("Patient", **body)
    second.save()

    assert second.id == first.id
    assert second["meta"]["versionId"] == "1"
    assert client.resources("Patient").search(identifier=f"{SYSTEM}|{mrn}").count() == 1


def test_condition_in_both_header_and_url_is_refused(client, live):
    """If-None-Exist and a search in the URL at once are ambiguous: 400, nothing created."""
    conditional = with_headers(live, **{"If-None-Exist": f"identifier={SYSTEM}|a"})
    wanted = conditional.resource("Patient", identifier=[{"system": SYSTEM, "value": "b"}])

    with pytest.raises(OperationOutcome) as raised:
        conditional.resources("Patient").search(identifier=f"{SYSTEM}|b").get_or_create(wanted)

    assert "If-None-Exist" in str(raised.value)
    assert client.resources("Patient").count() == 0


def test_conditional_create_with_two_matches_is_refused(client):
    new_patient(client, mrn="twin")
    new_patient(client, mrn="twin")
    wanted = client.resource("Patient", identifier=[{"system": SYSTEM, "value": "twin"}])

    with pytest.raises(MultipleResourcesFound):
        client.resources("Patient").search(identifier=f"{SYSTEM}|twin").get_or_create(wanted)

    assert client.resources("Patient").search(identifier=f"{SYSTEM}|twin").count() == 2


def test_iterating_a_search_follows_the_next_links(client):
    mrns = [f"page-{n}" for n in range(5)]
    for mrn in mrns:
        new_patient(client, mrn=mrn)

    search = client.resources("Patient").search(identifier=",".join(f"{SYSTEM}|{m}" for m in mrns))
    first_page = search.limit(2).fetch_raw()
    found = list(search.limit(2))  # three pages of at most two

    assert len(first_page["entry"]) == 2
    assert "next" in [link["relation"] for link in first_page["link"]]
    assert sorted(p["identifier"][0]["value"] for p in found) == mrns
    assert len({p.id for p in found}) == 5


def test_history_lists_every_version_newest_first(client):
    patient = new_patient(client, family="First")
    patient["name"] = [{"family": "Second"}]
    patient.save()
    patient["name"] = [{"family": "Third"}]
    patient.save()

    history = client.execute(f"Patient/{patient.id}/_history", method="get")

    assert history["type"] == "history"
    assert history["total"] == 3
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]
    assert [e["resource"]["name"][0]["family"] for e in history["entry"]] == [
        "Third",
        "Second",
        "First",
    ]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "PUT", "POST"]
    # And one old version by vread.
    old = client.execute(f"Patient/{patient.id}/_history/1", method="get")
    assert old["name"][0]["family"] == "First"


def test_delete_then_read_raises_resource_not_found(client):
    patient = new_patient(client)

    patient.delete()

    with pytest.raises(ResourceNotFound) as raised:
        client.get("Patient", patient.id)
    assert '"deleted"' in str(raised.value)  # the 410's OperationOutcome issue code
    history = client.execute(f"Patient/{patient.id}/_history", method="get")
    assert history["total"] == 2
    assert history["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in history["entry"][0]


def test_invalid_resource_is_refused_with_its_operation_outcome(client):
    bad = client.resource("Patient", birthDate="last tuesday")

    with pytest.raises(OperationOutcome) as raised:
        bad.save()

    assert raised.value.resource["issue"][0]["severity"] == "error"
    assert "Patient.birthDate" in str(raised.value)
    assert client.resources("Patient").count() == 0


def test_fhirpy_merge_style_patch_is_refused_and_changes_nothing(client):
    """fhirpy's ``patch(**fields)`` sends a partial resource; FHIR PATCH takes JSON Patch."""
    patient = new_patient(client)

    with pytest.raises(OperationOutcome) as raised:
        patient.patch(gender="other")

    assert "JSON Patch" in str(raised.value)
    read = client.get("Patient", patient.id)
    assert (read["gender"], read["meta"]["versionId"]) == ("female", "1")


def test_transaction_links_urn_uuid_subject_to_the_new_patient(client):
    patient_urn = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_urn,
                "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": patient_urn},
                    "valueQuantity": {"value": 72.5, "unit": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }

    response = client.execute("", method="post", data=bundle)

    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 2
    patient_id = response["entry"][0]["response"]["location"].split("/")[-3]
    observation_id = response["entry"][1]["response"]["location"].split("/")[-3]
    observation = client.reference("Observation", observation_id).to_resource()
    assert observation["subject"]["reference"] == f"Patient/{patient_id}"
    assert observation["valueQuantity"]["value"] == 72.5
    assert observation["subject"].to_resource()["name"] == [{"family": "Tx"}]
