"""Request body parsers: FHIR JSON, plain JSON and JSON Patch (hl7.org/fhir/R4B/http.html#mime-type).

Bodies are parsed with ``json_io`` so that decimals keep their precision.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.parsers import BaseParser

from . import json_io
from .exceptions import PayloadTooLarge


def read_body(stream) -> bytes:
    body = stream.read(settings.FHIR_MAX_BODY_BYTES + 1) if stream is not None else b""
    if len(body) > settings.FHIR_MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is larger than {settings.FHIR_MAX_BODY_BYTES} bytes")
    return body


class FHIRJSONParser(BaseParser):
    media_type = "application/fhir+json"

    def parse(self, stream, media_type=None, parser_context=None):
        return json_io.loads(read_body(stream) or b"null")


class JSONParser(FHIRJSONParser):
    media_type = "application/json"


class JSONPatchParser(FHIRJSONParser):
    """RFC 6902 JSON Patch, the PATCH format FHIR servers accept (http.html#patch)."""

    media_type = "application/json-patch+json"
