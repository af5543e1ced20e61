"""Each forecast run is a RiskAssessment in the store, found by the standard searches:
RiskAssessment?subject=Patient/x, ?patient=x and ?method=<forecast-method>|prophet; it is valid
R4B with its basis (the Observations used), probability, when and notes."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from forecasting.fhir import METHOD_SYSTEM
from forecasting.models import ForecastRun
from forecasting.services import run_forecast

from .forecast_support import HR, hourly, make_patient, sine_trend_noise, store_readings


@pytest.fixture
def forecast(db, django_capture_on_commit_callbacks) -> ForecastRun:
    patient = make_patient("Searchable")
    with django_capture_on_commit_callbacks(execute=True):
        result = store_readings(patient, hourly(sine_trend_noise(), 150))
    run = run_forecast(patient, HR)
    run.observation_ids = result.observation_ids  # what the devices app stored, oldest first
    return run


def _ids(api, query: str) -> list[str]:
    r = api.fhir("GET", f"/fhir/RiskAssessment?{query}")
    assert r.status_code == 200, r.json_body
    return [e["resource"]["id"] for e in r.json_body.get("entry", [])]


def test_the_run_is_found_by_subject_patient_and_method(api, forecast):
    ra = forecast.risk_assessment_id
    patient = forecast.patient_id
    assert ra in _ids(api, f"subject=Patient/{patient}")
    assert ra in _ids(api, f"patient={patient}")
    assert _ids(api, f"patient={patient}&method={METHOD_SYSTEM}|prophet") == [ra]
    assert _ids(api, f"method={METHOD_SYSTEM}|prophet&patient=someone-else") == []


def test_the_risk_assessment_carries_basis_probability_when_and_notes(api, forecast):
    body = api.fhir("GET", f"/fhir/RiskAssessment/{forecast.risk_assessment_id}").json_body
    RiskAssessment.model_validate(body)
    assert body["status"] == "final"
    assert body["subject"]["reference"] == f"Patient/{forecast.patient_id}"
    assert body["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": HR,
        "display": "Heart rate",
    }
    assert body["method"]["coding"][0]["code"] == "prophet"
    # The 100 most recent of the 150 Observations, capped and said so.
    basis = [b["reference"] for b in body["basis"]]
    assert basis == [f"Observation/{i}" for i in reversed(forecast.observation_ids[-100:])]
    (prediction,) = body["prediction"]
    assert prediction["probabilityDecimal"] == pytest.approx(forecast.probability)
    # 75 ± 10 /min: neither threshold is likely; the nearer one (below 40) is reported.
    assert prediction["outcome"]["text"].endswith("below 40 /min")
    assert prediction["probabilityDecimal"] < 0.05
    assert prediction["whenPeriod"]["start"].startswith(forecast.window_end.strftime("%Y-%m-%dT%H"))
    notes = " ".join(n["text"] for n in body["note"])
    assert "at most 100 are listed" in notes and "skill" in notes
