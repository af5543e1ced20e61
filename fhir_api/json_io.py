"""JSON in and out without losing FHIR decimal precision.

FHIR decimals carry their precision in their text: ``72.50`` is not ``72.5``
(hl7.org/fhir/R4B/json.html#primitive). Parsing numbers as ``Decimal`` keeps every digit, and
``simplejson`` writes a ``Decimal`` back with ``str()``. ``str(Decimal("1.000E+2"))`` is
``100.0`` and ``str(Decimal("0.0000001"))`` is ``1E-7``, so a number whose ``Decimal`` would
print differently keeps its original text in a ``TextDecimal``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson
from simplejson.encoder import encode_basestring

from .exceptions import BadRequest


class TextDecimal(Decimal):
    """A ``Decimal`` that prints as the JSON text it was read from, e.g. ``1.000E+2``."""

    __slots__ = ("_text",)

    def __new__(cls, text: str) -> TextDecimal:
        value = super().__new__(cls, text)
        value._text = text
        return value

    def __str__(self) -> str:
        return self._text


def parse_decimal(text: str) -> Decimal:
    """A JSON number with a fraction or exponent, written back exactly as it was written."""
    value = Decimal(text)
    return value if str(value) == text else TextDecimal(text)


# Made once, as the encoders below: simplejson.loads with an argument of its own makes a new
# decoder (and its scanner) on each call, a fifth of the time to parse a small resource. A
# decoder keeps nothing between calls (the scanner clears its key memo after each document),
# as simplejson's own shared default decoder does not.
_DECODER = simplejson.JSONDecoder(parse_float=parse_decimal)


def loads(text: str | bytes) -> Any:
    """Parse JSON, numbers with a fraction or exponent as Decimal; NaN/Infinity are refused."""
    try:
        return _DECODER.decode(text)
    # ValueError: an integer past Python's 4,300-digit conversion limit.
    except (simplejson.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}", code="structure") from None


# Made once: simplejson.dumps with any argument of its own makes a new encoder on each call,
# which cost a small Bundle a third of its serialisation. An encoder keeps no state between
# calls (each ``encode`` has its own), so one serves every thread.
_COMPACT = simplejson.JSONEncoder(use_decimal=True, ensure_ascii=False, separators=(",", ":"))
_PRETTY = simplejson.JSONEncoder(use_decimal=True, ensure_ascii=False, indent=2)


def dumps(value: Any, *, pretty: bool = False) -> str:
    """Serialise to compact JSON (or indented with ``pretty``), decimals exactly as read."""
    return (_PRETTY if pretty else _COMPACT).encode(value)


def string(text: str) -> str:
    """``text`` as a JSON string literal (quoted and escaped; non-ASCII kept, as ``dumps``)."""
    return encode_basestring(text)
