"""Search parameters that are the union of others, answered from the others' index rows.

R4B defines some parameters as the union of others of the same resource type, e.g.
Observation ``combo-code`` (``Observation.code | Observation.component.code``) is ``code``
(``Observation.code``) plus ``component-code`` (``Observation.component.code``), and
``combo-code-value-quantity`` (rooted at ``Observation | Observation.component``) is
``code-value-quantity`` plus ``component-code-value-quantity``. Extraction would give such a
parameter exactly the rows of its parts again: a device reading's Observation had 19.6 index
rows, 5.8 of them such repeats, and without them its ingest takes 0.122 instead of 0.155 ms of
PostgreSQL CPU (in process, 30,000 readings in batches of 500, medians of 5 interleaved runs).
So an alias has no rows of its own (``extract`` skips it, as does ``devices.indexrows``), and a
search reads the rows of its parts (``param IN (parts)`` instead of ``param = alias``;
``types.base.param_q``, ``index_sql``, ``query._sort_key``). Every search answer is the same, because every one of them asks whether
a resource has some matching row (or, for ``_sort``, its least or greatest row), never how many.

The map is derived from the registry, not listed: a parameter is an alias of ``parts`` when
its FHIRPath expression is a union (``A | B | …``) whose operands are exactly the operands of
the parts' expressions taken together, each part having only some of them, and the parts are
of the same parameter type (so the same index table and the same extraction rules), with the
same implied code system for a token, and, for a composite, the same components (expressions
and types). Reference parameters are never aliased: ``_include``, ``_revinclude``, chains and
compartments read their rows by the parameter's own code. For R4B this finds the six
Observation ``combo-*`` parameters.

A database indexed before this keeps its old alias rows until ``manage.py reindex``; searches
do not read them, so they are unused rather than counted twice.
"""

from __future__ import annotations

from functools import cache

from ..resource_types import RESOURCE_TYPES
from . import registry

# The suffix of the extra token rows an Identifier gets for ``:of-type`` (``extract._simple``).
OF_TYPE = ":of-type"


def _operands(expression: str) -> frozenset[str]:
    """The operands of a FHIRPath union at its top level, each without enclosing parentheses
    and with its whitespace normalised: ``(A as Quantity) | B`` → {``A as Quantity``, ``B``}."""
    operands, depth, quote, start = [], 0, False, 0
    i = 0
    while i < len(expression):
        ch = expression[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            operands.append(expression[start:i])
            start = i + 1
        i += 1
    operands.append(expression[start:])
    return frozenset(_unwrapped(" ".join(o.split())) for o in operands)


def _unwrapped(operand: str) -> str:
    """``operand`` without parentheses that enclose all of it: ``(A)`` → ``A``, not ``(A) | (B)``."""
    while operand.startswith("(") and operand.endswith(")"):
        depth = 0
        for i, ch in enumerate(operand):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(operand) - 1:
                return operand  # the first parenthesis closes before the end
        operand = operand[1:-1].strip()
    return operand


def _component_types(resource_type: str, param: registry.SearchParam) -> tuple | None:
    types = []
    for component in param.components:
        definition = registry.get(resource_type, component.code)
        if definition is None:
            return None
        types.append((component.expression, definition.type))
    return tuple(types)


def _same_kind(resource_type: str, a: registry.SearchParam, b: registry.SearchParam) -> bool:
    """Whether ``b``'s rows are made as ``a``'s would be from the same elements."""
    if a.type != b.type or a.type in ("reference", "special"):
        return False
    if a.type == "token":
        return a.code_system == b.code_system
    if a.type == "composite":
        first = _component_types(resource_type, a)
        return first is not None and first == _component_types(resource_type, b)
    return True


@cache
def aliases(resource_type: str) -> dict[str, tuple[str, ...]]:
    """The parameters of ``resource_type`` that have no rows of their own, and the parameters
    whose rows they are the union of: ``{"combo-code": ("code", "component-code"), …}``."""
    params = [p for p in registry.indexed_params(resource_type) if p.expression]
    operands = {p.code: _operands(p.expression or "") for p in params}
    found: dict[str, tuple[str, ...]] = {}
    # Fewer operands first, so that a part is known to have rows of its own when it is chosen.
    for param in sorted(params, key=lambda p: (len(operands[p.code]), p.code)):
        whole = operands[param.code]
        if len(whole) < 2:
            continue
        candidates = [
            p
            for p in params
            if p.code not in found
            and p.code != param.code
            and operands[p.code] < whole
            and _same_kind(resource_type, param, p)
        ]
        # The widest parts first; then drop any part the others already cover.
        candidates.sort(key=lambda p: (-len(operands[p.code]), p.code))
        chosen: list[str] = []
        covered: set[str] = set()
        for p in candidates:
            if not operands[p.code] <= covered:
                chosen.append(p.code)
                covered |= operands[p.code]
        if covered != whole:
            continue
        for code in list(chosen):
            rest = set().union(*(operands[c] for c in chosen if c != code))
            if rest == whole:
                chosen.remove(code)
        found[param.code] = tuple(sorted(chosen))
    return found


@cache
def stored(resource_type: str, code: str) -> tuple[str, ...]:
    """The ``param`` values of the index rows that answer ``code`` for ``resource_type``: its
    parts for an alias (and ``part:of-type`` for ``alias:of-type``), else ``code`` itself."""
    base, suffix = (code[: -len(OF_TYPE)], OF_TYPE) if code.endswith(OF_TYPE) else (code, "")
    parts = aliases(resource_type).get(base)
    if parts is None:
        return (code,)
    return tuple(part + suffix for part in parts)


@cache
def aliased_types(code: str) -> dict[str, tuple[str, ...]]:
    """For a search of every type (``*``): the types where ``code`` is an alias, with what
    ``stored`` answers for each."""
    out = {}
    for resource_type in sorted(RESOURCE_TYPES):
        codes = stored(resource_type, code)
        if codes != (code,):
            out[resource_type] = codes
    return out
