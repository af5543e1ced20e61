"""quantity parameters (hl7.org/fhir/R4B/search.html#quantity): ``[prefix]number|system|code``.

With a UCUM unit in the conversion table the comparison is made in the canonical unit, so
``70|http://unitsofmeasure.org|kg`` finds a weight recorded in pounds; with another system the
system and code must match; with an empty system (``5.4||mg``) the code or the human-readable
unit must be the one given, whatever the system; without a unit any unit matches.
"""

from __future__ import annotations

from django.db.models import Q

from ...exceptions import BadRequest
from ...models import QuantityIndex
from .. import ucum
from ..params import Criterion, split_escaped
from .base import Ctx, compare_point, having, missing, parse_number, rows, split_prefix


def quantity_q(
    value: str, *, v: str, system: str, code: str, cv: str, cc: str, unit: str | None = None
) -> Q:
    """One search value against the quantity columns named (shared with composite).

    ``unit`` names the column of the human-readable unit, when the table has one: with an empty
    system the code given may be either (search.html#quantity: ``5.4||mg``).
    """
    prefix, text = split_prefix(value)
    number_text, rest = split_escaped(text, "|")
    n, lo, hi = parse_number(number_text, "quantity")
    if rest is None:
        return compare_point(v, prefix, n, lo, hi)
    unit_system, unit_code = split_escaped(rest, "|")
    if unit_code is None:
        raise BadRequest(f"quantity '{value}': use number|system|code (system may be empty)")
    if unit_system == ucum.UCUM and unit_code and ucum.canonical(n, unit_code):
        return _canonical_q(prefix, n, lo, hi, unit_code, cv, cc)
    as_given = compare_point(v, prefix, n, lo, hi)
    if unit_system:
        return (
            as_given & Q(**{system: unit_system}) & (Q(**{code: unit_code}) if unit_code else Q())
        )
    if not unit_code:
        return as_given
    unit_q = Q(**{code: unit_code})
    if unit is not None:
        unit_q |= Q(**{unit: unit_code})
    return as_given & unit_q


def _canonical_q(
    prefix: str, n: float, lo: float, hi: float, unit_code: str, cv: str, cc: str
) -> Q:
    """A UCUM search value compared in canonical units (search.html#quantity).

    The conversions are increasing (a factor > 0 and an offset), so the bounds convert one by
    one; ``ap``'s 10 % is taken of the value as given (37 Cel ± 3.7), not of its canonical
    value (310.15 K ± 31).
    """

    def convert(x: float) -> float:
        converted = ucum.canonical(x, unit_code)
        assert converted is not None
        return converted[0]

    canonical_unit = ucum.canonical(n, unit_code)
    assert canonical_unit is not None
    same_unit = Q(**{cc: canonical_unit[1]})
    if prefix == "ap":
        margin = abs(n) * 0.1
        return same_unit & Q(
            **{f"{cv}__gte": convert(n - margin), f"{cv}__lte": convert(n + margin)}
        )
    return same_unit & compare_point(cv, prefix, convert(n), convert(lo), convert(hi))


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
            unit="unit",
        )
    return having(rows(ctx, QuantityIndex, criterion.code).filter(ors))
