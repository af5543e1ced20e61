"""A DICOMweb URL whose UID holds a NUL byte (``%00``) is a 404 OperationOutcome, not a 500
(PostgreSQL refuses a NUL in a query)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/dicomweb/studies/%00/series/1.2/instances/1.2.3",
        "/dicomweb/studies/1.2/series/1%002/instances/1.2.3",
        "/dicomweb/studies/1.2/series/1.2/instances/1.2.3%00",
        "/dicomweb/studies/%00/series/1.2/instances/1.2.3/rendered",
        "/dicomweb/studies/1.2/series/1.2/instances/%00/frames/1/rendered",
    ],
)
def test_a_uid_with_a_nul_byte_is_a_404_operation_outcome(api, path):
    response = api.get(path, HTTP_ACCEPT="*/*")
    assert response.status_code == 404
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"
