"""A fast evaluator for the FHIRPath forms that search-parameter expressions use.

Index extraction runs on every write, so the expressions of the SearchParameter definitions
(hl7.org/fhir/R4B/fhirpath.html, hl7.org/fhir/R4B/searchparameter.html) are compiled once into
plain functions over the resource's JSON: paths with choice types (``Observation.value``),
``as``/``ofType``, ``where(resolve() is Patient)``, ``where(system='phone')``,
``extension('url')`` and ``|`` unions cover all but a handful. Those few fall back to
fhirpathpy, which is complete but about ten times slower.

A compiled path returns ``Node``s: the value and, for a choice element, its type suffix
(``Quantity`` for ``valueQuantity``), which is what ``as``/``ofType`` test.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, NamedTuple

log = logging.getLogger(__name__)


class Node(NamedTuple):
    value: Any
    type: str | None = None  # choice-type suffix, e.g. "Quantity", "DateTime"


# Names of choice elements (``value[x]``) in the R4B models: only these are looked up by
# prefix when the plain name is absent. Listed from fhir.resources (fields with one_of_many).
CHOICE_NAMES = frozenset(
    [
        "abatement",
        "additive",
        "age",
        "allowed",
        "amount",
        "answer",
        "asNeeded",
        "author",
        "born",
        "bounds",
        "characteristic",
        "chargeItem",
        "citeAs",
        "code",
        "collected",
        "concentration",
        "content",
        "created",
        "date",
        "deceased",
        "defaultValue",
        "definition",
        "detail",
        "diagnosis",
        "dose",
        "doseNumber",
        "due",
        "duration",
        "effective",
        "entity",
        "event",
        "example",
        "fastingStatus",
        "fixed",
        "identified",
        "indication",
        "item",
        "legallyBinding",
        "location",
        "manufacturer",
        "maxValue",
        "medication",
        "minValue",
        "minimumVolume",
        "module",
        "multipleBirth",
        "name",
        "occurred",
        "occurrence",
        "offset",
        "onset",
        "participantEffective",
        "pattern",
        "performed",
        "period",
        "presentation",
        "probability",
        "procedure",
        "product",
        "quantity",
        "rate",
        "reported",
        "scheduled",
        "seriesDoses",
        "serviced",
        "source",
        "start",
        "statusReason",
        "strength",
        "studyEffective",
        "subject",
        "substance",
        "substanceDefinition",
        "target",
        "time",
        "timing",
        "topic",
        "used",
        "value",
        "when",
    ]
)


Path = Callable[[Any], list[Node]]
_CHOICE_RE = re.compile(r"^[a-z][A-Za-z0-9]*$")
_AS_RE = re.compile(r"^\((.*)\s+as\s+([A-Za-z]+)\)$", re.S)
_WHERE_EQ_RE = re.compile(r"^([A-Za-z]+)\s*=\s*'([^']*)'$")
_RESOLVE_IS_RE = re.compile(r"^resolve\(\)\s+is\s+([A-Za-z]+)$")


class Unsupported(Exception):
    """The expression uses FHIRPath beyond the fast subset."""


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses, brackets and quotes."""
    parts, depth, start, quoted = [], 0, 0, False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted:
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth == 0 and text.startswith(sep, i):
                parts.append(text[start:i].strip())
                start = i + len(sep)
                i += len(sep)
                continue
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _children(node: Node, name: str) -> list[Node]:
    value = node.value
    if not isinstance(value, dict):
        return []
    out: list[Node] = []
    if name in value:
        child = value[name]
        if isinstance(child, list):
            out.extend(Node(c) for c in child if c is not None)
        elif child is not None:
            out.append(Node(child))
        return out
    if name not in CHOICE_NAMES:
        return out
    # A choice element: value[x] appears as valueQuantity, valueString, …
    for key, child in value.items():
        if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
            suffix = key[len(name) :]
            if isinstance(child, list):
                out.extend(Node(c, suffix) for c in child)
            else:
                out.append(Node(child, suffix))
    return out


def _of_type(type_name: str) -> Callable[[list[Node]], list[Node]]:
    wanted = type_name[:1].upper() + type_name[1:]

    def keep(nodes: list[Node]) -> list[Node]:
        return [n for n in nodes if n.type is None or n.type == wanted]

    return keep


def _resolves_to(type_name: str) -> Callable[[list[Node]], list[Node]]:
    def keep(nodes: list[Node]) -> list[Node]:
        out = []
        for n in nodes:
            ref = n.value
            if not isinstance(ref, dict):
                continue
            text = ref.get("reference")
            if isinstance(text, str):
                path = text.split("?", 1)[0].split("/_history/", 1)[0]
                segments = path.rstrip("/").split("/")
                if len(segments) >= 2 and segments[-2] == type_name:
                    out.append(n)
                    continue
            if ref.get("type") == type_name:
                out.append(n)
        return out

    return keep


def _where_equals(field: str, literal: str) -> Callable[[list[Node]], list[Node]]:
    def keep(nodes: list[Node]) -> list[Node]:
        return [n for n in nodes if isinstance(n.value, dict) and n.value.get(field) == literal]

    return keep


def _extension(url: str) -> Callable[[list[Node]], list[Node]]:
    def pick(nodes: list[Node]) -> list[Node]:
        out = []
        for n in nodes:
            for ext in _children(n, "extension"):
                if isinstance(ext.value, dict) and ext.value.get("url") == url:
                    out.append(ext)
        return out

    return pick


def _steps(chain: str) -> list[str]:
    """``a.b.where(x='y').c`` → ``['a', 'b', "where(x='y')", 'c']``."""
    return split_top(chain, ".")


def _compile_chain(chain: str, resource_type: str | None) -> Callable[[list[Node]], list[Node]]:
    chain = chain.strip()
    match = _AS_RE.match(chain)
    if match:
        inner = _compile_chain(match.group(1), resource_type)
        keep = _of_type(match.group(2))
        return lambda nodes: keep(inner(nodes))
    if chain.startswith("("):
        close = _matching_paren(chain)
        group = chain[: close + 1]
        inner = group if _AS_RE.match(group) else chain[1:close]
        head = _compile_chain(inner, resource_type)
        rest = chain[close + 1 :].lstrip(".")
        if not rest:
            return head
        tail = _compile_steps(_steps(rest))
        return lambda nodes: tail(head(nodes))
    steps = _steps(chain)
    if resource_type and steps and steps[0] == resource_type:
        steps = steps[1:]
    elif steps and steps[0][:1].isupper() and "(" not in steps[0]:
        raise Unsupported(f"expression starts at {steps[0]}, not {resource_type}")
    return _compile_steps(steps)


def _matching_paren(text: str) -> int:
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    raise Unsupported(f"unbalanced parentheses in {text!r}")


def _compile_steps(steps: list[str]) -> Callable[[list[Node]], list[Node]]:
    funcs: list[Callable[[list[Node]], list[Node]]] = []
    for step in steps:
        if _CHOICE_RE.match(step):
            funcs.append(lambda nodes, name=step: [c for n in nodes for c in _children(n, name)])
            continue
        name, _, args = step.partition("(")
        if not args.endswith(")"):
            raise Unsupported(step)
        args = args[:-1].strip()
        if name in ("as", "ofType"):
            funcs.append(_of_type(args))
        elif name == "where":
            resolve = _RESOLVE_IS_RE.match(args)
            equals = _WHERE_EQ_RE.match(args)
            if resolve:
                funcs.append(_resolves_to(resolve.group(1)))
            elif equals:
                funcs.append(_where_equals(equals.group(1), equals.group(2)))
            else:
                raise Unsupported(step)
        elif name == "extension" and args.startswith("'") and args.endswith("'"):
            funcs.append(_extension(args[1:-1]))
        elif name == "first" and not args:
            funcs.append(lambda nodes: nodes[:1])
        else:
            raise Unsupported(step)

    def run(nodes: list[Node]) -> list[Node]:
        for func in funcs:
            if not nodes:
                return nodes
            nodes = func(nodes)
        return nodes

    return run


def _fallback(expression: str) -> Path:
    import fhirpathpy
    from fhirpathpy.models import models

    compiled = fhirpathpy.compile(expression, model=models["r4"])

    def run(root: Any) -> list[Node]:
        try:
            return [Node(v) for v in compiled(root) if v is not None]
        except Exception:  # fhirpathpy raises plain Exception for what it does not implement
            log.debug("fhirpathpy could not evaluate %s", expression, exc_info=True)
            return []

    return run


def base_name(key: str) -> str:
    """``valueQuantity`` → ``value``: the element a JSON key belongs to."""
    for i, ch in enumerate(key):
        if ch.isupper():
            return key[:i]
    return key


def top_elements(expression: str, resource_type: str) -> frozenset[str] | None:
    """The top-level elements an expression reads, or None if that cannot be told.

    Extraction skips a parameter whose elements are all absent, which is most of them for a
    typical resource.
    """
    names = set()
    for part in split_top(expression, "|"):
        steps = _steps(part.lstrip("(").strip())
        if len(steps) < 2 or steps[0] != resource_type:
            return None
        first = steps[1].split(" ", 1)[0]
        if not _CHOICE_RE.match(first):
            return None
        names.add(first)
    return frozenset(names)


def compile_path(expression: str, resource_type: str | None = None) -> Path:
    """Compile a search-parameter expression into a function from JSON to ``Node``s.

    ``resource_type`` is the type the expression starts at (``Observation.code``); a component
    expression of a composite parameter (``value.as(Quantity)``) starts at its root node and
    is compiled with ``resource_type=None``.
    """
    try:
        chains = [_compile_chain(part, resource_type) for part in split_top(expression, "|")]
    except Unsupported:
        return _fallback(expression)

    def run(root: Any) -> list[Node]:
        start = [root if isinstance(root, Node) else Node(root)]
        out: list[Node] = []
        for chain in chains:
            out.extend(chain(start))
        return out

    return run
