"""Clinical roles of the clinicians' views: the groups, what each may do, and the checks.

Three Django groups, made by the data migration ``0002_clinician_roles`` (``ensure_roles``):

- ``nurse``: sees the ward and the patients' twins; acknowledges, assigns and comments alerts;
- ``clinician``: all a nurse does, and escalates and resolves alerts, changes a patient's
  NEWS2 settings and thresholds and lifecycle stage, records diagnoses, uploads DICOM files and
  links a quarantined imaging study to its Patient (both roles see the imaging admin);
- ``admin``: every permission of every app.

The views ask for a Django permission (``user.has_perm``), never for a group name, so a
superuser or a user given a single permission is handled the same way.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

CLINICIAN, NURSE, ADMIN = "clinician", "nurse", "admin"

VIEW = "twins.view_patienttwin"
TRIAGE = "twins.add_alertaction"  # acknowledge, assign, comment
MANAGE_ALERTS = "twins.change_alert"  # escalate, resolve
CHANGE_SETTINGS = "twins.change_patienttwin"  # NEWS2 scale, oxygen, consciousness, thresholds
CHANGE_STAGE = "twins.add_lifecycleevent"
DIAGNOSE = "twins.record_diagnosis"
# Not declared on a model (the twin's models belong to the twin): made by the migration.
CUSTOM_PERMISSIONS = {
    DIAGNOSE: ("patienttwin", "Can record a diagnosis (ClinicalImpression, Condition)")
}

ACTION_PERMISSION = {
    "acknowledge": TRIAGE,
    "assign": TRIAGE,
    "comment": TRIAGE,
    "escalate": MANAGE_ALERTS,
    "resolve": MANAGE_ALERTS,
}

_READ = (
    VIEW,
    "twins.view_alert",
    "twins.view_alertaction",
    "twins.view_lifecycleevent",
    "twins.view_vitalhour",
    "fhir_api.view_resource",
    "fhir_api.view_patientresource",
    "fhir_api.view_resourceversion",
    "devices.view_device",
    "devices.view_pairing",
    "imaging.view_dicomstudy",
    "imaging.view_dicominstance",
)
# Imaging (imaging.admin): upload DICOM files, link a quarantined study to its Patient.
IMAGING_UPLOAD = "imaging.add_dicominstance"
IMAGING_LINK = "imaging.change_dicomstudy"
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    NURSE: (*_READ, TRIAGE),
    CLINICIAN: (
        *_READ,
        TRIAGE,
        "twins.view_alert",
        MANAGE_ALERTS,
        CHANGE_SETTINGS,
        CHANGE_STAGE,
        DIAGNOSE,
        IMAGING_UPLOAD,
        IMAGING_LINK,
    ),
}


def ensure_roles(apps: Any = None) -> None:
    """Create (or bring up to date) the three groups; idempotent.

    ``apps`` is the migration's historical registry, or None for the running project's (tests
    call it after a database flush, which empties the groups).
    """
    if apps is None:
        from django.apps import apps as project_apps

        apps = project_apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    content_type_model = apps.get_model("contenttypes", "ContentType")
    for name, (model, label) in CUSTOM_PERMISSIONS.items():
        app_label, codename = name.split(".")
        content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model)
        permission_model.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": label}
        )
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        wanted = set(names)
        found = [
            p
            for p in permission_model.objects.select_related("content_type")
            if f"{p.content_type.app_label}.{p.codename}" in wanted
        ]
        group.permissions.set(found)
    admin, _ = group_model.objects.get_or_create(name=ADMIN)
    admin.permissions.set(permission_model.objects.all())


def require(user: Any, permission: str) -> None:
    """Raise ``PermissionDenied`` (HTTP 403) unless ``user`` has ``permission``."""
    if not user.has_perm(permission):
        raise PermissionDenied(f"Your role does not allow this ({permission}).")


def abilities(user: Any) -> dict[str, bool]:
    """What the user may do on the clinicians' pages, for templates to show only that."""
    return {
        "triage": user.has_perm(TRIAGE),
        "manage_alerts": user.has_perm(MANAGE_ALERTS),
        "settings": user.has_perm(CHANGE_SETTINGS),
        "stage": user.has_perm(CHANGE_STAGE),
        "diagnose": user.has_perm(DIAGNOSE),
    }
