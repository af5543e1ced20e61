"""Validation of incoming resources with the ``fhir.resources`` R4B models.

Every write is validated (hl7.org/fhir/R4B/validation.html); a resource that fails gets a 422
with one OperationOutcome issue per problem, each located by a FHIRPath-like ``expression``;
codes are checked against their required value sets (``bindings``).
The models are used only to check: what is stored is the client's JSON, so nothing is lost or
reformatted by a parse-and-dump round trip.
"""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from . import bindings
from .exceptions import BadRequest, Issue, NotFound, UnprocessableEntity
from .resource_types import RESOURCE_TYPES

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Strings hold no characters below U+0020 but tab, CR and LF (hl7.org/fhir/R4B/datatypes.html
# #string); the models do not check it, and PostgreSQL cannot store U+0000 in an index row.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
CONTROL_MESSAGE = "a string may not hold control characters (only tab, CR and LF)"


def check_resource_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise NotFound(f"Unknown resource type '{resource_type}'", code="not-supported")


def check_id(logical_id: str) -> None:
    if not ID_RE.match(logical_id):
        raise BadRequest(
            f"'{logical_id}' is not a valid resource id: 1 to 64 of A-Z a-z 0-9 - and ."
            " (hl7.org/fhir/R4B/datatypes.html#id)"
        )


def _expression(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "resource_type":
            path += ".resourceType"
        else:
            path += f".{part}"
    return path


def validate_resource(data: Any, resource_type: str | None = None) -> dict[str, Any]:
    """Check that ``data`` is a valid resource (of ``resource_type`` when given); return it."""
    if not isinstance(data, dict):
        raise BadRequest("A FHIR resource must be a JSON object", code="structure")
    found = data.get("resourceType")
    if not isinstance(found, str) or not found:
        raise BadRequest("The resource has no resourceType", code="required")
    if resource_type is not None and found != resource_type:
        raise BadRequest(
            f"The body is a {found} but the URL is for {resource_type}", code="invalid"
        )
    if found not in RESOURCE_TYPES:
        raise UnprocessableEntity(f"Unknown resource type '{found}'", code="not-supported")
    model = get_fhir_model_class(found)
    issues: list[Issue] = []
    try:
        issues += [
            Issue("error", code, f"{path}: {message}", (path,))
            for path, code, message in _json_rules(data, found)
        ]
        # Codes outside a required binding (terminologies.html#required): the models let them pass.
        issues += bindings.check(data, found)
        model.model_validate(data)
    except ValidationError as exc:
        issues += [
            Issue(
                "error",
                "invalid" if err["type"] != "extra_forbidden" else "structure",
                f"{_expression(found, err['loc'])}: {err['msg']}",
                (_expression(found, err["loc"]),),
            )
            for err in exc.errors(include_url=False)
        ]
    except (ValueError, TypeError, RecursionError) as exc:
        raise UnprocessableEntity(f"The {found} is not valid: {exc}") from None
    if issues:
        raise UnprocessableEntity(
            f"The {found} is not valid: {len(issues)} problem(s)", issues=issues
        )
    return data


EMPTY_MESSAGE = "an array or object may not be empty: leave the element out (json.html)"


def _json_rules(value: Any, path: str) -> list[tuple[str, str, str]]:
    """(expression, issue code, message) of each place in ``value`` that breaks a rule of FHIR
    JSON the models do not check (hl7.org/fhir/R4B/json.html): strings with control
    characters, and empty arrays or objects ("objects are never empty", no empty arrays)."""
    if isinstance(value, str):
        return [(path, "invalid", CONTROL_MESSAGE)] if CONTROL_RE.search(value) else []
    if isinstance(value, dict):
        if not value:
            return [(path, "structure", EMPTY_MESSAGE)]
        return [p for k, v in value.items() for p in _json_rules(v, f"{path}.{k}")]
    if isinstance(value, list):
        if not value:
            return [(path, "structure", EMPTY_MESSAGE)]
        return [p for i, v in enumerate(value) for p in _json_rules(v, f"{path}[{i}]")]
    return []
