"""DICOMweb-style endpoints (DICOM PS3.18): STOW-RS store and WADO-RS instance retrieval.

- ``POST /dicomweb/studies`` (PS3.18 10.5, Store Transaction): a ``multipart/related;
  type="application/dicom"`` body, one file per part. Answers JSON listing the stored, duplicate
  and failed instances: 200 all stored (or already held), 202 some stored and some failed; when
  none is stored an OperationOutcome naming each problem: 409 if any was a conflict with what is
  stored, else 400.
- ``GET /dicomweb/studies/{study}/series/{series}/instances/{instance}`` (PS3.18 10.4,
  Retrieve Transaction): the stored file as ``application/dicom``, byte for byte (inside a
  ``multipart/related; type="application/dicom"`` body when the client accepts that, as
  DICOMweb clients do by default); with
  ``?deidentify=true`` a copy de-identified by the Basic Profile (``deidentify.py``).

Authentication is the FHIR API's: a Bearer token, or a staff member's admin session. Errors are
OperationOutcomes (https://hl7.org/fhir/R4B/operationoutcome.html) like the FHIR API's.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from fhir_api.authentication import BearerTokenAuthentication
from fhir_api.exceptions import BadRequest, Conflict, FHIRError, Issue, NotFound, PayloadTooLarge
from fhir_api.renderers import FHIRJSONRenderer

from . import services
from .deidentify import deidentified_copy
from .models import DicomInstance
from .multipart import DICOM, parse_related, related_body, wants_multipart
from .storage import read_instance


class TokenOrStaffSession(BasePermission):
    """A Bearer token's user, or a staff member signed in to the admin."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        return request.auth is not None or user.is_staff


class OutcomeNegotiation(BaseContentNegotiation):
    """Answers are DICOM files or JSON written by the views; errors are FHIR JSON."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = FHIRJSONRenderer()
        return renderer, renderer.media_type


class DicomWebView(APIView):
    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [TokenOrStaffSession]
    content_negotiation_class = OutcomeNegotiation
    parser_classes: list = []

    def initial(self, request, *args, **kwargs) -> None:
        # No UID holds a NUL byte (%00), which PostgreSQL refuses in a query: nothing found.
        for value in kwargs.values():
            if isinstance(value, str) and "\x00" in value:
                raise NotFound(f"No DICOM object has the UID {value!r}")
        super().initial(request, *args, **kwargs)


class UnknownView(DicomWebView):
    """Any other path under /dicomweb/: a 404 OperationOutcome, never Django's HTML page."""

    permission_classes: list = []

    def _unknown(self, request, *args, **kwargs):
        raise NotFound(
            f"{request.method} {request.path} is not a DICOMweb endpoint of this server"
            " (STOW-RS: POST /dicomweb/studies; WADO-RS: GET /dicomweb/studies/{study}"
            "/series/{series}/instances/{instance}[/rendered])"
        )

    get = post = put = patch = delete = _unknown


def _instance_json(instance: DicomInstance, request) -> dict[str, Any]:
    study = instance.study
    url = request.build_absolute_uri(
        f"/dicomweb/studies/{study.study_uid}/series/{instance.series_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
    return {
        "studyInstanceUID": study.study_uid,
        "seriesInstanceUID": instance.series_uid,
        "sopInstanceUID": instance.sop_instance_uid,
        "sopClassUID": instance.sop_class_uid,
        "url": url,
        "imagingStudy": (
            f"ImagingStudy/{study.imaging_study_id}" if study.imaging_study_id else None
        ),
        "quarantined": study.quarantined,
        "preview": instance.preview,
    }


def _issues(failed: list[tuple[str, str]]) -> list[Issue]:
    return [Issue("error", "invalid", f"{name}: {reason}") for name, reason in failed]


class StudiesView(DicomWebView):
    """POST /dicomweb/studies: STOW-RS (DICOM PS3.18 10.5)."""

    def post(self, request):
        try:
            body = request.body
        except RequestDataTooBig:
            raise PayloadTooLarge("The body is larger than the server accepts") from None
        parts = parse_related(request.META.get("CONTENT_TYPE", ""), body)
        if not parts:
            raise BadRequest("The multipart/related body has no part")
        files, refused = [], []
        for part in parts:
            if part.content_type != DICOM:
                refused.append((part.name, f"part of type {part.content_type}, not {DICOM}"))
            else:
                files.append((part.name, part.data))
        result = services.store_files(files, by=_who(request))
        result.failed[:0] = refused
        if not result.stored and not result.duplicates:
            conflicts = {name for name, _ in result.conflicts}
            issues = [
                Issue("error", "conflict" if name in conflicts else "invalid", f"{name}: {why}")
                for name, why in result.failed
            ]
            error: FHIRError = Conflict if conflicts else BadRequest  # type: ignore[assignment]
            raise error("No instance was stored", issues=issues)
        return JsonResponse(
            {
                "stored": [_instance_json(i, request) for i in result.stored],
                "duplicates": [_instance_json(i, request) for i in result.duplicates],
                "failed": [{"file": name, "reason": why} for name, why in result.failed],
            },
            status=202 if result.failed else 200,
        )


def _who(request) -> str:
    user = request.user
    return getattr(user, "get_username", lambda: "")() if user is not None else ""


def _deidentify_wanted(request) -> bool:
    value = request.query_params.get("deidentify", "false").strip().lower()
    if value not in {"true", "false"}:
        raise BadRequest(f"deidentify={value!r}: give true or false")
    return value == "true"


class InstanceView(DicomWebView):
    """GET /dicomweb/studies/{study}/series/{series}/instances/{instance}: WADO-RS."""

    def get(self, request, study: str, series: str, instance: str):
        deidentify = _deidentify_wanted(request)
        found = (
            DicomInstance.objects.select_related("study")
            .filter(sop_instance_uid=instance, series_uid=series, study__study_uid=study)
            .first()
        )
        if found is None:
            raise NotFound(f"No instance {instance} in series {series} of study {study}")
        data = read_instance(found)
        if deidentify:
            data = deidentified_copy(data)
        if wants_multipart(request.META.get("HTTP_ACCEPT", "")):
            body, content_type = related_body(data)
            response = HttpResponse(body, content_type=content_type)
        else:
            response = HttpResponse(data, content_type=DICOM)
            suffix = "-deidentified" if deidentify else ""
            response["Content-Disposition"] = f'attachment; filename="{instance}{suffix}.dcm"'
        response["Content-Length"] = str(len(response.content))
        return response
