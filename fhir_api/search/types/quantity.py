"""quantity parameters (hl7.org/fhir/R4B/search.html#quantity): ``[prefix]number|system|code``.

With a UCUM unit in the conversion table the comparison is made in the canonical unit, so
``70|http://unitsofmeasure.org|kg`` finds a weight recorded in pounds; with another unit the
code must match; without a unit any unit matches.
"""

from __future__ import annotations

from django.db.models import Q

from ...exceptions import BadRequest
from ...models import QuantityIndex
from .. import ucum
from ..params import Criterion, split_escaped
from .base import Ctx, compare_point, having, missing, parse_number, rows, split_prefix


def quantity_q(value: str, *, v: str, system: str, code: str, cv: str, cc: str) -> Q:
    """One search value against the quantity columns named (shared with composite)."""
    prefix, text = split_prefix(value)
    number_text, rest = split_escaped(text, "|")
    n, lo, hi = parse_number(number_text, "quantity")
    if rest is None:
        return compare_point(v, prefix, n, lo, hi)
    unit_system, unit_code = split_escaped(rest, "|")
    if unit_code is None:
        raise BadRequest(f"quantity '{value}': use number|system|code (system may be empty)")
    if unit_system in ("", ucum.UCUM) and unit_code and ucum.canonical(n, unit_code):
        (cn, unit), (clo, _), (chi, _) = (ucum.canonical(x, unit_code) for x in (n, lo, hi))
        return compare_point(cv, prefix, cn, clo, chi) & Q(**{cc: unit})
    unit = Q(**{code: unit_code}) if unit_code else Q()
    if unit_system:
        unit &= Q(**{system: unit_system})
    return compare_point(v, prefix, n, lo, hi) & unit


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    ors = Q()
    for value in criterion.values:
        ors |= quantity_q(
            value,
            v="value",
            system="system",
            code="code",
            cv="canonical_value",
            cc="canonical_code",
        )
    return having(rows(ctx, QuantityIndex, criterion.code).filter(ors))
