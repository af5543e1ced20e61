"""One exception hierarchy for every FHIR error; each renders as an OperationOutcome.

Status codes and issue codes follow hl7.org/fhir/R4B/http.html and the IssueType value set
(hl7.org/fhir/R4B/valueset-issue-type.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue (hl7.org/fhir/R4B/operationoutcome.html)."""

    severity: str
    code: str
    diagnostics: str
    expression: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.as_json() for i in issues]}


class FHIRError(Exception):
    """Base class: an HTTP status and one or more OperationOutcome issues."""

    status = 500
    code = "exception"
    severity = "error"

    def __init__(
        self,
        diagnostics: str,
        *,
        code: str | None = None,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.issues = issues or [Issue(self.severity, code or self.code, diagnostics)]
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class BadRequest(FHIRError):
    """400: the request cannot be parsed, or a parameter is not understood."""

    status = 400
    code = "invalid"


class NotAuthenticated(FHIRError):
    status = 401
    code = "login"


class Forbidden(FHIRError):
    status = 403
    code = "forbidden"


class NotFound(FHIRError):
    status = 404
    code = "not-found"


class MethodNotAllowed(FHIRError):
    status = 405
    code = "not-supported"


class NotAcceptable(FHIRError):
    status = 406
    code = "not-supported"


class Conflict(FHIRError):
    status = 409
    code = "conflict"


class Gone(FHIRError):
    status = 410
    code = "deleted"


class PreconditionFailed(FHIRError):
    status = 412
    code = "conflict"


class PayloadTooLarge(FHIRError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(FHIRError):
    status = 415
    code = "not-supported"


class UnprocessableEntity(FHIRError):
    """422: the resource is syntactically JSON but not a valid FHIR resource."""

    status = 422
    code = "processing"


class ServerError(FHIRError):
    status = 500
    code = "exception"
