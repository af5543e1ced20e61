"""reference parameters (hl7.org/fhir/R4B/search.html#reference): ``id``, ``Type/id``, an
absolute or canonical URL, ``:[type]``, ``:identifier``, ``:missing``, and chains
(``subject:Patient.name=peter``) to any depth."""

from __future__ import annotations

from django.db.models import Q

from ...exceptions import BadRequest
from ...models import ReferenceIndex, Resource
from ..extract import split_reference
from ..params import Criterion, split_escaped, unescape
from .base import Ctx, having, missing, rows


def value_q(value: str, target_type: str | None, targets: tuple[str, ...]) -> Q:
    if value.startswith(("http://", "https://", "urn:")):
        url_q = Q(url=unescape(value)) | Q(url=unescape(split_escaped(value, "|")[0]))
        parts = split_reference(value)
        return url_q | (Q(target_type=parts[0], target_id=parts[1]) if parts else Q(pk__in=[]))
    if "/" in value:
        parts = split_reference(value)
        if parts is None:
            raise BadRequest(f"'{value}' is not a reference: use [type]/[id] or [id]")
        if target_type and parts[0] != target_type:
            return Q(pk__in=[])
        return Q(target_type=parts[0], target_id=parts[1])
    if target_type:
        return Q(target_type=target_type, target_id=value)
    return Q(target_id=value, target_type__in=targets) if targets else Q(target_id=value)


def match(ctx: Ctx, criterion: Criterion, chain_q=None) -> Q:
    """``chain_q(target_type, criterion) -> Q`` filters the referenced resources of a chain."""
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    param = criterion.param
    targets = param.targets if param else ()
    qs = rows(ctx, ReferenceIndex, criterion.code)
    if criterion.chain is not None:
        assert chain_q is not None
        ors = Q()
        types = [criterion.target_type] if criterion.target_type else list(targets)
        for target in types:
            try:
                inner = chain_q(target, criterion.chain)
            except BadRequest:
                if len(types) == 1:
                    raise
                continue
            ids = Resource.objects.filter(resource_type=target, deleted=False).filter(inner)
            ors |= Q(target_type=target, target_id__in=ids.values("logical_id"))
        return having(qs.filter(ors))
    ors = Q()
    for value in criterion.values:
        if criterion.modifier == "identifier":
            system, code = split_escaped(value, "|")
            if code is None:
                ors |= Q(identifier_value=unescape(value))
            elif code == "":
                ors |= Q(identifier_system=unescape(system))
            else:
                ors |= Q(identifier_system=unescape(system), identifier_value=unescape(code))
        else:
            ors |= value_q(value, criterion.target_type, targets)
    return having(qs.filter(ors))
