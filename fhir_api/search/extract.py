"""Index extraction: from a resource's JSON to the rows of the typed search-index tables.

Runs at write time, in the write's transaction, and in ``reindex``; the same code for both. For
each search parameter of the type (``registry.indexed_params``) the compiled expression
(``fhirpath.compile_path``) picks the elements, and the parameter type's rules turn them into
values (hl7.org/fhir/R4B/search.html#ptypes): a CodeableConcept gives a token row per coding,
a Period a [low, high) date interval, a HumanName a string row per part, and so on. A parameter
that is the union of others (Observation ``combo-code``…, see ``search.aliases``) gets no rows:
search reads its parts' rows.

Rows are plain tuples keyed by table so that the bulk path can COPY them without building
model instances; ``IndexRows.models()`` makes instances for the ORM path.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from ..exceptions import BadRequest
from ..models import (
    CompositeIndex,
    DateIndex,
    LastnIndex,
    NumberIndex,
    QuantityIndex,
    ReferenceIndex,
    StringIndex,
    TokenIndex,
    UriIndex,
)
from . import aliases, registry, ucum
from .dates import parse_interval
from .fhirpath import Node, base_name, compile_path, top_elements

MIN_DATE = datetime(1, 1, 1, tzinfo=UTC)
MAX_DATE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
CONTACT_SYSTEMS = {"phone", "fax", "email", "pager", "url", "sms", "other"}

# Column names after (resource, resource_type, param, patient), per table.
COLUMNS: dict[type, tuple[str, ...]] = {
    TokenIndex: ("system", "code", "text"),
    StringIndex: ("value", "exact"),
    DateIndex: ("low", "high"),
    QuantityIndex: ("value", "system", "code", "unit", "canonical_value", "canonical_code"),
    NumberIndex: ("value",),
    ReferenceIndex: ("target_type", "target_id", "url", "identifier_system", "identifier_value"),
    UriIndex: ("value",),
    CompositeIndex: (
        "c1_system",
        "c1_code",
        "c2_system",
        "c2_code",
        "c2_value",
        "c2_canonical_value",
        "c2_canonical_code",
        "c2_low",
        "c2_high",
    ),
    LastnIndex: ("system", "code", "label", "low"),
}


def normalize(text: str) -> str:
    """Strings are matched ignoring case and accents (search.html#string)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())[:255]


def _cut(text: Any, size: int = 255) -> str:
    return str(text)[:size] if text is not None else ""


# --- values of each parameter type -------------------------------------------------------


def token_values(node: Node) -> list[tuple[str, str, str | None]]:
    """(system, code, text) of a token element (search.html#token table of types)."""
    v = node.value
    if isinstance(v, bool):
        return [("", "true" if v else "false", None)]
    if isinstance(v, str):
        return [("", _cut(v), None)]
    if isinstance(v, int | Decimal):
        return [("", str(v), None)]
    if not isinstance(v, dict):
        return []
    if "coding" in v or ("text" in v and "value" not in v and "code" not in v):
        text = normalize(v["text"]) if isinstance(v.get("text"), str) else None
        rows = []
        for coding in v.get("coding") or []:
            if isinstance(coding, dict) and (coding.get("code") or coding.get("system")):
                display = coding.get("display")
                shown = normalize(display) if isinstance(display, str) else None
                # :text searches CodeableConcept.text and Coding.display (search.html#token)
                both = " ".join(t for t in (text, shown) if t)[:255] or None
                rows.append((_cut(coding.get("system")), _cut(coding.get("code")), both))
        if not rows and text:
            rows.append(("", "", text))
        return rows
    if "value" in v and not isinstance(v.get("value"), dict | list):
        system = v.get("system")
        if system in CONTACT_SYSTEMS:  # ContactPoint: matched on its value
            return [("", _cut(v["value"]), None)]
        type_text = None
        if isinstance(v.get("type"), dict) and isinstance(v["type"].get("text"), str):
            type_text = normalize(v["type"]["text"])
        return [(_cut(system), _cut(v["value"]), type_text)]
    if "code" in v or "system" in v:
        display = v.get("display")
        return [
            (
                _cut(v.get("system")),
                _cut(v.get("code")),
                normalize(display) if isinstance(display, str) else None,
            )
        ]
    return []


def identifier_types(node: Node) -> list[tuple[str, str]]:
    """For ``:of-type``: (type system, "type code|value") of an Identifier (search.html#modifiers)."""
    v = node.value
    if not isinstance(v, dict) or not isinstance(v.get("type"), dict) or "value" not in v:
        return []
    return [
        (_cut(c.get("system")), _cut(f"{c.get('code', '')}|{v['value']}"))
        for c in v["type"].get("coding") or []
        if isinstance(c, dict) and c.get("code")
    ]


def string_values(node: Node) -> list[str]:
    v = node.value
    if isinstance(v, str):
        return [v]
    if not isinstance(v, dict):
        return []
    out: list[str] = []
    for key in (
        "text",
        "family",
        "given",
        "prefix",
        "suffix",
        "line",
        "city",
        "district",
        "state",
        "postalCode",
        "country",
    ):
        part = v.get(key)
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, list):
            out.extend(p for p in part if isinstance(p, str))
    return out


def _interval(text: Any) -> tuple[datetime, datetime] | None:
    if not isinstance(text, str):
        return None
    try:
        iv = parse_interval(text)
    except BadRequest:
        return None
    return iv.low, iv.high


def date_values(node: Node) -> list[tuple[datetime, datetime]]:
    v = node.value
    if isinstance(v, str):
        iv = _interval(v)
        return [iv] if iv else []
    if not isinstance(v, dict):
        return []
    if "start" in v or "end" in v:  # Period: an open end is unbounded (search.html#date)
        start, end = _interval(v.get("start")), _interval(v.get("end"))
        if start is None and end is None:
            return []
        return [(start[0] if start else MIN_DATE, end[1] if end else MAX_DATE)]
    out = []
    for event in v.get("event") or []:  # Timing
        iv = _interval(event)
        if iv:
            out.append(iv)
    repeat = v.get("repeat")
    if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
        out.extend(date_values(Node(repeat["boundsPeriod"])))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Decimal(value))
        except InvalidOperation:
            return None
    return None


def quantity_values(node: Node) -> list[tuple]:
    """(value, system, code, unit, canonical value, canonical code) of a Quantity-like element."""
    v = node.value
    if not isinstance(v, dict):
        return []
    value = _number(v.get("value"))
    if value is None:
        return []
    system = _cut(v.get("system"))
    code = _cut(v.get("code") or v.get("currency") or "", 64)
    converted = ucum.canonical(value, code) if system in ("", ucum.UCUM) and code else None
    return [
        (
            value,
            system,
            code,
            _cut(v.get("unit"), 64),
            converted[0] if converted else None,
            converted[1] if converted else None,
        )
    ]


def number_values(node: Node) -> list[float]:
    value = _number(node.value)
    return [value] if value is not None else []


def split_reference(text: str) -> tuple[str, str] | None:
    """``Type/id``, ``Type/id/_history/n`` or ``http://base/Type/id`` → (Type, id)."""
    if text.startswith(("#", "urn:")):
        return None
    path = text.split("?", 1)[0].split("/_history/", 1)[0].rstrip("/")
    segments = path.split("/")
    if len(segments) >= 2 and segments[-2][:1].isupper() and segments[-1]:
        return segments[-2][:64], segments[-1][:64]
    return None


def reference_values(node: Node) -> list[tuple[str, str, str, str, str]]:
    v = node.value
    if isinstance(v, str):  # canonical or uri used as a reference
        return [("", "", _cut(v, 500), "", "")]
    if not isinstance(v, dict):
        return []
    target_type = target_id = url = ""
    text = v.get("reference")
    if isinstance(text, str):
        parts = split_reference(text)
        if parts:
            target_type, target_id = parts
        if "://" in text or text.startswith("urn:"):
            url = _cut(text, 500)
    ident_system = ident_value = ""
    ident = v.get("identifier")
    if isinstance(ident, dict):
        ident_system, ident_value = _cut(ident.get("system")), _cut(ident.get("value"))
    if not (target_id or url or ident_value):
        return []
    return [(target_type, target_id, url, ident_system, ident_value)]


def uri_values(node: Node) -> list[str]:
    return [_cut(node.value, 500)] if isinstance(node.value, str) else []


# --- per-type extraction plans -----------------------------------------------------------


@dataclass
class IndexRows:
    """Index rows of one resource: per table, tuples of (param, *columns)."""

    patient: str | None = None
    rows: dict[type, list[tuple]] = field(default_factory=dict)

    def add(self, model: type, row: tuple) -> None:
        self.rows.setdefault(model, []).append(row)

    def models(self, resource, resource_type: str) -> dict[type, list]:
        out: dict[type, list] = {}
        for model, rows in self.rows.items():
            names = COLUMNS[model]
            out[model] = [
                model(
                    resource=resource,
                    resource_type=resource_type,
                    param=row[0],
                    patient=self.patient,
                    **dict(zip(names, row[1:], strict=True)),
                )
                for row in rows
            ]
        return out


Extractor = Callable[[dict[str, Any], IndexRows], None]


@dataclass(frozen=True)
class Step:
    """One parameter's extractor and the top-level elements it needs (None: always run)."""

    param: registry.SearchParam
    run: Extractor
    needs: frozenset[str] | None


def _simple(param: registry.SearchParam, resource_type: str) -> Extractor | None:
    path = compile_path(param.expression or "", resource_type)
    code = param.code
    kind = param.type

    if kind == "token":
        implicit = param.code_system

        def token(data: dict[str, Any], out: IndexRows) -> None:
            for node in path(data):
                if implicit and isinstance(node.value, str):
                    # A code of a required binding is in that binding's CodeSystem, so
                    # gender=http://hl7.org/fhir/administrative-gender|male finds it.
                    out.add(TokenIndex, (code, implicit, _cut(node.value), None))
                    continue
                for row in token_values(node):
                    out.add(TokenIndex, (code, *row))
                for row in identifier_types(node):
                    out.add(TokenIndex, (f"{code}:of-type", *row, None))

        return token
    if kind == "string":

        def string(data: dict[str, Any], out: IndexRows) -> None:
            for node in path(data):
                for text in string_values(node):
                    out.add(StringIndex, (code, normalize(text), text[:255]))

        return string
    if kind == "date":

        def date(data: dict[str, Any], out: IndexRows) -> None:
            for node in path(data):
                for low, high in date_values(node):
                    out.add(DateIndex, (code, low, high))

        return date
    if kind == "quantity":

        def quantity(data: dict[str, Any], out: IndexRows) -> None:
            for node in path(data):
                for row in quantity_values(node):
                    out.add(QuantityIndex, (code, *row))

        return quantity
    if kind == "number":

        def number(data: dict[str, Any], out: IndexRows) -> None:
            for node in path(data):
                for value in number_values(node):
                    out.add(NumberIndex, (code, value))

        return number
    if kind == "reference":

        def reference(data: dict[str, Any], out: IndexRows) -> None:
            for node in path(data):
                for row in reference_values(node):
                    out.add(ReferenceIndex, (code, *row))

        return reference
    if kind == "uri":

        def uri(data: dict[str, Any], out: IndexRows) -> None:
            for node in path(data):
                for value in uri_values(node):
                    out.add(UriIndex, (code, value))

        return uri
    return None


def second_component_values(kind: str, node: Node) -> list[tuple]:
    """The composite columns (c2_system … c2_high) for the second component's value."""
    if kind in ("token", "reference"):
        if kind == "reference":
            return [
                ("", f"{t}/{i}" if i else url, None, None, None, None, None)
                for t, i, url, _s, _v in reference_values(node)
            ]
        return [(s, c, None, None, None, None, None) for s, c, _t in token_values(node)]
    if kind == "string":
        return [("", normalize(t), None, None, None, None, None) for t in string_values(node)]
    if kind == "uri":
        return [("", u, None, None, None, None, None) for u in uri_values(node)]
    if kind == "quantity":
        return [(s, c, v, cv, cc, None, None) for v, s, c, _u, cv, cc in quantity_values(node)]
    if kind == "number":
        return [("", "", v, None, None, None, None) for v in number_values(node)]
    if kind == "date":
        return [("", "", None, None, None, low, high) for low, high in date_values(node)]
    return []


def _composite(param: registry.SearchParam, resource_type: str) -> Extractor | None:
    if not _indexable_composite(param, resource_type):
        return None
    second = registry.get(resource_type, param.components[1].code)
    assert second is not None
    roots = compile_path(param.expression or resource_type, resource_type)
    path1 = compile_path(param.components[0].expression)
    path2 = compile_path(param.components[1].expression)
    code, kind2 = param.code, second.type

    def composite(data: dict[str, Any], out: IndexRows) -> None:
        for root in roots(data):
            firsts = [row for n in path1(root) for row in token_values(n)]
            if not firsts:
                continue
            seconds = [row for n in path2(root) for row in second_component_values(kind2, n)]
            for system1, code1, _text in firsts:
                for row in seconds:
                    out.add(CompositeIndex, (code, system1, code1, *row))

    return composite


@cache
def _plan(resource_type: str) -> tuple[Step, ...]:
    plan: list[Step] = []
    # A parameter that is the union of others has no rows of its own: search reads theirs.
    derived = aliases.aliases(resource_type)
    for param in registry.indexed_params(resource_type):
        if param.code in derived:
            continue
        if param.type == "composite":
            extractor = _composite(param, resource_type)
            needs = None
            if param.expression and param.expression != resource_type:
                needs = top_elements(param.expression, resource_type)
            elif param.expression == resource_type:
                # Rooted at the resource: it needs the elements of its components.
                needs = top_elements(
                    " | ".join(f"{resource_type}.{c.expression}" for c in param.components),
                    resource_type,
                )
        else:
            extractor = _simple(param, resource_type)
            needs = top_elements(param.expression or "", resource_type)
        if extractor is not None:
            plan.append(Step(param, extractor, needs))
    return tuple(plan)


def _indexable_composite(param: registry.SearchParam, resource_type: str) -> bool:
    if len(param.components) != 2:
        return False
    first = registry.get(resource_type, param.components[0].code)
    second = registry.get(resource_type, param.components[1].code)
    return first is not None and second is not None and first.type == "token"


@cache
def searchable(resource_type: str) -> tuple[registry.SearchParam, ...]:
    """The parameters of a type that have index rows (all but a few composites).

    Decided from the registry alone (no expression is compiled), so the CapabilityStatement
    is cheap to build.
    """
    return tuple(
        p
        for p in registry.indexed_params(resource_type)
        if p.type != "composite" or _indexable_composite(p, resource_type)
    )


@cache
def searchable_codes(resource_type: str) -> frozenset[str]:
    return frozenset(p.code for p in searchable(resource_type))


@cache
def _compartment_paths(resource_type: str) -> tuple[Callable[[Any], list[Node]], ...]:
    paths = []
    for code in registry.compartment_params("Patient", resource_type):
        param = registry.get(resource_type, code)
        if param is not None and param.type == "reference" and param.expression:
            paths.append(compile_path(param.expression, resource_type))
    return tuple(paths)


def patient_of(resource_type: str, data: dict[str, Any]) -> str | None:
    """The Patient whose compartment the resource is in (the first by the definition's order)."""
    if resource_type == "Patient":
        return data.get("id")
    for path in _compartment_paths(resource_type):
        for node in path(data):
            for target_type, target_id, _u, _s, _v in reference_values(node):
                if target_type == "Patient" and target_id:
                    return target_id
    return None


def extract(resource_type: str, data: dict[str, Any]) -> IndexRows:
    """All index rows of a resource."""
    out = IndexRows(patient=patient_of(resource_type, data))
    # A key is its element's name (birthDate) or, for a choice element, name + type
    # (effectiveDateTime → effective): keep both, as base_name alone turns birthDate into birth.
    present = set(data) | {base_name(key) for key in data}
    for step in _plan(resource_type):
        if step.needs is None or not step.needs.isdisjoint(present):
            step.run(data, out)
    if resource_type == "Observation":
        add_lastn_rows(out)
    return out


def add_lastn_rows(out: IndexRows) -> None:
    """An Observation's ``LastnIndex`` rows, from its ``code`` token rows and ``date`` rows:
    each code once, with the latest start of ``effective[x]`` (``MIN_DATE``: none)."""
    lows = [row[1] for row in out.rows.get(DateIndex, ()) if row[0] == "date"]
    low = max(lows) if lows else MIN_DATE
    keys = {
        (system, code, (text or "") if code == "" else ""): None
        for param, system, code, text in out.rows.get(TokenIndex, ())
        if param == "code"
    }
    if keys:
        out.rows[LastnIndex] = [("code", *key, low) for key in keys]


def all_params(resource_types: Iterable[str]) -> dict[str, list[str]]:
    """The indexed parameter codes of each type (for the CapabilityStatement and tests)."""
    return {rt: [p.code for p in registry.indexed_params(rt)] for rt in resource_types}
