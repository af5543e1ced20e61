"""Response renderers: FHIR JSON (``application/fhir+json``) and plain ``application/json``.

A stored resource is passed through as the text it was stored as (a ``RawJSON``), so a read
costs no parse and no serialisation; ``_pretty=true`` re-indents (hl7.org/fhir/R4B/http.html#pretty).
"""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BaseRenderer
from simplejson import RawJSON

from . import json_io, query_string


def raw(text: str) -> RawJSON:
    """Wrap stored JSON text so that it is embedded as it is, not re-encoded."""
    return RawJSON(text)


def wants_pretty(request) -> bool:
    return request is not None and query_string.value(request, "_pretty") == "true"


class FHIRJSONRenderer(BaseRenderer):
    media_type = "application/fhir+json"
    format = "json"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        request = (renderer_context or {}).get("request")
        if wants_pretty(request):
            # A RawJSON is written as it is, even inside an indented Bundle: re-read the whole
            # answer so that embedded resources are indented too.
            return json_io.dumps(json_io.loads(json_io.dumps(data)), pretty=True).encode()
        if isinstance(data, RawJSON):
            return data.encoded_json.encode()
        return json_io.dumps(data).encode()


class JSONRenderer(FHIRJSONRenderer):
    media_type = "application/json"
