"""The SMART ``fhirclient`` 4.4.0 against the live production server, as a new user would use it.

fhirclient's models are FHIR R4 (4.0.1) and parse strictly; this server speaks R4B (4.3.0).
Without a SMART launch, a bearer token goes on the ``requests`` session of the ``FHIRServer``
(the client signs requests only after an OAuth2 flow). fhirclient has no If-Match or
If-None-Exist arguments either, so those headers go on the session too, around the one call.
It raises ``FHIRNotFoundException`` for 404 and ``requests.HTTPError`` for other errors
(412, 410, 422).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from fhirclient import client, server
from fhirclient.models.bundle import Bundle
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

pytestmark = pytest.mark.live

SYSTEM = "http://hospital.example/mrn"


@pytest.fixture
def smart(live) -> client.FHIRClient:
    """The documented entry point, settings only; ``prepare()`` reads our CapabilityStatement."""
    smart = client.FHIRClient(settings={"app_id": "clouddth-tests", "api_base": live["base"]})
    smart.server.session.headers["Authorization"] = f"Bearer {live['token']}"
    return smart


@pytest.fixture
def srv(smart) -> server.FHIRServer:
    return smart.server


@contextmanager
def header(srv: server.FHIRServer, name: str, value: str) -> Iterator[None]:
    srv.session.headers[name] = value
    try:
        yield
    finally:
        del srv.session.headers[name]


def create_patient(srv: server.FHIRServer, family: str = "Okafor", mrn: str | None = None):
    patient = Patient(
        {
            "identifier": [{"system": SYSTEM, "value": mrn or uuid.uuid4().hex}],
            "name": [{"family": family, "given": ["Ada"]}],
            "gender": "female",
            "birthDate": "1984-03-09",
        }
    )
    created = patient.create(srv)
    return Patient.read(created["id"], srv)


def test_capability_statement_parses_with_the_r4_models(smart):
    assert smart.prepare() is True  # fetches /metadata; no SMART security, so no OAuth2
    capability = smart.server.capabilityStatement
    assert capability.fhirVersion == "4.3.0"
    assert capability.kind == "instance"
    rest = capability.rest[0]
    patient = next(r for r in rest.resource if r.type == "Patient")
    assert {i.code for i in patient.interaction} >= {"read", "create", "update", "delete"}
    assert patient.versioning == "versioned-update"
    assert {i.code for i in rest.interaction} >= {"transaction", "batch"}


def test_create_then_read(srv):
    created = Patient({"name": [{"family": "Okafor", "given": ["Ada"]}], "birthDate": "1984-03-09"})

    answer = created.create(srv)

    patient = Patient.read(answer["id"], srv)
    assert patient.id == answer["id"]
    assert patient.meta.versionId == "1"
    assert patient.name[0].family == "Okafor"
    assert patient.name[0].given == ["Ada"]
    assert patient.birthDate.isostring == "1984-03-09"


def test_update_with_current_if_match(srv):
    patient = create_patient(srv)
    patient.gender = "other"

    with header(srv, "If-Match", 'W/"1"'):
        answer = patient.update()

    assert answer["meta"]["versionId"] == "2"
    read = Patient.read(patient.id, srv)
    assert read.gender == "other"
    assert read.meta.versionId == "2"


def test_update_with_stale_if_match_is_412_and_changes_nothing(srv):
    patient = create_patient(srv)
    patient.gender = "other"
    patient.update()  # version 2: W/"1" is now stale
    patient.gender = "unknown"

    with header(srv, "If-Match", 'W/"1"'), pytest.raises(requests.HTTPError) as raised:
        patient.update()

    assert raised.value.response.status_code == 412
    outcome = raised.value.response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "If-Match" in outcome["issue"][0]["diagnostics"]
    read = Patient.read(patient.id, srv)
    assert read.gender == "other"
    assert read.meta.versionId == "2"


def test_conditional_create_twice_makes_one_resource(srv):
    mrn = uuid.uuid4().hex
    body = {"identifier": [{"system": SYSTEM, "value": mrn}], "name": [{"family": "Nguyen"}]}

    with header(srv, "If-None-Exist", f"identifier={SYSTEM}|{mrn}"):
        first = Patient(body).create(srv)
        second = Patient({**body, "name": [{"family": "Changed"}]}).create(srv)

    assert second["id"] == first["id"]
    assert second["name"] == [{"family": "Nguyen"}]  # the existing one, not overwritten
    found = list(Patient.where({"identifier": f"{SYSTEM}|{mrn}"}).perform_resources_iter(srv))
    assert [p.id for p in found] == [first["id"]]


def test_search_pages_through_every_match(srv):
    mrns = [f"page-{n}" for n in range(5)]
    for mrn in mrns:
        create_patient(srv, mrn=mrn)

    search = Patient.where({"identifier": ",".join(f"{SYSTEM}|{m}" for m in mrns), "_count": "2"})
    found = list(search.perform_resources_iter(srv))

    assert sorted(p.identifier[0].value for p in found) == mrns
    assert len({p.id for p in found}) == 5


def test_history_of_a_patient(srv):
    patient = create_patient(srv, family="First")
    patient.name[0].family = "Second"
    patient.update()

    history = Bundle.read_from(f"Patient/{patient.id}/_history", srv)

    assert history.type == "history"
    assert history.total == 2
    assert [e.resource.meta.versionId for e in history.entry] == ["2", "1"]
    assert [e.resource.name[0].family for e in history.entry] == ["Second", "First"]
    assert [e.request.method for e in history.entry] == ["PUT", "POST"]
    version_1 = Patient.read_from(f"Patient/{patient.id}/_history/1", srv)
    assert version_1.name[0].family == "First"


def test_delete_then_read_is_410_gone(srv):
    patient = create_patient(srv)

    patient.delete()

    with pytest.raises(requests.HTTPError) as raised:
        Patient.read(patient.id, srv)
    assert raised.value.response.status_code == 410
    assert raised.value.response.json()["issue"][0]["code"] == "deleted"


def test_read_of_unknown_id_is_not_found(srv):
    with pytest.raises(server.FHIRNotFoundException) as raised:
        Patient.read("no-such-patient", srv)
    assert raised.value.response.status_code == 404


def test_transaction_links_urn_uuid_subject_to_the_new_patient(srv):
    patient_urn = f"urn:uuid:{uuid.uuid4()}"
    bundle = Bundle(
        {
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
    )

    response = Bundle(bundle.create(srv))

    assert response.type == "transaction-response"
    assert [e.response.status for e in response.entry] == ["201 Created", "201 Created"]
    patient_id = response.entry[0].response.location.split("/")[-3]
    observation_id = response.entry[1].response.location.split("/")[-3]
    observation = Observation.read(observation_id, srv)
    assert observation.subject.reference == f"Patient/{patient_id}"
    assert observation.valueQuantity.value == 72.5
    subject = observation.subject.resolved(Patient)
    assert subject.id == patient_id
    assert subject.name[0].family == "Tx"
