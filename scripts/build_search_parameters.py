"""Build ``fhir_api/search/data/search_parameters_r4b.json`` from the official definitions.

The FHIR R4B SearchParameter resources ship in the npm package ``hl7.fhir.r4b.core`` 4.3.0
(hl7.org/fhir/R4B/searchparameter-registry.html). This script reads them and writes, per
resource type, each parameter's code, type, the part of its FHIRPath expression that applies
to that type, its reference targets and its composite components: the data the search
registry is built from. For a token parameter on ``code`` elements with a required binding
(``Patient.gender``) it also writes ``codeSystem``, the one CodeSystem of the bound ValueSet
(``http://hl7.org/fhir/administrative-gender``): the implicit system of those codes, which
index extraction writes in their token rows (search.html#token). It also keeps the compartment definitions (which parameters put a
resource in a Patient's, Device's, … compartment: hl7.org/fhir/R4B/compartmentdefinition.html). Regenerate with::

    cd "$(mktemp -d)" && npm pack hl7.fhir.r4b.core@4.3.0 && tar xzf hl7.fhir.r4b.core-4.3.0.tgz
    .venv/bin/python scripts/build_search_parameters.py "$PWD/package"
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "fhir_api/search/data/search_parameters_r4b.json"


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on its top-level ``|`` operators."""
    parts, depth, current = [], 0, []
    quoted = False
    for ch in expression:
        if ch == "'":
            quoted = not quoted
        if not quoted:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "|" and depth == 0:
                parts.append("".join(current).strip())
                current = []
                continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def for_base(expression: str, base: str) -> str | None:
    """The union members of ``expression`` that start at ``base`` (e.g. ``Observation.code``)."""
    mine = []
    for part in split_union(expression):
        head = part.lstrip("(").strip()
        if head == base or head.startswith((base + ".", base + " ")):
            mine.append(part)
    return " | ".join(mine) if mine else None


def _elements(package: Path) -> dict[str, dict[str, dict]]:
    """Snapshot elements of every resource and datatype StructureDefinition, by path."""
    out: dict[str, dict[str, dict]] = {}
    for path in sorted(package.glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text())
        if sd.get("derivation") == "constraint" or "snapshot" not in sd:
            continue
        out[sd["type"]] = {e["path"]: e for e in sd["snapshot"]["element"]}
    return out


def _value_set_systems(package: Path) -> dict[str, list[str]]:
    """The CodeSystems each ValueSet includes, by canonical URL (without version)."""
    out: dict[str, list[str]] = {}
    for path in sorted(package.glob("ValueSet-*.json")):
        vs = json.loads(path.read_text())
        includes = vs.get("compose", {}).get("include", [])
        out[vs["url"]] = sorted({i["system"] for i in includes if i.get("system")})
    return out


_SIMPLE = re.compile(r"^[A-Z][A-Za-z]*(\.[a-z][A-Za-z]*)+$")


def _element(elements: dict[str, dict[str, dict]], dotted: str) -> dict | None:
    """The element definition a plain path (``Patient.gender``, ``Patient.name.use``) ends at,
    walking into datatypes where the resource's snapshot stops."""
    owner, *names = dotted.split(".")
    current = owner
    for i, name in enumerate(names):
        element = elements.get(owner, {}).get(f"{current}.{name}")
        if element is None:
            return None
        if i == len(names) - 1:
            return element
        types = element.get("type") or []
        code = types[0].get("code") if len(types) == 1 else None
        if code in ("BackboneElement", "Element"):
            current = f"{current}.{name}"
        elif code in elements:
            owner = current = code
        else:
            return None
    return None


def code_system(
    expression: str, elements: dict[str, dict[str, dict]], systems: dict[str, list[str]]
) -> str | None:
    """The implicit system of a token expression's ``code`` values: the single CodeSystem of
    the required binding of every ``code`` element it selects, when each member of the union is
    a plain path and none selects another primitive type (whose strings would get it too)."""
    found: set[str] = set()
    for part in split_union(expression):
        if not _SIMPLE.match(part):
            return None
        element = _element(elements, part)
        if element is None:
            return None
        types = [t.get("code") for t in element.get("type") or []]
        if types == ["code"]:
            binding = element.get("binding") or {}
            if binding.get("strength") != "required" or not binding.get("valueSet"):
                return None
            included = systems.get(binding["valueSet"].split("|", 1)[0], [])
            if len(included) != 1:
                return None
            found.add(included[0])
        elif any(t and t[:1].islower() for t in types):  # another primitive: string, uri…
            return None
    return found.pop() if len(found) == 1 else None


def build(package: Path) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {}
    elements = _elements(package)
    systems = _value_set_systems(package)
    urls: dict[str, str] = {}
    for path in sorted(package.glob("SearchParameter-*.json")):
        sp = json.loads(path.read_text())
        urls[sp["url"]] = sp["code"]
        for base in sp.get("base", []):
            expression = sp.get("expression")
            if expression and base not in ("Resource", "DomainResource"):
                expression = for_base(expression, base)
            entry: dict[str, Any] = {"type": sp["type"], "url": sp["url"]}
            if expression:
                entry["expression"] = expression
                if sp["type"] == "token" and base not in ("Resource", "DomainResource"):
                    system = code_system(expression, elements, systems)
                    if system:
                        entry["codeSystem"] = system
            if sp.get("target"):
                entry["target"] = sorted(sp["target"])
            if sp.get("component"):
                entry["component"] = [
                    {"definition": c["definition"], "expression": c["expression"]}
                    for c in sp["component"]
                ]
            if sp.get("multipleOr") is False:
                entry["multipleOr"] = False
            by_type.setdefault(base, {})[sp["code"]] = entry
    # Resolve composite components to the codes of the parameters they reuse.
    for params in by_type.values():
        for entry in params.values():
            for component in entry.get("component", []):
                component["code"] = urls.get(component["definition"], "")
    compartments: dict[str, dict[str, list[str]]] = {}
    for path in sorted(package.glob("CompartmentDefinition-*.json")):
        cd = json.loads(path.read_text())
        if cd.get("id") == "example":
            continue
        compartments[cd["code"]] = {
            r["code"]: r["param"] for r in cd.get("resource", []) if r.get("param")
        }
    return {
        "source": "npm package hl7.fhir.r4b.core 4.3.0 (SearchParameter, CompartmentDefinition)",
        "fhirVersion": "4.3.0",
        "types": {k: dict(sorted(v.items())) for k, v in sorted(by_type.items())},
        "compartments": compartments,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    data = build(Path(argv[1]))
    OUT.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    count = sum(len(v) for v in data["types"].values())
    print(f"wrote {count} parameters for {len(data['types'])} types to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
