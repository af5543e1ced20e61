"""A daily sine plus trend plus noise: prophet beats the naive, the seasonal naive and the mean
forecast in the rolling-origin backtest, and the stored run (and its RiskAssessment) says so."""

from __future__ import annotations

import pytest

from fhir_api import json_io
from fhir_api.models import Resource
from forecasting.models import ForecastRun
from forecasting.services import run_forecast

from .forecast_support import HR, hourly, make_patient, sine_trend_noise, store_readings


@pytest.fixture
def seasonal_patient(db, django_capture_on_commit_callbacks) -> str:
    patient = make_patient("Seasonal")
    with django_capture_on_commit_callbacks(execute=True):
        result = store_readings(patient, hourly(sine_trend_noise(), 10 * 24))
    assert len(result.observation_ids) == 240
    return patient


def test_prophet_beats_every_baseline_on_a_daily_sine_with_trend(seasonal_patient):
    run = run_forecast(seasonal_patient, HR)
    assert run.status == ForecastRun.DONE, run.reason
    scores = run.backtest
    assert scores["origins"] == 3
    prophet = scores["prophet"]["mae"]
    for baseline in ("naive", "seasonal_naive", "mean"):
        assert prophet < scores[baseline]["mae"], (baseline, scores)
    best = min(scores[b]["mae"] for b in ("naive", "seasonal_naive", "mean"))
    assert run.skill == pytest.approx(1 - prophet / best, abs=1e-3)
    assert run.skill > 0.1 and run.beats_baseline is True
    assert scores["prophet"]["mape"] < scores["seasonal_naive"]["mape"]
    assert "daily" in scores["seasonalities"] and "weekly" not in scores["seasonalities"]


def test_the_forecast_follows_the_daily_cycle_with_nested_intervals(seasonal_patient):
    run = run_forecast(seasonal_patient, HR)
    assert run.horizon == 48 and len(run.points) == 48
    for point in run.points:
        assert point["lo95"] <= point["lo80"] <= point["yhat"] <= point["hi80"] <= point["hi95"]
    # The sine's peak (hour i ≡ 6 mod 24) and trough (≡ 18) are forecast a day ahead too:
    # the forecast's own range over a day spans most of the ±10 swing.
    day = [p["yhat"] for p in run.points[:24]]
    assert max(day) - min(day) > 14
    # Hours of the history are the series the model saw, oldest first, one per hour.
    assert len(run.history) == 240 and all(v is not None for _t, v in run.history)


def test_the_risk_assessment_says_the_forecast_beat_its_baseline(seasonal_patient):
    run = run_forecast(seasonal_patient, HR)
    row = Resource.objects.get(resource_type="RiskAssessment", logical_id=run.risk_assessment_id)
    notes = " ".join(n["text"] for n in json_io.loads(row.content)["note"])
    assert f"skill {run.skill:+.2f}" in notes and "beat it" in notes and "NOT" not in notes
