"""A FHIR request's query string as the (name, value) pairs sent, in the order sent.

Search parameters are an ordered list with repeats, not a mapping (hl7.org/fhir/R4B/search.html:
``date=ge…&date=lt…`` is an AND of two criteria), so that is what the FHIR views read. It is
parsed once a request and kept on it. Django's ``request.GET`` (a ``QueryDict``) is not built for
FHIR requests: building one cost a one-patient search about 4 % of its server time, to be
flattened back into this list at once.

The text is decoded exactly as ``QueryDict`` decodes it (UTF-8, Latin-1 for a client that sends
raw non-UTF-8 bytes, ``+`` as a space, blank values kept), and a query with more than
``DATA_UPLOAD_MAX_NUMBER_FIELDS`` parameters is refused as Django refuses it (400).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent

_ATTRIBUTE = "_fhir_query_items"


def _django_request(request):
    """The Django ``HttpRequest`` under a DRF ``Request`` (or the request itself)."""
    return getattr(request, "_request", request)


def parse(query_string: str) -> list[tuple[str, str]]:
    """``query_string`` as WSGI gives it (a ``str`` of Latin-1 code points) to its pairs."""
    raw = query_string.encode("iso-8859-1", "replace")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        # Some user agents send raw Latin-1: QueryDict reads it the same way.
        text = raw.decode("iso-8859-1")
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if text and limit is not None and text.count("&") + 1 > limit:
        raise TooManyFieldsSent(
            "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        )
    # parse_qsl(text, keep_blank_values=True), step by step: a field without "=" has a blank
    # value, empty fields are skipped, and each name and value is decoded by ``_decoded``.
    pairs = []
    for field in text.split("&") if text else ():
        if field:
            name, _, value = field.partition("=")
            pairs.append((_decoded(name), _decoded(value)))
    return pairs


def _unquote_plus(part: str) -> str:
    """As parse_qsl decodes a name or value: ``+`` is a space, then %-escapes as UTF-8 (an
    invalid sequence as U+FFFD)."""
    return unquote(part.replace("+", " "))


# A client asks the same coded values all day (``http%3A%2F%2Floinc.org%7C8867-4%24gt120``):
# their decoding, pure Python in urllib, cost a patient's search as much as its links. Short
# parts are remembered, so the cache stays small whatever clients send.
_unquote_kept = lru_cache(maxsize=1024)(_unquote_plus)


def _decoded(part: str) -> str:
    if "%" not in part and "+" not in part:
        return part
    return _unquote_kept(part) if len(part) <= 256 else _unquote_plus(part)


def items(request) -> list[tuple[str, str]]:
    """Every (name, value) pair of ``request``'s query string, parsed once a request."""
    django_request = _django_request(request)
    pairs = getattr(django_request, _ATTRIBUTE, None)
    if pairs is None:
        pairs = parse(django_request.META.get("QUERY_STRING", ""))
        setattr(django_request, _ATTRIBUTE, pairs)
    return pairs


def value(request, name: str) -> str | None:
    """The value of parameter ``name`` (its last, if repeated, as ``QueryDict.get`` reads it),
    or None when the query has none."""
    found = None
    for key, val in items(request):
        if key == name:
            found = val
    return found
