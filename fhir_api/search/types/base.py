"""What the per-type modules share: the query context, index-row subqueries, ``:missing``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Model, Q, QuerySet

from ...exceptions import BadRequest
from ...models import (
    CompositeIndex,
    DateIndex,
    NumberIndex,
    QuantityIndex,
    ReferenceIndex,
    StringIndex,
    TokenIndex,
    UriIndex,
)
from ..aliases import aliased_types, stored
from ..params import Criterion

MODEL_BY_TYPE = {
    "token": TokenIndex,
    "string": StringIndex,
    "date": DateIndex,
    "quantity": QuantityIndex,
    "number": NumberIndex,
    "reference": ReferenceIndex,
    "uri": UriIndex,
    "composite": CompositeIndex,
}
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True)
class Ctx:
    """The types searched, and the Patient the search is scoped to when it is.

    With ``patient`` set, index subqueries filter on the rows' ``patient`` column, so they scan
    only that patient's rows through the indexes that lead with it.
    """

    resource_types: tuple[str, ...]
    patient: str | None = None


@dataclass(frozen=True)
class Rows:
    """The index rows of one parameter, of the types searched (and of the patient the search is
    scoped to, when ``scoped``), that meet every one of ``conditions``. For a parameter that is
    the union of others (``search.aliases``), the rows of those (``param_q``).

    A description, not a QuerySet: building a QuerySet runs Django's filter machinery on every
    ``filter``, and for a usual search that was most of the server's CPU. ``search.index_sql``
    writes the SQL of a search made only of such rows without it; the ORM gets the QuerySet
    (``queryset``) when the search needs the general query.
    """

    ctx: Ctx
    model: type[Model]
    code: str
    scoped: bool = True
    conditions: tuple[Q, ...] = ()

    @property
    def patient(self) -> str | None:
        return self.ctx.patient if self.scoped else None

    def filter(self, q: Q) -> Rows:
        return replace(self, conditions=(*self.conditions, q))

    def queryset(self) -> QuerySet:
        qs = self.model.objects.all()
        types = self.ctx.resource_types
        if types == ("*",):  # a system search of every type
            pass
        elif len(types) == 1:
            qs = qs.filter(resource_type=types[0])
        else:
            qs = qs.filter(resource_type__in=types)
        if self.patient is not None:
            qs = qs.filter(patient=self.patient)
        qs = qs.filter(param_q(types, self.code))
        for condition in self.conditions:
            qs = qs.filter(condition)
        return qs

    def resolve_expression(self, *args: Any, **kwargs: Any) -> Any:
        """Django resolves a filter value that has this method: ``Q(pk__in=rows)`` becomes the
        subquery of the rows' resource ids when the ORM builds the query."""
        return self.queryset().values("resource_id").resolve_expression(*args, **kwargs)


def param_q(resource_types: tuple[str, ...], code: str) -> Q:
    """The rows that answer parameter ``code`` in the types searched: ``param = code``, or
    ``param IN (parts)`` where ``code`` is the union of other parameters (``search.aliases``),
    per type when the types searched differ in that."""
    if resource_types == ("*",):
        special = aliased_types(code)
        if not special:
            return Q(param=code)
        q = Q(param=code) & ~Q(resource_type__in=sorted(special))
        for resource_type, codes in special.items():
            q |= Q(resource_type=resource_type, param__in=codes)
        return q
    groups: dict[tuple[str, ...], list[str]] = {}
    for resource_type in resource_types:
        groups.setdefault(stored(resource_type, code), []).append(resource_type)
    if len(groups) <= 1:
        codes = next(iter(groups), (code,))
        return Q(param=codes[0]) if len(codes) == 1 else Q(param__in=codes)
    q = Q()
    for codes, types in groups.items():
        q |= Q(resource_type__in=types, param__in=codes)
    return q


def rows(ctx: Ctx, model: type[Model], code: str, *, scoped: bool = True) -> Rows:
    return Rows(ctx, model, code, scoped)


def having(found: Rows) -> Q:
    """The resources that have some of the rows ``found``."""
    return Q(pk__in=found)


def index_rows(q: Q) -> Rows | None:
    """The rows of a criterion that is only "has some of these index rows" (``having``), else
    None (negated, ``:missing=true``, ``_id``, ``_has``, several conditions …)."""
    if q.negated or len(q.children) != 1 or not isinstance(q.children[0], tuple):
        return None
    lookup, value = q.children[0]
    if lookup == "pk__in" and isinstance(value, Rows):
        return value
    return None


def missing(ctx: Ctx, criterion: Criterion) -> Q:
    """``:missing=true`` — no value for the parameter; ``false`` — some value (search.html#missing)."""
    if len(criterion.values) != 1 or criterion.values[0] not in ("true", "false"):
        raise BadRequest(f"{criterion.raw_name} takes true or false")
    present = having(rows(ctx, MODEL_BY_TYPE[criterion.type], criterion.code, scoped=False))
    return ~present if criterion.values[0] == "true" else present


def split_prefix(value: str) -> tuple[str, str]:
    if value[:2] in PREFIXES and len(value) > 2 and (value[2].isdigit() or value[2] in "-+."):
        return value[:2], value[2:]
    return "eq", value


def parse_number(text: str, what: str) -> tuple[float, float, float]:
    """A search number and its implicit precision range [low, high) (search.html#number)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise BadRequest(f"{what}: '{text}' is not a number") from None
    if not number.is_finite():
        raise BadRequest(f"{what}: '{text}' is not a finite number")
    exponent = number.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)
    return float(number), float(number - half), float(number + half)


def compare_point(column: str, prefix: str, n: float, lo: float, hi: float) -> Q:
    """A point value (quantity, number) against a search number ``n`` whose implicit
    precision range is [lo, hi) (search.html#prefix)."""
    if prefix == "eq":
        return Q(**{f"{column}__gte": lo, f"{column}__lt": hi})
    if prefix == "ne":
        return Q(**{f"{column}__lt": lo}) | Q(**{f"{column}__gte": hi})
    if prefix in ("gt", "sa"):
        return Q(**{f"{column}__gt": n})
    if prefix in ("lt", "eb"):
        return Q(**{f"{column}__lt": n})
    if prefix == "ge":
        return Q(**{f"{column}__gte": n})
    if prefix == "le":
        return Q(**{f"{column}__lte": n})
    margin = abs(n) * 0.1  # ap: within 10 % (search.html#prefix)
    return Q(**{f"{column}__gte": n - margin, f"{column}__lte": n + margin})
