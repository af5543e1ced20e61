"""composite parameters (hl7.org/fhir/R4B/search.html#composite): ``token$value``.

Both halves must hold on the same element (one component of a blood pressure, not one from
each), which the index guarantees by storing co-occurring pairs as one row.
"""

from __future__ import annotations

from django.db.models import Q

from ...exceptions import BadRequest
from ...models import CompositeIndex
from .. import registry
from ..extract import normalize
from ..params import Criterion, split_escaped, unescape
from .base import Ctx, having, missing, rows
from .date import value_q as date_q
from .quantity import quantity_q
from .token import value_q as token_value_q


def _second(kind: str, value: str) -> Q:
    if kind == "quantity" or kind == "number":
        return quantity_q(
            value,
            v="c2_value",
            system="c2_system",
            code="c2_code",
            cv="c2_canonical_value",
            cc="c2_canonical_code",
        )
    if kind == "date":
        return date_q(value, "c2_low", "c2_high")
    if kind == "string":
        return Q(c2_code__startswith=normalize(unescape(value)))
    if kind in ("token", "reference", "uri"):
        q = token_value_q(value)
        return Q(**{("c2_" + k): v for k, v in q.children})
    raise BadRequest(f"composite second component of type {kind} is not supported")


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    param = criterion.param
    assert param is not None
    second = registry.get(ctx.resource_types[0], param.components[1].code)
    kind = second.type if second else "token"
    ors = Q()
    for value in criterion.values:
        first, rest = split_escaped(value, "$")
        if rest is None:
            raise BadRequest(f"{criterion.code}='{value}': a composite value is [first]$[second]")
        q1 = token_value_q(first)
        ors |= Q(**{("c1_" + k): v for k, v in q1.children}) & _second(kind, rest)
    return having(rows(ctx, CompositeIndex, criterion.code).filter(ors))
