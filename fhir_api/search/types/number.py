"""number parameters (hl7.org/fhir/R4B/search.html#number), with the implicit precision range."""

from __future__ import annotations

from django.db.models import Q

from ...models import NumberIndex
from ..params import Criterion
from .base import Ctx, compare_point, having, missing, parse_number, rows, split_prefix


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    ors = Q()
    for value in criterion.values:
        prefix, text = split_prefix(value)
        ors |= compare_point("value", prefix, *parse_number(text, criterion.code))
    return having(rows(ctx, NumberIndex, criterion.code).filter(ors))
