"""JSON in and out without losing FHIR decimal precision.

FHIR decimals carry their precision in their text: ``72.50`` is not ``72.5``
(hl7.org/fhir/R4B/json.html#primitive). Parsing numbers as ``Decimal`` keeps every digit, and
``simplejson`` writes a ``Decimal`` back exactly as it was read.
"""

from __future__ import annotations

from typing import Any

import simplejson

from .exceptions import BadRequest


def loads(text: str | bytes) -> Any:
    """Parse JSON, numbers with a fraction or exponent as Decimal; NaN/Infinity are refused."""
    try:
        return simplejson.loads(text, use_decimal=True)
    except (simplejson.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}", code="structure") from None


def dumps(value: Any, *, pretty: bool = False) -> str:
    """Serialise to compact JSON (or indented with ``pretty``), decimals exactly as read."""
    if pretty:
        return simplejson.dumps(value, use_decimal=True, ensure_ascii=False, indent=2)
    return simplejson.dumps(value, use_decimal=True, ensure_ascii=False, separators=(",", ":"))
