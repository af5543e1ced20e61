"""Who may use /dicomweb/: a Bearer token (as for the FHIR API) or a staff member's admin session;
a signed-in non-staff user, a revoked token or nobody gets an OperationOutcome, never a file."""

from __future__ import annotations

import pytest
from django.test import Client

from fhir_api.models import ApiToken
from imaging.services import store_files

from .imaging_intake_support import (
    CT,
    data_of,
    dataset_of,
    dicom_storage,  # noqa: F401 (fixture)
    stow_body,
)

pytestmark = pytest.mark.django_db


def instance_url() -> str:
    ds = dataset_of(CT)
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def test_staff_session_reads_and_stores(django_user_model, dicom_storage):  # noqa: F811
    store_files([("ct.dcm", data_of(CT))])
    staff = django_user_model.objects.create_user("radiographer", password="x", is_staff=True)
    client = Client(enforce_csrf_checks=False)
    client.force_login(staff)

    read = client.get(instance_url())
    body, content_type = stow_body([("ct.dcm", data_of(CT))])
    stored = client.generic("POST", "/dicomweb/studies", body, content_type=content_type)

    assert read.status_code == 200 and read.content == data_of(CT)
    assert stored.status_code == 200
    assert stored.json()["duplicates"][0]["sopInstanceUID"] == dataset_of(CT).SOPInstanceUID


def test_session_post_without_csrf_token_is_refused(django_user_model, dicom_storage):  # noqa: F811
    staff = django_user_model.objects.create_user("radiographer", password="x", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    body, content_type = stow_body([("ct.dcm", data_of(CT))])

    response = client.generic("POST", "/dicomweb/studies", body, content_type=content_type)

    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_non_staff_session_gets_403(django_user_model, dicom_storage):  # noqa: F811
    store_files([("ct.dcm", data_of(CT))])
    user = django_user_model.objects.create_user("visitor", password="x")
    client = Client()
    client.force_login(user)

    response = client.get(instance_url())

    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_revoked_token_gets_401(api, token, dicom_storage):  # noqa: F811
    store_files([("ct.dcm", data_of(CT))])
    assert api.get(instance_url()).status_code == 200
    ApiToken.objects.filter(key_hash=ApiToken.hash_key(token)).update(revoked=True)

    response = api.get(instance_url())

    assert response.status_code == 401
    assert response.json()["issue"][0]["code"] == "login"


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(api, settings, dicom_storage):  # noqa: F811
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body, content_type = stow_body([("ct.dcm", data_of(CT))])
    assert len(body) > 10_000

    response = api.generic("POST", "/dicomweb/studies", body, content_type=content_type)

    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"
    assert api.get(instance_url()).status_code == 404
