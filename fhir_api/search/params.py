"""Parsing search parameters into criteria (hl7.org/fhir/R4B/search.html).

``name[:modifier]=value[,value]`` becomes a ``Criterion`` with its registry definition, its
modifier, its OR-ed values (commas split, ``\\,`` kept) and, for a chain
(``subject:Patient.name=…``) the criterion it applies to the referenced type; ``_has`` is
parsed into its reverse chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import BadRequest
from ..resource_types import RESOURCE_TYPES
from . import registry
from .extract import searchable_codes
from .registry import SearchParam

# Parameters that select on columns of the resource table, not on index tables.
COLUMN_PARAMS = {"_id": "token", "_lastUpdated": "date"}
# Modifiers each type accepts (search.html#modifiers); "missing" is accepted by all.
MODIFIERS = {
    "token": {"text", "not", "above", "below", "in", "not-in", "of-type", "missing"},
    "string": {"exact", "contains", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "reference": {"identifier", "missing", "above", "below"},  # plus :[type]
    "uri": {"above", "below", "missing"},
    "composite": {"missing"},
}
SUPPORTED_MODIFIERS = {
    "token": {"text", "not", "of-type", "missing"},
    "string": {"exact", "contains", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "reference": {"identifier", "missing"},
    "uri": {"above", "below", "missing"},
    "composite": {"missing"},
}


@dataclass
class Criterion:
    code: str  # the parameter code, e.g. "subject"
    type: str  # token, string, date, …, "has" or "list"
    param: SearchParam | None  # None for _id/_lastUpdated/_has/_list
    modifier: str = ""
    values: list[str] = field(default_factory=list)  # OR-ed
    target_type: str | None = None  # reference :[type] modifier or chain type
    chain: Criterion | None = None  # criterion on the referenced resource (the first)
    chains: dict[str, Criterion] = field(default_factory=dict)  # per target type of a chain
    has: HasClause | None = None

    @property
    def raw_name(self) -> str:
        name = self.code + (f":{self.modifier}" if self.modifier else "")
        if self.target_type and not self.modifier:
            name += f":{self.target_type}"
        if self.chain is not None:
            name += f".{self.chain.raw_name}"
        return name


@dataclass
class HasClause:
    """``_has:Observation:patient:code=…``: resources referenced by matching Observations."""

    source_type: str
    reference_param: str
    criterion: Criterion


def split_values(value: str) -> list[str]:
    """Split on commas not escaped with a backslash (search.html#escaping).

    ``\\,`` becomes a plain comma; the other escapes (``\\|``, ``\\$``, ``\\\\``) are kept,
    because ``|`` and ``$`` still separate the parts of a token, quantity or composite value:
    the type modules split on them with ``split_escaped`` and then ``unescape`` each part.
    """
    if "\\" not in value:  # nearly every value: no escapes, so a plain split is the answer
        return value.split(",")
    parts, current, escaped = [], [], False
    for ch in value:
        if escaped:
            current.append(ch if ch == "," else "\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


# Values one parameter may OR, and criteria one search may AND: each is a term of the
# statement's WHERE, and SQLite refuses expressions nested past 1,000 terms. The same limits on
# every database keep the answers the same.
MAX_OR_VALUES = 100
MAX_CRITERIA = 100


def or_values(name: str, value: str) -> list[str]:
    """The OR-ed values of a parameter, leaving out empty ones (``code=a,`` is ``code=a``):
    an empty token would otherwise match the rows of CodeableConcepts that have only a text."""
    values = [v for v in split_values(value) if v != ""]
    if not values:
        raise BadRequest(f"'{name}={value[:200]}' gives no value")
    if len(values) > MAX_OR_VALUES:
        raise BadRequest(
            f"'{name}' gives {len(values)} values: at most {MAX_OR_VALUES} are OR-ed",
            code="too-costly",
        )
    return values


def unescape(value: str) -> str:
    """``\\|`` ``\\$`` ``\\,`` ``\\\\`` → ``|`` ``$`` ``,`` ``\\`` in one part of a value
    (search.html#escaping); other backslashes are left as they are."""
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in ",|$\\":
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def split_escaped(value: str, sep: str) -> tuple[str, str | None]:
    """Split once on an unescaped ``sep`` (``|`` or ``$``); None when there is none."""
    i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == sep:
            return value[:i], value[i + 1 :]
        i += 1
    return value, None


# The largest whole number a parameter takes (``_offset``, ``_snapshot``, a cursor): what a signed
# 64-bit column, LIMIT and OFFSET hold on PostgreSQL and SQLite alike.
MAX_WHOLE = 2**63 - 1


def whole_number(name: str, value: str, minimum: int = 0, *, cap: int | None = None) -> int:
    """A whole number written in ASCII digits (``²`` and ``٣`` are digits to Python, not to FHIR).

    Above ``cap`` it is ``cap`` (``_count`` beyond the maximum is the maximum); without a cap a
    number no column can hold is refused, 400, rather than overflowing in the database.
    """
    if not (value.isascii() and value.isdigit()):
        raise BadRequest(f"{name}={value[:40]!r} must be a whole number ≥ {minimum}")
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(MAX_WHOLE)) or int(digits) > MAX_WHOLE:
        if cap is not None:
            return cap
        raise BadRequest(f"{name}={value[:40]}…: at most {MAX_WHOLE}", code="too-costly")
    number = int(digits)
    if number < minimum:
        raise BadRequest(f"{name}={value!r} must be a whole number ≥ {minimum}")
    return number if cap is None else min(number, cap)


def check_text(name: str, value: str) -> None:
    """Refuse a NUL character (``%00``) in a parameter's name or value: no FHIR string holds
    one (hl7.org/fhir/R4B/datatypes.html#string), and PostgreSQL cannot compare with one."""
    if "\x00" in name or "\x00" in value:
        shown = name.replace("\x00", "%00")[:80]
        raise BadRequest(f"The parameter '{shown}' holds a NUL character (%00), which no value can")


class UnknownParameter(BadRequest):
    """Raised for a parameter or modifier this server does not know or support."""

    code = "not-supported"


def parse_criterion(resource_type: str, name: str, value: str) -> Criterion:
    """One ``name=value`` pair of a search on ``resource_type``."""
    if name.startswith("_has:"):
        return _parse_has(resource_type, name, value)
    head, dot, rest = name.partition(".")
    code, _, modifier = head.partition(":")
    if code in COLUMN_PARAMS:
        if modifier and modifier != "missing" and not (code == "_id" and modifier == "not"):
            raise UnknownParameter(f"Modifier :{modifier} is not supported on {code}")
        return Criterion(code, COLUMN_PARAMS[code], None, modifier, or_values(name, value))
    if code == "_list":
        return _parse_list(modifier, value)
    param = registry.get(resource_type, code)
    if param is None or code not in searchable_codes(resource_type):
        raise UnknownParameter(f"Unknown search parameter '{code}' for {resource_type}")
    target_type = None
    if param.type == "reference" and modifier and modifier in RESOURCE_TYPES:
        target_type, modifier = modifier, ""
    if modifier and modifier not in SUPPORTED_MODIFIERS.get(param.type, set()):
        raise UnknownParameter(
            f"Modifier :{modifier} is not supported on {param.type} parameter '{code}'"
        )
    values = [] if dot else or_values(name, value)
    criterion = Criterion(code, param.type, param, modifier, values, target_type)
    if dot:
        if param.type != "reference":
            raise BadRequest(f"'{name}': only reference parameters can be chained")
        criterion.chains = _parse_chain(param, target_type, rest, value)
        criterion.chain = next(iter(criterion.chains.values()))
        if len(criterion.chains) == 1 and (target_type or len(param.targets) == 1):
            criterion.target_type = next(iter(criterion.chains))
        _check_links(criterion, name)
    return criterion


# Reference links (chain hops and ``_has`` levels) one criterion may follow. Each is a nested
# subquery, and SQLite's parser refuses statements nested much deeper; the same limit on every
# database keeps the answers the same (search.html#chaining leaves the depth to the server).
MAX_LINKS = 4


def links(criterion: Criterion) -> int:
    """How many references a criterion follows: ``subject:Patient.organization.name`` → 2."""
    if criterion.has is not None:
        return 1 + links(criterion.has.criterion)
    if criterion.chains:
        return 1 + max(links(c) for c in criterion.chains.values())
    return 0


class TooManyLinks(UnknownParameter):
    """A chain or ``_has`` deeper than ``MAX_LINKS``: not supported, whichever target."""


def _check_links(criterion: Criterion, name: str) -> None:
    if links(criterion) > MAX_LINKS:
        raise TooManyLinks(
            f"'{name}' follows more than {MAX_LINKS} references (chains and _has): not supported"
        )


def _parse_chain(
    param: SearchParam, target_type: str | None, rest: str, value: str
) -> dict[str, Criterion]:
    """The chained criterion parsed for each target type that has it (search.html#chaining).

    Without a ``:[type]`` a chain applies to every target type that has the parameter, each
    with that type's own definition of it (``type`` is a token on most types, a uri on
    StructureDefinition); targets that lack it are left out.
    """
    targets = [target_type] if target_type else list(param.targets)
    chains: dict[str, Criterion] = {}
    error: BadRequest | None = None
    for target in targets:
        try:
            chains[target] = parse_criterion(target, rest, value)
        except TooManyLinks:
            raise
        except UnknownParameter:
            continue
        except BadRequest as exc:
            if len(targets) == 1:
                raise
            error = exc
    if not chains:
        if error is not None:
            raise error
        raise UnknownParameter(f"'{rest}' is not a parameter of {', '.join(targets)}")
    return chains


def _parse_list(modifier: str, value: str) -> Criterion:
    """``_list=[id]``: the resources that List/[id] holds (search.html#list).

    Functional lists (``_list=$current-problems``) are not supported: an unknown parameter.
    """
    if modifier:
        raise UnknownParameter(f"Modifier :{modifier} is not supported on _list")
    values = [unescape(v) for v in or_values("_list", value)]
    if any(v.startswith("$") for v in values):
        raise UnknownParameter("Functional lists (_list=$…) are not supported")
    return Criterion("_list", "list", None, values=values)


def _parse_has(resource_type: str, name: str, value: str) -> Criterion:
    parts = name.split(":", 3)
    if len(parts) < 4:
        raise BadRequest(f"'{name}': _has takes _has:[type]:[reference param]:[param]")
    _, source_type, reference_param, inner_name = parts
    # An unknown type or reference parameter makes an unknown parameter: refused when strict,
    # ignored when lenient (search.html#errors).
    if source_type not in RESOURCE_TYPES:
        raise UnknownParameter(f"'{name}': unknown resource type {source_type}")
    ref = registry.get(source_type, reference_param)
    if (
        ref is None
        or ref.type != "reference"
        or reference_param not in searchable_codes(source_type)
    ):
        raise UnknownParameter(
            f"'{name}': {reference_param} is not a reference parameter of {source_type}"
        )
    inner = parse_criterion(source_type, inner_name, value)
    criterion = Criterion(
        "_has", "has", None, values=[], has=HasClause(source_type, reference_param, inner)
    )
    _check_links(criterion, name)
    return criterion
