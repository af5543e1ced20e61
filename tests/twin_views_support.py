"""Helpers of the clinicians' views tests: users in each role, patients with a worn device,
and readings ingested as the HTTP endpoint does (the twin refreshed on commit)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group

from devices import services as devices
from devices.adapters import parse_payload
from devices.readings import parse_time
from fhir_api import services as store
from fhir_api.search.dates import format_instant
from twins.roles import CLINICIAN, NURSE, ensure_roles

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def vitals(at: datetime, hr=72, rr=16, spo2=97, temp=36.8, sbp=125, dbp=80) -> list[dict]:
    t = format_instant(at)
    return [
        {"type": "heart_rate", "value": hr, "unit": "/min", "time": t},
        {"type": "respiratory_rate", "value": rr, "unit": "/min", "time": t},
        {"type": "oxygen_saturation", "value": spo2, "unit": "%", "time": t},
        {"type": "body_temperature", "value": temp, "unit": "Cel", "time": t},
        {"type": "blood_pressure", "systolic": sbp, "diastolic": dbp, "unit": "mm[Hg]", "time": t},
    ]


def make_patient(family: str, given: str = "Ada", birth_date: str = "1940-05-01") -> str:
    body = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth_date,
    }
    return store.create("Patient", body).resource.logical_id


@pytest.fixture(autouse=True)
def roles(db, settings) -> None:
    """The role groups (a flush by a transactional test elsewhere empties them) and fast
    password hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ensure_roles()


def _member(django_user_model, username: str, group: str | None, **extra):
    user = django_user_model.objects.create_user(
        username, password="correct horse battery", is_staff=True, **extra
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def clinician_user(django_user_model):
    return _member(django_user_model, "dr.grey", CLINICIAN, first_name="Meredith", last_name="Grey")


@pytest.fixture
def nurse_user(django_user_model):
    return _member(django_user_model, "nurse.joy", NURSE, first_name="Joy", last_name="Hart")


@pytest.fixture
def clinician(client, clinician_user):
    client.force_login(clinician_user)
    return client


@pytest.fixture
def nurse(client, nurse_user):
    client.force_login(nurse_user)
    return client


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    """Ingest as the HTTP view does, running what is queued on commit (the twin's refresh)."""

    def ingest(device, readings):
        with django_capture_on_commit_callbacks(execute=True):
            return devices.ingest(device, parse_payload({"readings": readings}), source="http")

    return ingest


@pytest.fixture
def worn(db):
    """A function making a patient who wears a device of their own: (patient id, device)."""

    def make(family: str, serial: str, **kwargs) -> tuple[str, object]:
        patient = make_patient(family, **kwargs)
        device = devices.register_device(serial, model_name="Test band")
        devices.pair(device, patient, start=parse_time("2026-11-01T00:00:00Z"), by="tests")
        return patient, device

    return make
