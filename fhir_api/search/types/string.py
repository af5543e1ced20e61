"""string parameters (hl7.org/fhir/R4B/search.html#string): starts-with ignoring case and
accents by default, ``:exact``, ``:contains``, ``:missing``."""

from __future__ import annotations

from django.db.models import Q

from ...models import StringIndex
from ..extract import normalize
from ..params import Criterion, unescape
from .base import Ctx, having, missing, rows


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    ors = Q()
    for raw in criterion.values:
        value = unescape(raw)  # search.html#escaping: \, \| \$ \\ are literal characters
        if criterion.modifier == "exact":
            ors |= Q(exact=value)
        elif criterion.modifier == "contains":
            ors |= Q(value__contains=normalize(value))
        else:
            ors |= Q(value__startswith=normalize(value))
    return having(rows(ctx, StringIndex, criterion.code).filter(ors))
