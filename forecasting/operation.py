"""``Patient/{id}/$forecast?code=<loinc>``: the latest forecast of one vital.

``GET`` reads the stored runs only and changes nothing (operations.html: GET is for what does
not affect state): the latest run as a ``Parameters`` (hl7.org/fhir/R4B/parameters.html) with
its status (a skipped or failed run says why), the forecast points with their 80% and 95%
intervals, the backtest (MAE and MAPE of prophet and of each baseline, the skill and whether it
beat the baseline), the alert threshold, the probability of crossing it and when, and the run's
``RiskAssessment``; ``queued`` when a newer forecast is waiting for a worker. With no run yet
the status is ``none`` (or ``queued``) and ``reason`` says what to do.

``POST`` asks for a fresh forecast (``services.queue_forecast``, so the OperationDefinition
declares ``affectsState``): 200 with the run when it finished within the request (tasks in
process), else 202 with status ``queued``; the same data reuses the stored run, so a repeated
POST fits nothing. Declared in the CapabilityStatement with the OperationDefinition below
(hl7.org/fhir/R4B/operationdefinition.html). Errors: 404 for an unknown patient, 410 for a
deleted one, 400 for a missing, repeated or unknown code.
"""

from __future__ import annotations

from typing import Any

from fhir_api.exceptions import BadRequest
from fhir_api.search.dates import format_instant

from .models import ForecastRun, QueuedForecast
from .series import FORECAST_VITALS, UnknownCode, Vital, vital_for

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
DEFINITION_URL = "https://clouddth.example/fhir/OperationDefinition/Patient-forecast"
_CODES = ", ".join(f"{code} ({name})" for name, (code, _g, _l) in FORECAST_VITALS.items())
OPERATION_DEFINITION: dict[str, Any] = {
    "resourceType": "OperationDefinition",
    "id": "Patient-forecast",
    "url": DEFINITION_URL,
    "name": "PatientForecast",
    "title": "Forecast of one of the patient's vital signs",
    "status": "active",
    "kind": "operation",
    "code": "forecast",
    "resource": ["Patient"],
    "system": False,
    "type": False,
    "instance": True,
    "affectsState": True,
    "description": (
        "The latest prophet forecast of a vital sign of the patient (hourly vitals 24-72 h ahead,"
        " weight and glucose 14 days ahead) with 80% and 95% intervals, its rolling-origin"
        " backtest against naive, seasonal naive and mean baselines, and the probability that"
        " the vital crosses the patient's alert threshold within the horizon. POST asks for a"
        " fresh forecast (it is queued, or run at once where tasks run in process: 200 with the"
        " run, 202 with status 'queued' while it waits), so the operation affects state. GET"
        " reads the stored latest forecast only and changes nothing: status 'none' when there"
        " is no forecast yet, 'queued' when one is waiting for a worker."
    ),
    "parameter": [
        {
            "name": "code",
            "use": "in",
            "min": 1,
            "max": "1",
            "type": "code",
            "documentation": f"LOINC code of the vital: {_CODES}",
        },
        {
            "name": "return",
            "use": "out",
            "min": 1,
            "max": "1",
            "type": "Parameters",
            "documentation": (
                "status (done, skipped, failed, queued, none), reason, queued, granularity,"
                " horizon, windowStart, windowEnd, skill,"
                " beatsBaseline, threshold, direction, probability, crossingAt, riskAssessment,"
                " backtest (parts: model, mae, mape), point (parts: time, yhat, lo80, hi80,"
                " lo95, hi95)"
            ),
        },
    ],
}


def _decimal(name: str, value: float | None) -> list[dict[str, Any]]:
    return [] if value is None else [{"name": name, "valueDecimal": round(float(value), 4)}]


def _quantity(name: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "name": name,
        "valueQuantity": {"value": round(value, 3), "unit": unit, "system": UCUM, "code": unit},
    }


def forecast_parameters(run: ForecastRun) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": "patient", "valueReference": {"reference": f"Patient/{run.patient_id}"}},
        {"name": "code", "valueCoding": {"system": LOINC, "code": run.code}},
        {"name": "vital", "valueString": run.vital},
        {"name": "status", "valueCode": run.status},
        {"name": "granularity", "valueCode": run.granularity},
        {"name": "created", "valueDateTime": format_instant(run.created)},
        {"name": "points", "valueInteger": run.n_points},
    ]
    if run.reason:
        params.append({"name": "reason", "valueString": run.reason})
    if run.window_start and run.window_end:
        params.append({"name": "windowStart", "valueDateTime": format_instant(run.window_start)})
        params.append({"name": "windowEnd", "valueDateTime": format_instant(run.window_end)})
    if run.status != ForecastRun.DONE:
        return {"resourceType": "Parameters", "parameter": params}
    params.append({"name": "horizon", "valueInteger": run.horizon})
    params += _decimal("skill", run.skill)
    params.append({"name": "beatsBaseline", "valueBoolean": run.beats_baseline})
    if run.threshold is not None:
        params.append(_quantity("threshold", run.threshold, run.unit))
        params.append({"name": "direction", "valueCode": run.direction})
        params += _decimal("probability", run.probability)
        if run.crossing_at:
            params.append({"name": "crossingAt", "valueDateTime": format_instant(run.crossing_at)})
    if run.risk_assessment_id:
        params.append(
            {
                "name": "riskAssessment",
                "valueReference": {"reference": f"RiskAssessment/{run.risk_assessment_id}"},
            }
        )
    scores = run.backtest or {}
    if scores.get("baseline"):
        params.append({"name": "baseline", "valueCode": scores["baseline"]})
    for model in ("prophet", "naive", "seasonal_naive", "mean"):
        if not isinstance(scores.get(model), dict):
            continue
        part = [{"name": "model", "valueCode": model}]
        part += _decimal("mae", scores[model].get("mae"))
        part += _decimal("mape", scores[model].get("mape"))
        params.append({"name": "backtest", "part": part})
    for point in run.points:
        part = [{"name": "time", "valueDateTime": point["t"]}]
        for key in ("yhat", "lo80", "hi80", "lo95", "hi95"):
            part += _decimal(key, point[key])
        params.append({"name": "point", "part": part})
    return {"resourceType": "Parameters", "parameter": params}


def _waiting(patient_id: str, vital: Vital, queued: QueuedForecast | None) -> dict[str, Any]:
    """The answer while the series has no run: none yet, or one queued."""
    params: list[dict[str, Any]] = [
        {"name": "patient", "valueReference": {"reference": f"Patient/{patient_id}"}},
        {"name": "code", "valueCoding": {"system": LOINC, "code": vital.code}},
        {"name": "vital", "valueString": vital.name},
    ]
    if queued is None:
        params += [
            {"name": "status", "valueCode": "none"},
            {
                "name": "reason",
                "valueString": f"No forecast of {vital.label} yet: POST $forecast to ask for one",
            },
        ]
    else:
        params += [
            {"name": "status", "valueCode": "queued"},
            {
                "name": "reason",
                "valueString": f"A forecast of {vital.label} is queued and not finished yet",
            },
            {"name": "queued", "valueDateTime": format_instant(queued.queued_at)},
        ]
    return {"resourceType": "Parameters", "parameter": params}


def _latest(patient_id: str, vital: Vital) -> dict[str, Any]:
    """The stored latest run, with ``queued`` when a newer one waits for a worker."""
    from .services import latest_run

    run = latest_run(patient_id, vital.code)
    queued = QueuedForecast.objects.filter(patient_id=patient_id, code=vital.code).first()
    if run is None:
        return _waiting(patient_id, vital, queued)
    body = forecast_parameters(run)
    if queued is not None and queued.queued_at >= run.created:
        body["parameter"].append(
            {"name": "queued", "valueDateTime": format_instant(queued.queued_at)}
        )
    return body


def answer(ctx, logical_id: str | None, items: list[tuple[str, str]]):
    """The ``$forecast`` handler registered with fhir_api.operations."""
    from fhir_api.interactions import Answer

    from .services import check_patient, queue_forecast

    unknown = sorted({name for name, _value in items if name != "code"})
    if unknown:
        raise BadRequest(f"$forecast takes only code (got {', '.join(unknown)})")
    codes = [value for name, value in items if name == "code"]
    if not codes or not codes[0].strip():
        raise BadRequest(f"$forecast needs code, the LOINC code of a vital: {_CODES}")
    if len(codes) > 1:
        raise BadRequest("$forecast takes one code")
    code = codes[0].strip()
    if "|" in code:  # a token: system|code
        system, code = code.split("|", 1)
        if system and system != LOINC:
            raise BadRequest(f"$forecast codes are LOINC ({LOINC}), not {system}")
    assert logical_id is not None
    try:
        vital = vital_for(code)
    except UnknownCode as error:
        raise BadRequest(str(error)) from None
    check_patient(logical_id)
    if ctx.method != "POST":
        return Answer(200, _latest(logical_id, vital))
    queue_forecast(logical_id, vital.code)
    if QueuedForecast.objects.filter(patient_id=logical_id, code=vital.code).exists():
        return Answer(202, _latest(logical_id, vital))  # a worker has it
    return Answer(200, _latest(logical_id, vital))  # it ran in process
