"""Content negotiation: ``Accept`` and the ``_format`` parameter (hl7.org/fhir/R4B/http.html#mime-type).

JSON is the only format served; a request for XML (or any other format only) is answered 406
with an OperationOutcome, and an XML body 415, rather than silently getting JSON.
"""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation

from . import query_string
from .exceptions import NotAcceptable, UnsupportedMediaType
from .renderers import FHIRJSONRenderer, JSONRenderer

FORMAT_ALIASES = {
    "json": "application/fhir+json",
    "application/json": "application/json",
    "application/fhir+json": "application/fhir+json",
    "text/json": "application/json",
}
JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}


def _media_types(header: str) -> list[str]:
    types = []
    for part in header.split(","):
        media = part.split(";")[0].strip().lower()
        if media:
            types.append(media)
    return types


class FHIRContentNegotiation(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        content_type = request.content_type.split(";")[0].strip().lower()
        if not content_type:
            # Many clients post JSON without a Content-Type; FHIR JSON is the only body we take.
            return parsers[0] if parsers else None
        if content_type in JSON_TYPES:
            # Plain JSON (fhirpy, curl) and the DSTU2 name application/json+fhir are FHIR JSON
            # too: http.html#mime-type reads json and application/json as the JSON format.
            content_type = "application/fhir+json"
        for parser in parsers:
            if parser.media_type == content_type:
                return parser
        raise UnsupportedMediaType(
            f"Content-Type '{content_type}' is not supported: send application/fhir+json"
            + (" (JSON Patch: application/json-patch+json)" if request.method == "PATCH" else "")
        )

    def select_renderer(self, request, renderers, format_suffix=None):
        by_type = {r.media_type: r for r in renderers}
        fhir = by_type.get(FHIRJSONRenderer.media_type, renderers[0])
        plain = by_type.get(JSONRenderer.media_type, fhir)
        fmt = query_string.value(request, "_format")
        if fmt:
            # An unescaped "+" in a query string reads as a space: _format=application/fhir+json.
            chosen = FORMAT_ALIASES.get(fmt.split(";")[0].strip().lower().replace(" ", "+"))
            if chosen is None:
                raise NotAcceptable(
                    f"_format={fmt} is not supported: this server speaks JSON only"
                    " (_format=json or application/fhir+json)"
                )
            renderer = plain if chosen == "application/json" else fhir
            return renderer, renderer.media_type
        accept = _media_types(request.META.get("HTTP_ACCEPT", ""))
        if not accept:
            return fhir, fhir.media_type
        for media in accept:
            if media in ("application/fhir+json", "application/json+fhir"):
                return fhir, fhir.media_type
            if media in ("application/json", "text/json"):
                return plain, plain.media_type
            if media in ("*/*", "application/*") or media.endswith("/html"):
                return fhir, fhir.media_type
        raise NotAcceptable(
            f"Accept '{request.META.get('HTTP_ACCEPT')}' cannot be met: this server answers in"
            " application/fhir+json (XML is not supported)"
        )
