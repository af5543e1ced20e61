"""uri parameters (hl7.org/fhir/R4B/search.html#uri): exact, ``:below`` and ``:above``.

URIs are case-sensitive (search.html#uri). ``startswith`` is a ``LIKE``, which SQLite folds
case for, so ``:below`` also compares the value's leading characters with ``=``: the same
answer on SQLite and PostgreSQL, and PostgreSQL can still use the ``LIKE`` on its index.
"""

from __future__ import annotations

from django.db.models import Q
from django.db.models.functions import Left
from django.db.models.lookups import Exact

from ...models import UriIndex
from ..params import Criterion, unescape
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


def below_q(column: str, prefix: str) -> Q:
    """``column`` starts with ``prefix``, case-sensitively on every database."""
    return Q(**{f"{column}__startswith": prefix}) & Q(Exact(Left(column, len(prefix)), prefix))


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    ors = Q()
    for raw in criterion.values:
        value = unescape(raw)
        if criterion.modifier == "below":
            ors |= below_q("value", value)
        elif criterion.modifier == "above":
            ors |= Q(value__in=prefixes(value))
        else:
            ors |= Q(value=value)
    return having(rows(ctx, UriIndex, criterion.code).filter(ors))
