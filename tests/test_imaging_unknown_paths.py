"""A DICOMweb path or method this server does not serve answers a 404 OperationOutcome naming
the endpoints it has, as every other DICOMweb error does (was Django's HTML "Not Found" page,
which a DICOMweb client cannot read), e.g. a STOW-RS POST to /dicomweb/studies/{study}."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/dicomweb/studies/1.2.3"),
        ("get", "/dicomweb/studies/1.2.3"),
        ("get", "/dicomweb/studies/1.2.3/series/4.5"),
        ("get", "/dicomweb/studies/1/series/2/instances/3/frames/1"),
        ("get", "/dicomweb/"),
        ("delete", "/dicomweb/studies/1/series/2"),
    ],
)
def test_an_unknown_dicomweb_path_is_a_404_operation_outcome(api, method, path):
    response = getattr(api, method)(path)
    assert response.status_code == 404
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "POST /dicomweb/studies" in body["issue"][0]["diagnostics"]


def test_the_known_endpoints_are_still_served(api):
    assert (
        api.get("/dicomweb/studies/1/series/2/instances/3")
        .json()["issue"][0]["diagnostics"]
        .startswith("No instance 3")
    )
    assert api.post("/dicomweb/studies", b"x", content_type="application/dicom").status_code == 415
