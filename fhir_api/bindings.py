"""Required value-set bindings of coded elements (hl7.org/fhir/R4B/terminologies.html#required).

An element bound with strength *required* may hold only a code of its value set:
``Patient.gender`` is one of male | female | other | unknown, never "robot". The
``fhir.resources`` models check types but not these codes, so ``check`` walks a resource and
reports every coded element whose value is not allowed.

The codes come from the models' field metadata (``json_schema_extra["enum_values"]``, which
fhir.resources 8 takes from each element's required binding). Where the specification's short
list ends in "+" (more codes than it shows), the whole value set is in ``FULL_VALUE_SETS``, and
required bindings the models carry no codes for are in ``ADDED_VALUE_SETS`` (both from the
CodeSystems of the hl7.fhir.r4b.core 4.3.0 package, abstract codes left out; every enum_values
list was compared with that package's value sets, ``NOT_CODE_LISTS`` are the two that differ).

Cost: a plan per model class (its coded fields and its complex fields) is made once; a check
visits only the JSON keys of the resource that are in the plan.
"""

from __future__ import annotations

import typing
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from .exceptions import Issue
from .resource_types import RESOURCE_TYPES

_OBSERVATION_STATUS = (
    "registered preliminary final amended corrected cancelled entered-in-error unknown"
)
_ENCOUNTER_STATUS = (
    "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown"
)
# (model class, field) -> every code of a required value set whose short list ends in "+".
FULL_VALUE_SETS: dict[tuple[str, str], frozenset[str]] = {
    (cls, field): frozenset(codes.split())
    for cls, field, codes in (
        ("Observation", "status", _OBSERVATION_STATUS),
        ("DetectedIssue", "status", _OBSERVATION_STATUS),
        ("RiskAssessment", "status", _OBSERVATION_STATUS),
        (
            "DiagnosticReport",
            "status",
            "registered partial preliminary final amended corrected appended cancelled"
            " entered-in-error unknown",
        ),
        ("Encounter", "status", _ENCOUNTER_STATUS),
        ("EncounterStatusHistory", "status", _ENCOUNTER_STATUS),
        ("DeviceUdiCarrier", "entryType", "barcode rfid manual card self-reported unknown"),
        (
            "DeviceUseStatement",
            "status",
            "active completed entered-in-error intended stopped on-hold",
        ),
        (
            "QuestionnaireItem",
            "type",
            "group display boolean decimal integer date dateTime time string text url choice"
            " open-choice attachment reference quantity",
        ),
        (
            "StructureMapGroupRuleTarget",
            "transform",
            "create copy truncate escape cast append translate reference dateOp uuid pointer"
            " evaluate cc c qty id cp",
        ),
        (
            "SupplyRequest",
            "status",
            "draft active suspended cancelled completed entered-in-error unknown",
        ),
        (
            "Task",
            "status",
            "draft requested received accepted rejected ready cancelled in-progress on-hold"
            " failed completed entered-in-error",
        ),
    )
}

_COMPARATOR = "< <= >= >"
_FHIR_VERSION = (
    "0.01 0.05 0.06 0.11 0.0.80 0.0.81 0.0.82 0.4.0 0.5.0 1.0.0 1.0.1 1.0.2 1.1.0 1.4.0 1.6.0"
    " 1.8.0 3.0.0 3.0.1 3.0.2 3.3.0 3.5.0 4.0.0 4.0.1 4.1.0 4.3.0-cibuild 4.3.0-snapshot1 4.3.0"
)
_HTTP_OPERATIONS = "delete get options patch post put head"
# (model class, field) -> the codes of a required binding the models carry no enum_values for
# (hl7.fhir.r4b.core 4.3.0). Not checked: bindings to mimetypes, currencies, SPDX licences,
# v3 confidentiality, all-types and defined-types (large or external code systems), and to
# resource-types, whose R4B list leaves out types R4 had: the official R4 examples (and R4
# clients) name them, e.g. CompartmentDefinition.resource.code "MedicinalProduct".
ADDED_VALUE_SETS: dict[tuple[str, str], frozenset[str]] = {
    (cls, field): frozenset(codes.split())
    for cls, field, codes in (
        ("Quantity", "comparator", _COMPARATOR),
        ("Age", "comparator", _COMPARATOR),
        ("Count", "comparator", _COMPARATOR),
        ("Distance", "comparator", _COMPARATOR),
        ("Duration", "comparator", _COMPARATOR),
        ("AuditEvent", "action", "C R U D E"),
        ("AuditEvent", "outcome", "0 4 8 12"),
        ("AuditEventAgentNetwork", "type", "1 2 3 4 5"),
        (
            "OperationOutcomeIssue",
            "code",
            "invalid structure required value invariant security login unknown expired forbidden"
            " suppressed processing not-supported duplicate multiple-matches not-found deleted"
            " too-long code-invalid extension too-costly business-rule conflict transient"
            " lock-error no-store exception timeout incomplete throttled informational",
        ),
        (
            "TimingRepeat",
            "when",
            "MORN MORN.early MORN.late NOON AFT AFT.early AFT.late EVE EVE.early EVE.late NIGHT"
            " PHS HS WAKE C CM CD CV AC ACM ACD ACV PC PCM PCD PCV",
        ),
        ("CapabilityStatement", "fhirVersion", _FHIR_VERSION),
        ("ImplementationGuide", "fhirVersion", _FHIR_VERSION),
        ("ImplementationGuideDefinitionResource", "fhirVersion", _FHIR_VERSION),
        ("StructureDefinition", "fhirVersion", _FHIR_VERSION),
        ("TestScript", "status", "draft active retired unknown"),
        ("TestScriptSetupActionAssert", "direction", "response request"),
        (
            "TestScriptSetupActionAssert",
            "operator",
            "equals notEquals in notIn greaterThan lessThan empty notEmpty contains notContains"
            " eval",
        ),
        ("TestScriptSetupActionAssert", "requestMethod", _HTTP_OPERATIONS),
        (
            "TestScriptSetupActionAssert",
            "response",
            "okay created noContent notModified bad forbidden notFound methodNotAllowed conflict"
            " gone preconditionFailed unprocessable",
        ),
        ("TestScriptSetupActionOperation", "method", _HTTP_OPERATIONS),
    )
}
# enum_values that are not a required value set's codes: CapabilityStatement.format is bound to
# mimetypes (its short text "xml | json | ttl | mime type" is no code list), Expression.language
# is an extensible binding.
NOT_CODE_LISTS = {("CapabilityStatement", "format"), ("Expression", "language")}

# A field's plan: the allowed codes of a coded field, or the model class of a complex one
# (``_ANY_RESOURCE``: a resource of the type its own resourceType names, as in ``contained``).
_ANY_RESOURCE = object()
Plan = dict[str, "frozenset[str] | type | object"]
_plans: dict[type, Plan] = {}
_resource_models: dict[str, type] = {}


def _model_of(annotation: Any) -> type | object | None:
    """The fhir.resources model class a field holds (through Optional/List), if complex."""
    klass = getattr(annotation, "get_model_klass", None)
    if klass is not None:
        model = klass()
        return _ANY_RESOURCE if model.__name__ in ("Resource", "DomainResource") else model
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _plan(model: type) -> Plan:
    plan = _plans.get(model)
    if plan is not None:
        return plan
    plan = {}
    for name, field in model.model_fields.items():
        if name.endswith("__ext") or name == "fhir_comments":
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        key = field.alias or name
        codes = extra.get("enum_values")
        added = ADDED_VALUE_SETS.get((model.__name__, name))
        if added is not None:
            plan[key] = added
            continue
        if codes and (model.__name__, name) not in NOT_CODE_LISTS:
            if "+" in codes:
                full = FULL_VALUE_SETS.get((model.__name__, name))
                if full is not None:
                    plan[key] = full
            else:
                plan[key] = frozenset(codes)
            continue
        child = _model_of(field.annotation)
        if child is not None:
            plan[key] = child
    _plans[model] = plan
    return plan


def _resource_model(resource_type: Any) -> type | None:
    if not isinstance(resource_type, str) or resource_type not in RESOURCE_TYPES:
        return None
    model = _resource_models.get(resource_type)
    if model is None:
        model = _resource_models[resource_type] = get_fhir_model_class(resource_type)
    return model


def _walk(node: dict[str, Any], model: type, path: str, issues: list[Issue]) -> None:
    plan = _plans.get(model)
    if plan is None:
        plan = _plan(model)
    for key, value in node.items():
        spec = plan.get(key)
        if spec is None:
            continue
        if isinstance(spec, frozenset):
            if isinstance(value, str):
                if value not in spec:
                    issues.append(_issue(f"{path}.{key}", value, spec))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, str) and item not in spec:
                        issues.append(_issue(f"{path}.{key}[{i}]", item, spec))
            continue
        items = value if isinstance(value, list) else (value,)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            where = f"{path}.{key}[{i}]" if value is items else f"{path}.{key}"
            child = spec if spec is not _ANY_RESOURCE else _resource_model(item.get("resourceType"))
            if child is not None:
                _walk(item, child, where, issues)  # type: ignore[arg-type]


def _issue(path: str, value: str, allowed: frozenset[str]) -> Issue:
    codes = ", ".join(sorted(allowed))
    return Issue(
        "error",
        "code-invalid",
        f"{path}: '{value}' is not a code of the element's required value set; allowed: {codes}",
        (path,),
    )


def check(data: dict[str, Any], resource_type: str) -> list[Issue]:
    """One issue per coded element of ``data`` whose code its required binding does not allow."""
    model = _resource_model(resource_type)
    if model is None:
        return []
    issues: list[Issue] = []
    _walk(data, model, resource_type, issues)
    return issues
