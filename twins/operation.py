"""``GET [base]/Patient/{id}/$twin``: the twin's current state as a FHIR ``Parameters``.

Declared in the CapabilityStatement with its OperationDefinition (``OPERATION_DEFINITION``), so
EHRs and FHIR clients see the twin too: lifecycle stage, latest vitals, personal baselines,
NEWS2, active alerts (with their Flags) and device state.
"""

from __future__ import annotations

from typing import Any

from fhir_api.exceptions import Gone, NotFound
from fhir_api.models import Resource

from .models import Alert, PatientTwin
from .vitals import LABELS, UNITS

UCUM = "http://unitsofmeasure.org"
DEFINITION_URL = "https://clouddth.example/fhir/OperationDefinition/Patient-twin"
OPERATION_DEFINITION: dict[str, Any] = {
    "resourceType": "OperationDefinition",
    "id": "Patient-twin",
    "url": DEFINITION_URL,
    "name": "PatientTwin",
    "title": "The patient's digital twin",
    "status": "active",
    "kind": "operation",
    "code": "twin",
    "resource": ["Patient"],
    "system": False,
    "type": False,
    "instance": True,
    "affectsState": False,
    "description": "Current state of the CloudDTH digital twin of a patient: lifecycle stage, latest vital signs, personal baselines, NEWS2, active alerts and device state.",
    "parameter": [
        {
            "name": "return",
            "use": "out",
            "min": 1,
            "max": "1",
            "type": "Parameters",
            "documentation": "stage, vital (parts: code, value, time, observation, baseline), news2, alert, device",
        },
    ],
}


def _quantity(value: float, vital: str) -> dict[str, Any]:
    return {
        "value": round(value, 2),
        "unit": UNITS.get(vital, ""),
        "system": UCUM,
        "code": UNITS.get(vital, ""),
    }


def check_patient(patient_id: str) -> None:
    """The Patient an operation on ``Patient/[id]`` is about exists: a 404 if it never did, a 410
    if it was deleted (hl7.org/fhir/R4B/http.html#read)."""
    row = (
        Resource.objects.filter(resource_type="Patient", logical_id=patient_id)
        .only("deleted")
        .first()
    )
    if row is None:
        raise NotFound(f"Patient/{patient_id} is not known")
    if row.deleted:
        raise Gone(f"Patient/{patient_id} was deleted")


def twin_parameters(patient_id: str) -> dict[str, Any]:
    check_patient(patient_id)
    twin = PatientTwin.objects.filter(patient_id=patient_id).first()
    params: list[dict[str, Any]] = [
        {"name": "patient", "valueReference": {"reference": f"Patient/{patient_id}"}}
    ]
    if twin is None:
        params.append({"name": "stage", "valueCode": "registered"})
        return {"resourceType": "Parameters", "parameter": params}
    state = twin.state or {}
    params.append({"name": "stage", "valueCode": twin.stage})
    params.append({"name": "stageSince", "valueDateTime": twin.stage_since.isoformat()})
    if state.get("clock"):
        params.append({"name": "clock", "valueInstant": state["clock"]})
    baselines = state.get("baseline", {})
    for vital, item in sorted(state.get("latest", {}).items()):
        part = [
            {"name": "code", "valueString": vital},
            {"name": "display", "valueString": LABELS.get(vital, vital)},
            {"name": "value", "valueQuantity": _quantity(item["value"], vital)},
            {"name": "time", "valueInstant": item["time"]},
            {
                "name": "observation",
                "valueReference": {"reference": f"Observation/{item['observation']}"},
            },
        ]
        trend = state.get("trend", {}).get(vital)
        if trend:
            part.append({"name": "trendShort", "valueDecimal": round(trend["short"], 2)})
            part.append({"name": "trendLong", "valueDecimal": round(trend["long"], 2)})
        base = baselines.get(vital)
        if base:
            part.append(
                {"name": "baselineMedian", "valueQuantity": _quantity(base["median"], vital)}
            )
            part.append({"name": "baselineMAD", "valueDecimal": base["mad"]})
        params.append({"name": "vital", "part": part})
    if twin.news2:
        n = twin.news2
        part = [
            {"name": "score", "valueInteger": n["total"]},
            {"name": "band", "valueString": n["band"]},
            {"name": "partial", "valueBoolean": n["partial"]},
        ]
        part += [{"name": "missing", "valueString": m} for m in n.get("missing", [])]
        part += [{"name": "assumed", "valueString": a} for a in n.get("assumed", [])]
        if n.get("observation"):
            part.append(
                {
                    "name": "observation",
                    "valueReference": {"reference": f"Observation/{n['observation']}"},
                }
            )
        params.append({"name": "news2", "part": part})
    for alert in (
        Alert.objects.filter(patient_id=patient_id)
        .exclude(status=Alert.RESOLVED)
        .order_by("-severity", "opened")
    ):
        part = [
            {"name": "problem", "valueString": alert.problem},
            {"name": "severity", "valueCode": alert.get_severity_display()},
            {"name": "status", "valueCode": alert.status},
            {"name": "summary", "valueString": alert.summary},
            {"name": "since", "valueDateTime": alert.opened.isoformat()},
        ]
        if alert.flag_id:
            part.append({"name": "flag", "valueReference": {"reference": f"Flag/{alert.flag_id}"}})
        params.append({"name": "alert", "part": part})
    for device, seen in sorted(state.get("devices", {}).items()):
        part = [{"name": "device", "valueReference": {"reference": f"Device/{device}"}}]
        if seen.get("last_seen"):
            part.append({"name": "lastSeen", "valueInstant": seen["last_seen"]})
        if seen.get("battery") is not None:
            part.append(
                {
                    "name": "battery",
                    "valueQuantity": {
                        "value": seen["battery"],
                        "unit": "%",
                        "system": UCUM,
                        "code": "%",
                    },
                }
            )
        params.append({"name": "device", "part": part})
    return {"resourceType": "Parameters", "parameter": params}


def answer(ctx, logical_id: str | None, items: list[tuple[str, str]]):
    """The ``$twin`` handler registered with fhir_api.operations (it takes no parameters)."""
    from fhir_api.interactions import Answer

    if items:
        names = ", ".join(sorted({name for name, _value in items}))
        from fhir_api.exceptions import BadRequest

        raise BadRequest(f"$twin takes no parameters (got {names})")
    assert logical_id is not None
    return Answer(200, twin_parameters(logical_id))
