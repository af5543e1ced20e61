"""uri parameters (hl7.org/fhir/R4B/search.html#uri): exact, ``:below`` and ``:above``."""

from __future__ import annotations

from django.db.models import Q

from ...models import UriIndex
from ..params import Criterion
from .base import Ctx, having, missing, rows


def prefixes(uri: str) -> list[str]:
    """``http://a/b/c`` → ``http://a/b/c``, ``http://a/b``, ``http://a``: what :above matches."""
    out = [uri]
    head = uri
    while "/" in head.rstrip("/"):
        head = head.rstrip("/").rsplit("/", 1)[0]
        if head.endswith(":/") or head.endswith(":"):
            break
        out.append(head)
    return out


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    ors = Q()
    for value in criterion.values:
        if criterion.modifier == "below":
            ors |= Q(value__startswith=value)
        elif criterion.modifier == "above":
            ors |= Q(value__in=prefixes(value))
        else:
            ors |= Q(value=value)
    return having(rows(ctx, UriIndex, criterion.code).filter(ors))
