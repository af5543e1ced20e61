"""HTTP endpoints of the devices app: readings in, and the registry API for fleets.

Views only parse, call one service function and render; errors are OperationOutcomes (the
FHIR API's exception handler), so a device client sees one error format everywhere.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.shortcuts import get_object_or_404
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from fhir_api import bulk, json_io
from fhir_api.exception_handler import as_fhir_error
from fhir_api.exceptions import BadRequest
from fhir_api.parsers import read_body

from . import services
from .adapters import device_named, parse_payload
from .authentication import DeviceKeyAuthentication
from .models import Device
from .readings import Rejected, parse_time


class ReadingsView(APIView):
    """``POST /api/devices/readings``: a batch of readings; 202 with accepted/duplicate/rejected.

    Anything refused — a malformed payload, a reading out of range — is also kept as a dead
    letter (with the body as it came), so that it can be looked at and replayed; what came
    without a valid key only within the bounds of ``services.unauthenticated_letter``.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []

    def post(self, request):
        # The payload's readings are many containers, kept until written: no GC meanwhile.
        with bulk.gc_paused():
            return self._post(request)

    def _post(self, request):
        try:
            device = self._device(request)
        except Exception as exc:
            # Read no more than may be kept: anyone can send without a key.
            limit = settings.DEVICE_UNAUTHENTICATED_LETTER_BYTES
            body = request.stream.read(limit + 1) if request.stream is not None else b""
            error = as_fhir_error(exc)
            services.unauthenticated_letter(
                "http",
                self._claimed_device(body.decode("utf-8", "replace")),
                f"{error.status}: {error.diagnostics}",
                body,
            )
            raise
        body_text = read_body(request.stream).decode("utf-8", "replace")
        try:
            body = json_io.loads(body_text)
            named = device_named(body)
            if named is not None and named != device.identifier:
                raise BadRequest(
                    f"The payload is for device '{named}' but the key is device '{device.identifier}'s"
                )
            readings = parse_payload(body)
        except Exception as exc:
            error = as_fhir_error(exc)
            services.dead_letter(
                "http",
                self._claimed_device(body_text),
                f"{error.status}: {error.diagnostics}",
                body_text,
            )
            raise
        result = services.ingest(device, readings, source="http")
        return Response(result.as_json(), status=202)

    @staticmethod
    def _device(request) -> Device:
        auth = DeviceKeyAuthentication()
        _user, device = auth.authenticate(request)
        return device

    @staticmethod
    def _claimed_device(body_text: str) -> str:
        try:
            return device_named(json_io.loads(body_text)) or ""
        except Exception:
            return ""


def _when(value) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_time(value)
    except Rejected as exc:
        raise BadRequest(str(exc)) from None


def _device_json(device: Device) -> dict:
    current = device.pairings.filter(end=None).first()
    return {
        "identifier": device.identifier,
        "kind": device.kind,
        "fhir": f"Device/{device.fhir_id}",
        "patient": f"Patient/{current.patient_id}" if current else None,
        "battery": device.battery_level,
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
    }


class FleetView(APIView):
    """``/api/devices/``: list and register devices (staff bearer token)."""

    permission_classes = [IsAdminUser]

    def get(self, request):
        return Response(
            {"devices": [_device_json(d) for d in Device.objects.order_by("identifier")]}
        )

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        device = services.register_device(
            str(data.get("identifier", "")),
            kind=data.get("kind", Device.SENSOR),
            model_name=str(data.get("model", "")),
            manufacturer=str(data.get("manufacturer", "")),
        )
        body = _device_json(device)
        if data.get("patient"):
            services.pair(
                device,
                str(data["patient"]),
                start=_when(data.get("start")),
                by=request.user.username,
            )
            body = _device_json(device)
        body["key"] = services.issue_key(device)
        return Response(body, status=201)


class DeviceActionView(APIView):
    """``/api/devices/{identifier}/{pair|unpair|revoke|key}`` (staff bearer token)."""

    permission_classes = [IsAdminUser]

    def post(self, request, identifier: str, action: str):
        device = get_object_or_404(Device, identifier=identifier)
        data = request.data if isinstance(request.data, dict) else {}
        by = request.user.username
        if action == "pair":
            if not data.get("patient"):
                raise BadRequest('pair needs {"patient": "<Patient id>"}')
            services.pair(device, str(data["patient"]), start=_when(data.get("start")), by=by)
        elif action == "unpair":
            services.unpair(device, end=_when(data.get("end")), by=by)
        elif action == "revoke":
            services.revoke_keys(device)
        elif action == "key":
            return Response({**_device_json(device), "key": services.issue_key(device)}, status=201)
        return Response(_device_json(device))
