"""reference parameters (hl7.org/fhir/R4B/search.html#reference): ``id``, ``Type/id``, an
absolute or canonical URL, ``:[type]``, ``:identifier``, ``:missing``, and chains
(``subject:Patient.name=peter``) to any depth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet

from ...exceptions import BadRequest
from ...models import ReferenceIndex, Resource
from ..extract import split_reference
from ..params import Criterion, HasClause, split_escaped, unescape
from .base import Ctx, having, index_rows, missing, rows
from .uri import below_q

# Matches no row. ``Q(pk__in=[])`` would make Django give up on the whole subquery
# (EmptyResultSet), which it does not recover from inside ``pk__in`` and answered 500.
NOTHING = Q(pk__isnull=True)


# The base URL of the request being served (``views.FHIRView`` sets it for each request): this
# server's own base when ``FHIR_BASE_URL`` is not configured.
_request_base: ContextVar[str] = ContextVar("fhir_request_base", default="")


@contextmanager
def serving(base: str) -> Iterator[None]:
    """While a request to ``base`` (``https://host/fhir``) is served, absolute references under
    it are this server's, and those under any other base are not."""
    token = _request_base.set(base.rstrip("/"))
    try:
        yield
    finally:
        _request_base.reset(token)


def own_base() -> str:
    """This server's base URL: ``FHIR_BASE_URL``, else the base of the request being served
    (its host, as the client addressed it), else "" (outside a request: not known)."""
    return settings.FHIR_BASE_URL or _request_base.get()


def local_q() -> Q:
    """Reference rows that point into this server: relative, or absolute under our base.

    ``Patient/1`` on this server is not ``http://other.org/fhir/Patient/1`` (search.html#reference).
    Our base is ``FHIR_BASE_URL`` or, unset, the base the request was addressed to; where there
    is neither (a management command), every absolute reference's ``Type/id`` is taken as local.
    """
    base = own_base()
    if not base:
        return Q()
    return Q(url="") | below_q("url", base + "/")


def _is_local(url: str) -> bool:
    base = own_base()
    return not base or url.startswith(base + "/")


def value_q(value: str, target_type: str | None, targets: tuple[str, ...]) -> Q:
    if value.startswith(("http://", "https://", "urn:")):
        url, version = split_escaped(value, "|")
        url = unescape(url)
        if version is None:
            # A canonical without |version matches every version (search.html#versions).
            url_q = Q(url=url) | below_q("url", url + "|")
        else:
            url_q = Q(url=f"{url}|{unescape(version)}") | Q(url=url)
        parts = split_reference(url)
        if parts is None or not _is_local(url) or (target_type and parts[0] != target_type):
            return url_q
        # Our own absolute URL also finds the relative references to the resource.
        return url_q | (Q(target_type=parts[0], target_id=parts[1]) & local_q())
    if "/" in value:
        parts = split_reference(value)
        if parts is None:
            raise BadRequest(f"'{value}' is not a reference: use [type]/[id] or [id]")
        if target_type and parts[0] != target_type:
            return NOTHING
        return Q(target_type=parts[0], target_id=parts[1]) & local_q()
    if target_type:
        return Q(target_type=target_type, target_id=value) & local_q()
    if targets:
        return Q(target_id=value, target_type__in=targets) & local_q()
    return Q(target_id=value) & local_q()


def list_q(criterion: Criterion) -> Q:
    """``_list=[id]`` (search.html#list): the resources that List/[id] holds in ``entry.item``,
    found through the reference index (the List's ``item`` rows point at them)."""
    items = ReferenceIndex.objects.filter(
        resource_type="List",
        param="item",
        resource__logical_id__in=criterion.values,
        resource__deleted=False,
        target_type=OuterRef("resource_type"),
        target_id=OuterRef("logical_id"),
    ).filter(local_q())
    return Q(Exists(items))


ChainQ = Callable[[str, Criterion], Q]


def _chain_targets(criterion: Criterion, chain_q: ChainQ) -> Q:
    """Reference rows whose target matches the chained criterion, for each target type."""
    param = criterion.param
    chains = criterion.chains or {t: criterion.chain for t in (param.targets if param else ())}
    ors = Q()
    error: BadRequest | None = None
    for target, chained in chains.items():
        assert chained is not None
        try:
            ids = chain_ids(target, chained, chain_q)
        except BadRequest as exc:  # a value this target's parameter cannot take
            error = exc
            continue
        ors |= Q(target_type=target, target_id__in=ids)
    if not ors and error is not None:
        raise error
    return ors & local_q()


def chain_ids(target: str, criterion: Criterion, chain_q: ChainQ) -> QuerySet:
    """Logical ids of the ``target`` resources that match ``criterion`` (search.html#chaining).

    A hop that is itself a chain (``organization.name`` of ``subject:Patient.organization.name``)
    is one subquery over the reference rows joined to their resource, not a resource subquery
    around an index subquery: SQLite's parser accepts only so many nested subqueries, and each
    hop then costs one.
    """
    if criterion.type == "reference" and criterion.chain is not None:
        refs = ReferenceIndex.objects.filter(
            resource_type=target, param=criterion.code, resource__deleted=False
        )
        return refs.filter(_chain_targets(criterion, chain_q)).values("resource__logical_id")
    inner = chain_q(target, criterion)
    found = index_rows(inner)
    if found is not None:  # the last hop of most chains: its index rows, joined
        rows_qs = found.queryset().filter(resource__deleted=False)
        return rows_qs.values("resource__logical_id")
    matching = Resource.objects.filter(resource_type=target, deleted=False)
    return matching.filter(inner).values("logical_id")


def has_q(ctx: Ctx, has: HasClause, criterion_q: ChainQ) -> Q:
    """``_has:Observation:patient:code=…`` (search.html#has): the resources that matching
    Observations reference through ``patient``.

    The sources' criterion is applied to their reference rows through the rows' resource (a
    join) rather than as a resource subquery, so that each nested ``_has`` costs one subquery
    (SQLite's parser accepts only so many nested ones).
    """
    inner = criterion_q(has.source_type, has.criterion)
    refs = ReferenceIndex.objects.filter(
        resource_type=has.source_type,
        param=has.reference_param,
        target_type__in=ctx.resource_types,
        resource__deleted=False,
    ).filter(local_q())
    on_source = _through_resource(inner)
    if on_source is None:
        sources = Resource.objects.filter(resource_type=has.source_type).filter(inner)
        refs = refs.filter(resource_id__in=sources.values("pk"))
    else:
        refs = refs.filter(on_source)
    return Q(logical_id__in=refs.values("target_id"))


def _through_resource(q: Q) -> Q | None:
    """A filter on ``Resource`` rewritten for rows that have a ``resource`` foreign key (each
    lookup prefixed with ``resource__``); None when it holds expressions, which cannot be."""
    out = Q()
    out.connector, out.negated = q.connector, q.negated
    for child in q.children:
        if isinstance(child, Q):
            inner = _through_resource(child)
            if inner is None:
                return None
            out.children.append(inner)
        elif isinstance(child, tuple):
            out.children.append((f"resource__{child[0]}", child[1]))
        else:
            return None
    return out


def match(ctx: Ctx, criterion: Criterion, chain_q: ChainQ | None = None) -> Q:
    """``chain_q(target_type, criterion) -> Q`` filters the referenced resources of a chain."""
    if criterion.modifier == "missing":
        return missing(ctx, criterion)
    param = criterion.param
    targets = param.targets if param else ()
    qs = rows(ctx, ReferenceIndex, criterion.code)
    if criterion.chain is not None:
        assert chain_q is not None
        return having(qs.filter(_chain_targets(criterion, chain_q)))
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
