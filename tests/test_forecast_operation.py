"""GET [base]/Patient/{id}/$forecast?code=<loinc>: the latest forecast of a vital as Parameters
(points with 80/95% intervals, skill, whether it beat the baseline, probability), declared in
the CapabilityStatement; 404 for an unknown patient, 400 for a missing or unknown code, and a
skipped run answered with its reason."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.parameters import Parameters

from forecasting.models import ForecastRun
from forecasting.operation import DEFINITION_URL

from .forecast_support import HR, hourly, make_patient, sine_trend_noise, store_readings


@pytest.fixture
def patient(db, django_capture_on_commit_callbacks) -> str:
    patient = make_patient("Operation")
    with django_capture_on_commit_callbacks(execute=True):
        store_readings(patient, hourly(sine_trend_noise(), 96))
    return patient


def _params(body: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in body["parameter"]:
        out.setdefault(p["name"], []).append(p)
    return out


def _parts(param: dict) -> dict[str, float | str]:
    return {
        p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in param["part"]
    }


def test_forecast_answers_points_intervals_skill_and_probability(api, patient):
    r = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code={HR}")
    assert r.status_code == 200, r.json_body
    Parameters.model_validate(r.json_body)
    params = _params(r.json_body)
    run = ForecastRun.objects.get(patient_id=patient, code=HR)
    assert params["status"][0]["valueCode"] == "done"
    assert params["code"][0]["valueCoding"]["code"] == HR
    assert float(params["skill"][0]["valueDecimal"]) == pytest.approx(run.skill, abs=1e-4)
    assert params["beatsBaseline"][0]["valueBoolean"] is run.beats_baseline is True
    assert float(params["probability"][0]["valueDecimal"]) == pytest.approx(run.probability)
    assert params["riskAssessment"][0]["valueReference"]["reference"] == (
        f"RiskAssessment/{run.risk_assessment_id}"
    )
    points = [_parts(p) for p in params["point"]]
    assert len(points) == 48
    for point in points:
        assert point["lo95"] <= point["lo80"] <= point["yhat"] <= point["hi80"] <= point["hi95"]
    models = {_parts(p)["model"] for p in params["backtest"]}
    assert models == {"prophet", "naive", "seasonal_naive", "mean"}
    # Asked again with the same data: the same stored run, nothing fitted again.
    again = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code=http://loinc.org|{HR}")
    assert again.json_body == r.json_body
    assert ForecastRun.objects.filter(patient_id=patient).count() == 1


def test_a_skipped_series_answers_with_its_reason(api, patient):
    r = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code=29463-7")
    assert r.status_code == 200, r.json_body
    params = _params(r.json_body)
    assert params["status"][0]["valueCode"] == "skipped"
    assert params["reason"][0]["valueString"] == "no daily values of Weight are stored"
    assert "point" not in params


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("", 400, "needs code"),
        ("?code=1234-5", 400, "is not the LOINC code of a vital that is forecast"),
        ("?code=8302-2", 400, "is not the LOINC code of a vital that is forecast"),
        ("?code=http://snomed.info/sct|8867-4", 400, "codes are LOINC"),
        (f"?code={HR}&code=9279-1", 400, "takes one code"),
        (f"?code={HR}&horizon=5", 400, "takes only code"),
    ],
)
def test_a_bad_code_is_a_400_operation_outcome(api, db, query, status, says):
    patient = make_patient("NoData")
    r = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast{query}")
    assert r.status_code == status
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert says in r.json_body["issue"][0]["diagnostics"]
    assert not ForecastRun.objects.exists()


def test_an_unknown_patient_is_a_404_operation_outcome(api, db):
    r = api.fhir("GET", f"/fhir/Patient/nobody/$forecast?code={HR}")
    assert r.status_code == 404
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert r.json_body["issue"][0]["code"] == "not-found"


def test_the_capability_statement_declares_forecast(anon):
    body = anon.fhir("GET", "/fhir/metadata").json_body
    patient = next(r for r in body["rest"][0]["resource"] if r["type"] == "Patient")
    declared = {op["name"]: op["definition"] for op in patient["operation"]}
    assert declared["forecast"] == DEFINITION_URL
