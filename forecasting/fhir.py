"""Each forecast run as a FHIR ``RiskAssessment`` (hl7.org/fhir/R4B/riskassessment.html).

``method`` is prophet (a code of ours), ``code`` the vital's LOINC code, ``basis`` the most
recent Observations the series was built from (at most ``series.MAX_BASIS``, said in a note),
and one ``prediction``: the outcome "crosses the alert threshold", its ``probabilityDecimal``
and ``whenPeriod`` (the horizon), with the backtest's skill in a note. Written through the
store's write path (``fhir_api.services``), so it is validated, versioned and indexed:
``RiskAssessment?subject=Patient/x``, ``?patient=``, ``?method=…|prophet`` find it. The run's
data digest is its identifier, and the create is conditional on it: a run written twice is one
resource.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_api import services as store
from fhir_api.search.dates import format_instant
from twins.display import unit_label

from .series import MAX_BASIS, Vital

METHOD_SYSTEM = "https://clouddth.example/fhir/CodeSystem/forecast-method"
OUTCOME_SYSTEM = "https://clouddth.example/fhir/CodeSystem/forecast-outcome"
RUN_SYSTEM = "https://clouddth.example/fhir/forecast-run"
LOINC = "http://loinc.org"
FORECAST_TAG = {
    "system": "https://clouddth.example/fhir/CodeSystem/source",
    "code": "forecast",
    "display": "Written by the forecasting service",
}
METHOD = {
    "coding": [{"system": METHOD_SYSTEM, "code": "prophet", "display": "Prophet forecast"}],
    "text": "Prophet time-series forecast with a rolling-origin backtest",
}


def _skill_note(skill: float | None, beats: bool, baseline: str | None) -> str:
    if skill is None:
        return "Not enough history to backtest the forecast: it is not shown to beat a baseline and raises no early warning."
    if beats:
        return f"Backtest skill {skill:+.2f} against the {baseline} baseline: the forecast beat it."
    return (
        f"Backtest skill {skill:+.2f} against the {baseline} baseline: the forecast did NOT beat it,"
        " so no early warning is raised from it."
    )


def risk_assessment(
    *,
    patient_id: str,
    vital: Vital,
    digest: str,
    at: datetime,
    start: datetime,
    end: datetime,
    basis: list[str],
    n_buckets: int,
    threshold: float | None,
    direction: str,
    probability: float | None,
    crossing_at: datetime | None,
    skill: float | None,
    beats: bool,
    baseline: str | None,
) -> str:
    """Write the run's RiskAssessment; its id."""
    unit = unit_label(vital.unit)
    prediction: dict[str, Any] = {"whenPeriod": {"start": format_instant(start)}}
    prediction["whenPeriod"]["end"] = format_instant(end)
    if threshold is not None:
        code = f"crosses-threshold-{direction}"
        text = f"{vital.label} crosses the alert threshold: {direction} {threshold:g} {unit}"
        prediction["outcome"] = {
            "coding": [{"system": OUTCOME_SYSTEM, "code": code, "display": text}],
            "text": text,
        }
        prediction["probabilityDecimal"] = round(probability or 0.0, 4)
        rationale = f"P = {probability:.2f} within the horizon"
        if crossing_at is not None:
            rationale += f"; median first crossing at {format_instant(crossing_at)}"
        prediction["rationale"] = rationale
    else:
        prediction["outcome"] = {"text": f"{vital.label} forecast (no alert threshold set)"}
    notes = [_skill_note(skill, beats, baseline)]
    notes.append(
        f"Basis: the {len(basis)} most recent of the Observations behind the {n_buckets}"
        f" {'hourly' if vital.granularity == 'hour' else 'daily'} means the model saw"
        f" (at most {MAX_BASIS} are listed)."
    )
    data: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "meta": {"tag": [FORECAST_TAG]},
        "identifier": [{"system": RUN_SYSTEM, "value": digest}],
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": format_instant(at),
        "method": METHOD,
        "code": {
            "coding": [{"system": LOINC, "code": vital.code, "display": vital.label}],
            "text": f"Forecast of {vital.label}",
        },
        "basis": [{"reference": f"Observation/{obs}"} for obs in basis],
        "prediction": [prediction],
        "note": [{"text": note} for note in notes],
    }
    if not basis:
        del data["basis"]
    outcome = store.create(
        "RiskAssessment", data, if_none_exist=f"identifier={RUN_SYSTEM}|{digest}"
    )
    return outcome.resource.logical_id
