"""``_include`` and ``_revinclude`` (hl7.org/fhir/R4B/search.html#include).

Included resources come from the reference index: forward includes follow the matched page's
references, reverse includes find resources that reference it. ``:iterate`` repeats on what was
included, a bounded number of rounds.
"""

from __future__ import annotations

from django.db.models import Q

from ..models import ReferenceIndex, Resource
from .query import Include
from .types.reference import local_q

MAX_ROUNDS = 4
MAX_INCLUDED = 5000


def _forward(rule: Include, rows: list[Resource]) -> set[tuple[str, str]]:
    sources = [r for r in rows if rule.source_type in ("*", r.resource_type)]
    if not sources:
        return set()
    refs = (
        ReferenceIndex.objects.filter(resource_id__in=[r.pk for r in sources])
        .exclude(target_id="")
        .filter(local_q())  # another server's Patient/1 is not ours
    )
    if rule.param != "*":
        refs = refs.filter(param=rule.param)
    if rule.target_type:
        refs = refs.filter(target_type=rule.target_type)
    return set(refs.values_list("target_type", "target_id"))


def _reverse(rule: Include, rows: list[Resource]) -> set[int]:
    if not rows:
        return set()
    targets = Q()
    by_type: dict[str, list[str]] = {}
    for r in rows:
        by_type.setdefault(r.resource_type, []).append(r.logical_id)
    for resource_type, ids in by_type.items():
        targets |= Q(target_type=resource_type, target_id__in=ids)
    refs = ReferenceIndex.objects.filter(targets).filter(local_q())
    if rule.source_type != "*":
        refs = refs.filter(resource_type=rule.source_type)
    if rule.param != "*":
        refs = refs.filter(param=rule.param)
    return set(refs.values_list("resource_id", flat=True))


def included(rules: list[Include], matches: list[Resource]) -> list[Resource]:
    """The resources the rules add to a page of matches, each once, none that already matched."""
    seen = {r.pk for r in matches}
    out: list[Resource] = []
    frontier = matches
    for round_number in range(MAX_ROUNDS):
        active = [r for r in rules if r.iterate or round_number == 0]
        if not active or not frontier:
            break
        keys: set[tuple[str, str]] = set()
        pks: set[int] = set()
        for rule in active:
            if rule.reverse:
                pks |= _reverse(rule, frontier)
            else:
                keys |= _forward(rule, frontier)
        found: list[Resource] = []
        if keys:
            q = Q()
            for resource_type, logical_id in keys:
                q |= Q(resource_type=resource_type, logical_id=logical_id)
            found.extend(Resource.objects.filter(q, deleted=False))
        if pks:
            found.extend(Resource.objects.filter(pk__in=pks, deleted=False))
        frontier = []
        for row in found:
            if row.pk not in seen and len(out) < MAX_INCLUDED:
                seen.add(row.pk)
                out.append(row)
                frontier.append(row)
    return out
