"""FHIR operations (hl7.org/fhir/R4B/operations.html) this server implements.

- ``everything``: ``Patient/[id]/$everything`` (hl7.org/fhir/R4B/patient-operation-everything.html)
- ``lastn``: ``Observation/$lastn`` (hl7.org/fhir/R4B/observation-operation-lastn.html)

Each takes its input parameters as ``(name, value)`` pairs, whether they came in the URL, a
form-encoded POST body, or a ``Parameters`` resource (``parameter_items``), and returns an
``interactions.Answer``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import BadRequest

if TYPE_CHECKING:
    from ..interactions import Answer, Context


@dataclass(frozen=True)
class Extension:
    """An operation another app provides (fhir_api imports none of them: they register here,
    in their AppConfig.ready). ``handler(ctx, logical_id, items)`` answers it."""

    resource_type: str
    name: str
    definition: str
    instance: bool
    handler: Callable[[Context, str | None, list[tuple[str, str]]], Answer]


EXTENSIONS: dict[tuple[str, str], Extension] = {}


def register(
    resource_type: str,
    name: str,
    definition: str,
    handler: Callable[[Context, str | None, list[tuple[str, str]]], Answer],
    *,
    instance: bool = True,
) -> None:
    """Make ``[base]/[type]/[id]/$name`` (or ``[base]/[type]/$name``) answer with ``handler``,
    and declare it in the CapabilityStatement with its OperationDefinition's canonical URL."""
    EXTENSIONS[(resource_type, name)] = Extension(
        resource_type, name, definition, instance, handler
    )


# The value[x] types an operation's primitive input parameter may come as (datatypes.html).
PRIMITIVE_VALUES = (
    "valueString",
    "valueCode",
    "valueId",
    "valueUri",
    "valueUrl",
    "valueCanonical",
    "valueInstant",
    "valueDateTime",
    "valueDate",
    "valueTime",
    "valueInteger",
    "valuePositiveInt",
    "valueUnsignedInt",
    "valueDecimal",
    "valueBoolean",
)


def parameter_items(body: Any) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of an operation's ``Parameters`` input (operations.html#request).

    Only primitive values are taken: the operations here have no resource or complex inputs.
    """
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("The body of an operation must be a Parameters resource or a form")
    items: list[tuple[str, str]] = []
    for index, parameter in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{index}]"
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise BadRequest(f"{where} needs a name")
        found = [key for key in PRIMITIVE_VALUES if key in parameter]
        if len(found) != 1:
            raise BadRequest(f"{where} ({parameter['name']}) needs one primitive value[x]")
        value = parameter[found[0]]
        if isinstance(value, bool):
            value = "true" if value else "false"
        items.append((parameter["name"], str(value)))
    return items
