"""Patient/{id}/$forecast?code=<loinc>: GET answers the stored latest forecast of a vital as
Parameters (points with 80/95% intervals, skill, whether it beat the baseline, probability) and
changes nothing (no twin, no run, no fit, whatever data arrived); before any run it says there
is none yet, or that one is queued. POST asks for a fresh one (queued; the same data reuses the
stored run). Declared in the CapabilityStatement with affectsState; 404 for an unknown patient,
400 for a missing or unknown code, and a skipped run answered with its reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fhir.resources.R4B.operationdefinition import OperationDefinition
from fhir.resources.R4B.parameters import Parameters

from fhir_api.search.dates import format_instant
from forecasting.models import ForecastRun, QueuedForecast
from forecasting.operation import DEFINITION_URL, OPERATION_DEFINITION
from twins.models import PatientTwin

from .forecast_support import (
    HR,
    hourly,
    last_hour,
    make_patient,
    sine_trend_noise,
    store_readings,
)


@pytest.fixture
def patient(db, settings, django_capture_on_commit_callbacks) -> str:
    settings.FORECAST_ON_NEW_DATA = False  # only the operation asks for forecasts here
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


def _post(api, patient: str, code: str, capture) -> tuple[object, object]:
    """POST $forecast; the queued task runs when the request's transaction commits."""
    with capture(execute=True):
        r = api.fhir(
            "POST",
            f"/fhir/Patient/{patient}/$forecast",
            {"resourceType": "Parameters", "parameter": [{"name": "code", "valueCode": code}]},
        )
        waiting = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code={code}")
    return r, waiting


def test_get_without_a_forecast_says_so_and_stores_nothing(api, db):
    patient = make_patient("NoData")
    r = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code={HR}")
    assert r.status_code == 200, r.json_body
    Parameters.model_validate(r.json_body)
    params = _params(r.json_body)
    assert params["status"][0]["valueCode"] == "none"
    assert "POST $forecast" in params["reason"][0]["valueString"]
    assert not PatientTwin.objects.filter(patient_id=patient).exists()
    assert not ForecastRun.objects.exists()
    assert not QueuedForecast.objects.exists()


def test_post_queues_a_forecast_and_get_answers_it(
    api, patient, django_capture_on_commit_callbacks
):
    before = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code={HR}")
    assert _params(before.json_body)["status"][0]["valueCode"] == "none"
    assert not ForecastRun.objects.exists()

    r, waiting = _post(api, patient, HR, django_capture_on_commit_callbacks)
    assert r.status_code == 202, r.json_body
    assert _params(r.json_body)["status"][0]["valueCode"] == "queued"
    # While it waits for a worker, GET says it is queued and when.
    assert _params(waiting.json_body)["status"][0]["valueCode"] == "queued"
    assert "queued" in _params(waiting.json_body)
    assert not QueuedForecast.objects.exists()  # the task ran and finished

    r = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code={HR}")
    assert r.status_code == 200, r.json_body
    Parameters.model_validate(r.json_body)
    params = _params(r.json_body)
    run = ForecastRun.objects.get(patient_id=patient, code=HR)
    assert "queued" not in params
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
    again, _waiting = _post(
        api, patient, f"http://loinc.org|{HR}", django_capture_on_commit_callbacks
    )
    assert again.status_code == 202
    after = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code=http://loinc.org|{HR}")
    assert after.json_body == r.json_body
    assert ForecastRun.objects.filter(patient_id=patient).count() == 1


def test_get_with_new_data_answers_the_stored_run_and_fits_nothing(
    api, patient, django_capture_on_commit_callbacks
):
    _post(api, patient, HR, django_capture_on_commit_callbacks)
    first = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code={HR}").json_body
    with django_capture_on_commit_callbacks(execute=True):
        # A second reading in the newest hour: its mean (the series) changes.
        newer = last_hour() + timedelta(minutes=40)
        reading = {
            "type": "heart_rate",
            "value": 140,
            "unit": "/min",
            "time": format_instant(newer),
        }
        assert store_readings(patient, [reading]).accepted == 1
    r = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code={HR}")
    assert r.json_body == first
    assert ForecastRun.objects.filter(patient_id=patient).count() == 1


def test_a_skipped_series_answers_with_its_reason(api, patient, django_capture_on_commit_callbacks):
    _post(api, patient, "29463-7", django_capture_on_commit_callbacks)
    r = api.fhir("GET", f"/fhir/Patient/{patient}/$forecast?code=29463-7")
    assert r.status_code == 200, r.json_body
    params = _params(r.json_body)
    assert params["status"][0]["valueCode"] == "skipped"
    assert params["reason"][0]["valueString"] == "no daily values of Weight are stored"
    assert "point" not in params


@pytest.mark.parametrize("method", ["GET", "POST"])
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
def test_a_bad_code_is_a_400_operation_outcome(api, db, method, query, status, says):
    patient = make_patient("NoData")
    r = api.fhir(method, f"/fhir/Patient/{patient}/$forecast{query}")
    assert r.status_code == status
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert says in r.json_body["issue"][0]["diagnostics"]
    assert not ForecastRun.objects.exists()
    assert not QueuedForecast.objects.exists()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_patient_is_a_404_operation_outcome(api, db, method):
    r = api.fhir(method, f"/fhir/Patient/nobody/$forecast?code={HR}")
    assert r.status_code == 404
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert r.json_body["issue"][0]["code"] == "not-found"


def test_the_capability_statement_declares_forecast_as_affecting_state(anon):
    body = anon.fhir("GET", "/fhir/metadata").json_body
    patient = next(r for r in body["rest"][0]["resource"] if r["type"] == "Patient")
    declared = {op["name"]: op["definition"] for op in patient["operation"]}
    assert declared["forecast"] == DEFINITION_URL
    definition = OperationDefinition.model_validate(OPERATION_DEFINITION)
    assert definition.url == DEFINITION_URL and definition.affectsState is True


def test_post_runs_the_forecast_in_the_request_when_tasks_run_in_process(
    transactional_db, api, settings
):
    settings.FORECAST_ON_NEW_DATA = False
    patient = make_patient("InProcess")
    store_readings(patient, hourly(sine_trend_noise(), 96))
    assert not ForecastRun.objects.exists()
    r = api.fhir("POST", f"/fhir/Patient/{patient}/$forecast?code={HR}")
    assert r.status_code == 200, r.json_body
    params = _params(r.json_body)
    assert params["status"][0]["valueCode"] == "done"
    assert len(params["point"]) == 48
    assert ForecastRun.objects.filter(patient_id=patient, code=HR).count() == 1
    assert not QueuedForecast.objects.exists()
