"""date parameters (hl7.org/fhir/R4B/search.html#date).

Both the indexed value and the search value are intervals [low, high) (the search value's from
its precision: ``2026-03`` is all of March); each prefix compares the two as the specification's
table says.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from ...models import DateIndex
from ..dates import earlier, later, parse_interval
from ..params import Criterion
from .base import Ctx, having, missing, rows, split_prefix


def interval_q(prefix: str, low: datetime, high: datetime, lo: str = "low", hi: str = "high") -> Q:
    """Target interval [lo, hi) against search interval [low, high), as the table of
    hl7.org/fhir/R4B/search.html#prefix says for ranges: ``ge`` is "the range above the search
    value overlaps the target, or the search range fully contains it", so a target that starts
    before the search range and ends inside it is neither ``ge`` nor ``gt`` (``le`` likewise)."""
    if prefix == "eq":  # the target lies within the search range
        return Q(**{f"{lo}__gte": low, f"{hi}__lte": high})
    if prefix == "ne":
        return Q(**{f"{lo}__lt": low}) | Q(**{f"{hi}__gt": high})
    if prefix == "gt":  # some of the target is after the search range
        return Q(**{f"{hi}__gt": high})
    if prefix == "lt":  # some of the target is before it
        return Q(**{f"{lo}__lt": low})
    within = Q(**{f"{lo}__gte": low, f"{hi}__lte": high})
    if prefix == "ge":  # gt, or within the search range (not merely reaching into it)
        return Q(**{f"{hi}__gt": high}) | within
    if prefix == "le":  # lt, or within the search range
        return Q(**{f"{lo}__lt": low}) | within
    if prefix == "sa":  # starts after the search range ends
        return Q(**{f"{lo}__gte": high})
    if prefix == "eb":  # ends before it starts
        return Q(**{f"{hi}__lte": low})
    # ap: overlaps the search range widened by 10 % of its distance from now.
    margin = abs(timezone.now() - low) * 0.1
    return Q(**{f"{lo}__lt": later(high, margin), f"{hi}__gt": earlier(low, margin)})


def value_q(value: str, lo: str = "low", hi: str = "high") -> Q:
    prefix, text = split_prefix(value)
    interval = parse_interval(text)
    return interval_q(prefix, interval.low, interval.high, lo, hi)


def point_q(column: str, value: str) -> Q:
    """A column holding an instant (``_lastUpdated``) as the 1 µs interval it is."""
    prefix, text = split_prefix(value)
    iv = parse_interval(text)
    if prefix == "eq":
        return Q(**{f"{column}__gte": iv.low, f"{column}__lt": iv.high})
    if prefix == "ne":
        return Q(**{f"{column}__lt": iv.low}) | Q(**{f"{column}__gte": iv.high})
    if prefix in ("gt", "sa"):
        return Q(**{f"{column}__gte": iv.high})
    if prefix in ("lt", "eb"):
        return Q(**{f"{column}__lt": iv.low})
    if prefix == "ge":
        return Q(**{f"{column}__gte": iv.low})
    if prefix == "le":
        return Q(**{f"{column}__lt": iv.high})
    margin = abs(timezone.now() - iv.low) * 0.1
    return Q(**{f"{column}__gte": earlier(iv.low, margin), f"{column}__lt": later(iv.high, margin)})


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    ors = Q()
    for value in criterion.values:
        ors |= value_q(value)
    return having(rows(ctx, DateIndex, criterion.code).filter(ors))
