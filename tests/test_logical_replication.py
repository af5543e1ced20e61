"""A database published for logical replication (change data capture, read replicas) still
takes updates and deletes of resources (fhir_api/migrations/0008): PostgreSQL refuses UPDATE
and DELETE on a published table that has no replica identity, and the search-index tables have
no primary key."""

from __future__ import annotations

import pytest
from django.db import connection

from .search_helpers import bundle, create

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="publications are PostgreSQL's"
)


@pytest.fixture
def published(db):
    # Inside the test's transaction: rolled back with it.
    with connection.cursor() as cursor:
        cursor.execute("CREATE PUBLICATION clouddth_test_cdc FOR ALL TABLES")


def test_update_and_delete_with_every_table_published(api, published):
    patient_id = create(
        api,
        {
            "resourceType": "Patient",
            "name": [{"family": "Replica"}],
            "identifier": [{"system": "urn:mrn", "value": "R-1"}],
            "birthDate": "1940-02-03",
        },
    )
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-11-01T10:00:00Z",
        "valueQuantity": {
            "value": 72,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    observation_id = create(api, observation)

    updated = {
        **observation,
        "id": observation_id,
        "valueQuantity": {**observation["valueQuantity"], "value": 130},
    }
    response = api.fhir("PUT", f"/fhir/Observation/{observation_id}", updated)
    assert response.status_code == 200, response.json_body
    found = bundle(api, f"Observation?patient={patient_id}&value-quantity=gt120")
    assert [e["resource"]["id"] for e in found["entry"]] == [observation_id]

    response = api.fhir("DELETE", f"/fhir/Observation/{observation_id}")
    assert response.status_code in (200, 204)
    assert bundle(api, f"Observation?patient={patient_id}").get("total") == 0
    response = api.fhir("DELETE", f"/fhir/Patient/{patient_id}")
    assert response.status_code in (200, 204)
