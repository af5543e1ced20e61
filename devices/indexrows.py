"""The search-index rows of a reading's Observation, built directly rather than extracted.

Every write indexes its resource with ``fhir_api.search.extract.extract``: for each of the
type's search parameters a compiled FHIRPath expression walks the JSON. The Observations that
``readings.observation`` builds all have one of a few shapes, known in advance (code, category,
status, identifiers, effectiveDateTime, subject, device, a valueQuantity or components or a
boolean), so their rows can be written down from the reading instead: the rows that depend on
the reading type only (category, code, component-code, status) are built once per
type, and the rest (identifier, date, subject/patient/device, the quantity and composite rows
of the value) per reading, with the same value rules ``extract`` uses (``normalize`` for
text, ``ucum.canonical`` for quantities, the 1 µs interval of an instant). Like ``extract``,
they leave out the ``combo-*`` parameters, which search answers from the rows of the
parameters they unite (``fhir_api.search.aliases``).

``tests/test_device_index_rows.py`` checks, for every reading type and variant (converted
unit, device reading id, gateway), that these rows are exactly the rows ``extract`` gives, so
the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from functools import lru_cache
from typing import Any

from fhir_api.models import CompositeIndex, DateIndex, QuantityIndex, ReferenceIndex, TokenIndex
from fhir_api.search import registry, ucum
from fhir_api.search.extract import IndexRows, add_lastn_rows, normalize

from .readings import Checked

MICROSECOND = timedelta(microseconds=1)
# Observation.status is a code of a required binding: its rows carry that CodeSystem.
STATUS = ("status", registry.params_for("Observation")["status"].code_system, "final", None)


def _concept_rows(concept: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(system, code, text) of a CodeableConcept, as ``extract.token_values`` gives them."""
    text = normalize(concept["text"]) if isinstance(concept.get("text"), str) else None
    rows = []
    for coding in concept.get("coding") or []:
        shown = normalize(coding["display"]) if isinstance(coding.get("display"), str) else None
        both = " ".join(t for t in (text, shown) if t)[:255] or None
        rows.append((coding["system"][:255], coding["code"][:255], both))
    return rows


class _Shape:
    """The rows of one reading type that do not depend on the reading."""

    def __init__(self, obs: dict[str, Any]) -> None:
        tokens: list[tuple] = [STATUS]
        for category in obs["category"]:
            tokens += [("category", *row) for row in _concept_rows(category)]
        code = _concept_rows(obs["code"])
        tokens += [("code", *row) for row in code]
        self.components = []
        for component in obs.get("component", ()):
            rows = _concept_rows(component["code"])
            tokens += [("component-code", *row) for row in rows]
            self.components.append([(s, c) for s, c, _t in rows])
        self.tokens = tokens
        self.codes = [(s, c) for s, c, _t in code]


@lru_cache(maxsize=4096)
def _canonical(value: float, code: str) -> tuple[float | None, str | None]:
    converted = ucum.canonical(value, code)
    return (converted[0], converted[1]) if converted else (None, None)


def _quantity(q: dict[str, Any]) -> tuple:
    """(value, system, code, unit, canonical value, canonical code) of a valueQuantity."""
    value = float(q["value"])
    code = q["code"][:64]
    system = q["system"][:255]
    canonical = _canonical(value, code) if system in ("", ucum.UCUM) and code else (None, None)
    return (value, system, code, q["unit"][:64], *canonical)


_shapes: dict[str, _Shape] = {}


def observation_rows(checked: Checked, obs: dict[str, Any]) -> IndexRows:
    """The index rows of ``obs``, the Observation ``readings.observation`` built for ``checked``."""
    kind = checked.reading.type
    shape = _shapes.get(kind)
    if shape is None:
        shape = _shapes[kind] = _Shape(obs)
    patient = obs["subject"]["reference"].split("/", 1)[1]
    device = obs["device"]["reference"].split("/", 1)[1]
    tokens = list(shape.tokens)
    for ident in obs["identifier"]:
        tokens.append(("identifier", ident["system"][:255], ident["value"][:255], None))
    low = checked.reading.time.astimezone(UTC)
    rows = {
        TokenIndex: tokens,
        DateIndex: [("date", low, low + MICROSECOND)],
        ReferenceIndex: [
            ("device", "Device", device[:64], "", "", ""),
            ("patient", "Patient", patient[:64], "", "", ""),
            ("subject", "Patient", patient[:64], "", "", ""),
        ],
    }
    quantities: list[tuple] = []
    composites: list[tuple] = []
    if "valueQuantity" in obs:
        q = _quantity(obs["valueQuantity"])
        quantities.append(("value-quantity", *q))
        value, system, code, _unit, cv, cc = q
        second = (system, code, value, cv, cc, None, None)
        for s1, c1 in shape.codes:
            composites.append(("code-value-quantity", s1, c1, *second))
    for component, codes in zip(obs.get("component", ()), shape.components, strict=True):
        q = _quantity(component["valueQuantity"])
        quantities.append(("component-value-quantity", *q))
        value, system, code, _unit, cv, cc = q
        second = (system, code, value, cv, cc, None, None)
        for s1, c1 in codes:
            composites.append(("component-code-value-quantity", s1, c1, *second))
    if quantities:
        rows[QuantityIndex] = quantities
        rows[CompositeIndex] = composites
    out = IndexRows(patient=patient, rows=rows)
    add_lastn_rows(out)
    return out
