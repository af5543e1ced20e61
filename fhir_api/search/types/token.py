"""token parameters (hl7.org/fhir/R4B/search.html#token): ``[system]|[code]``, ``:text``,
``:not``, ``:of-type``, ``:missing``."""

from __future__ import annotations

from django.db.models import Q

from ...exceptions import BadRequest
from ...models import TokenIndex
from ..extract import normalize
from ..params import Criterion, split_escaped, unescape
from .base import Ctx, having, missing, rows


def value_q(value: str) -> Q:
    """``[code]``, ``[system]|[code]``, ``|[code]`` or ``[system]|`` (search.html#token).

    ``\\|`` in a part is a literal bar (search.html#escaping), not the separator.
    """
    system, code = split_escaped(value, "|")
    if code is None:
        return Q(code=unescape(value))
    if system == "" and code == "":
        raise BadRequest("A token needs a code or a system: [system]|[code]")
    if code == "":
        return Q(system=unescape(system))
    return Q(system=unescape(system), code=unescape(code))


def match(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    if criterion.modifier == "text":
        ors = Q()
        for value in criterion.values:
            ors |= Q(text__contains=normalize(unescape(value)))
        return having(rows(ctx, TokenIndex, criterion.code).filter(ors))
    if criterion.modifier == "of-type":
        ors = Q()
        for value in criterion.values:
            system, rest = split_escaped(value, "|")
            code, ident = split_escaped(rest or "", "|") if rest is not None else ("", None)
            if rest is None or ident is None or not code or not ident:
                raise BadRequest(f"{criterion.raw_name} takes [system]|[code]|[value]")
            ors |= Q(system=unescape(system), code=f"{unescape(code)}|{unescape(ident)}")
        return having(rows(ctx, TokenIndex, f"{criterion.code}:of-type").filter(ors))
    ors = Q()
    for value in criterion.values:
        ors |= value_q(value)
    matching = having(rows(ctx, TokenIndex, criterion.code).filter(ors))
    # :not also matches resources that have no value at all (search.html#token).
    return ~matching if criterion.modifier == "not" else matching
