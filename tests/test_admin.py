"""The Django admin as a clinician uses it: patients, any stored resource with its versions,
and the API tokens; read-only, and closed to users who are not staff."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Permission

from fhir_api import services
from fhir_api.models import ApiToken, Resource

PATIENTS = "/admin/fhir_api/patientresource/"
RESOURCES = "/admin/fhir_api/resource/"
TOKENS = "/admin/fhir_api/apitoken/"
VIEW_PERMISSIONS = (
    "view_resource",
    "view_patientresource",
    "view_resourceversion",
    "view_apitoken",
)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(django_user_model):
    """A clinician with staff access and the view permissions of the FHIR store's pages."""
    user = django_user_model.objects.create_user(
        "dr.house", password="correct horse battery", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="fhir_api", codename__in=VIEW_PERMISSIONS)
    )
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def column(html: str, field: str) -> list[str]:
    """The values of one column of the version-history inline, top to bottom."""
    return re.findall(rf'<td class="field-{field}">\s*<p>(\w+)</p>', html)


def page(response) -> str:
    """The page as a person reads it: HTML entities decoded."""
    assert response.status_code == 200, response.status_code
    return unescape(response.content.decode())


def make_patient(family: str, given: str, birth_date: str = "1984-03-09") -> Resource:
    body = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth_date,
    }
    return services.create("Patient", body).resource


def update_patient(row: Resource, **changes) -> Resource:
    body = {"resourceType": "Patient", "id": row.logical_id, **changes}
    return services.update("Patient", row.logical_id, body).resource


def test_login_form_lets_staff_in(client, staff):
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "dr.house", "password": "correct horse battery", "next": "/admin/"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    home = page(client.get("/admin/"))
    assert "Patients" in home
    assert "API tokens" in home


def test_patient_list_shows_name_birth_date_and_gender(staff_client, db):
    ada = make_patient("Okafor", "Ada")
    make_patient("Nguyen", "Minh", "1990-12-01")
    observation = services.create(
        "Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}}
    ).resource

    html = page(staff_client.get(PATIENTS))

    assert "Ada Okafor" in html
    assert "Minh Nguyen" in html
    assert "1984-03-09" in html and "1990-12-01" in html
    assert ada.logical_id in html
    assert observation.logical_id not in html  # patients only
    assert "2 patients" in html


def test_patient_page_shows_pretty_json_and_every_version(staff_client, db):
    row = make_patient("Okafor", "Ada")
    update_patient(row, name=[{"family": "Okafor-Smith", "given": ["Ada"]}])
    update_patient(row, name=[{"family": "Smith", "given": ["Ada"]}], gender="female")

    html = page(staff_client.get(f"{PATIENTS}{row.pk}/change/"))

    # The current JSON, indented, as the clinician reads it.
    assert '"family": "Smith"' in html
    assert '"versionId": "3"' in html
    assert f'"id": "{row.logical_id}"' in html
    # The version history inline: one row per version, newest first, each with its content.
    assert column(html, "version_id") == ["3", "2", "1"]
    assert column(html, "method") == ["PUT", "PUT", "POST"]
    assert '"family": "Okafor-Smith"' in html  # version 2
    assert '"family": "Okafor"' in html  # version 1
    # Read-only: nothing to save.
    assert 'name="_save"' not in html


def test_deleted_patient_shows_the_tombstone_version(staff_client, db):
    row = make_patient("Okafor", "Ada")
    services.delete("Patient", row.logical_id)

    html = page(staff_client.get(f"{PATIENTS}{row.pk}/change/"))

    assert "(deleted)" in html
    assert column(html, "method") == ["DELETE", "POST"]
    assert '"family": "Okafor"' in html  # the version before the delete is still there


def test_resource_list_filtered_by_type(staff_client, db):
    patient = make_patient("Okafor", "Ada")
    observation = services.create(
        "Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}}
    ).resource

    everything = page(staff_client.get(RESOURCES))
    observations = page(staff_client.get(RESOURCES, {"resource_type": "Observation"}))

    assert patient.logical_id in everything and observation.logical_id in everything
    assert observation.logical_id in observations
    assert patient.logical_id not in observations
    # The type filter lists the types stored.
    assert "?resource_type=Observation" in everything
    assert "?resource_type=Patient" in everything


def test_resource_page_of_an_observation_keeps_decimal_text(staff_client, db):
    row = services.create(
        "Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Heart rate"},
            "valueQuantity": {"value": Decimal("72.50"), "unit": "/min"},
        },
    ).resource

    html = page(staff_client.get(f"{RESOURCES}{row.pk}/change/"))

    assert '"value": 72.50' in html
    assert '"text": "Heart rate"' in html


def test_api_token_list_shows_prefix_owner_and_name_but_not_the_secret(staff_client, staff):
    token, secret = ApiToken.issue(staff, name="ward tablet")

    html = page(staff_client.get(TOKENS))

    assert token.prefix in html
    assert "ward tablet" in html
    assert "dr.house" in html
    assert secret not in html
    assert token.key_hash not in html


@pytest.mark.parametrize("url", ["/admin/", PATIENTS, RESOURCES, TOKENS])
def test_non_staff_user_is_sent_to_the_login(client, django_user_model, url):
    clinician = django_user_model.objects.create_user("nurse", password="x" * 12)
    client.force_login(clinician)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_anonymous_user_is_sent_to_the_login(client, db):
    response = client.get(PATIENTS)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={PATIENTS}"
