"""The clinicians' forecast pages: staff with a role only; each patient's forecasts with their
chart data (history, forecast and intervals, thresholds, baseline band), backtest and early
warning; a forecast that does not beat its baseline marked and its early warning off; a skipped
series with its reason; the fleet view ranking the latest forecast of every series by risk;
"forecast now" from the page; the links from the twin page, the ward and the admin index."""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from html import unescape

import pytest

from forecasting.models import ForecastRun
from forecasting.services import run_forecast
from twins.models import PatientTwin

# Fixtures are imported from the support module (pytest finds them here), and test arguments
# take their names: hence F401/F811 are off in this file.
# ruff: noqa: F401, F811
from .forecast_views_support import END, daily_sine, hourly, stored_run, white_noise, with_baseline
from .twin_views_support import (
    clinician,
    clinician_user,
    make_patient,
    nurse,
    nurse_user,
    roles,
)

FLEET = "/forecasting/"
UNTRUSTED = "does not beat the baseline — early warning off"


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return unescape(response.content.decode())


def patient_url(patient_id: str) -> str:
    return f"/forecasting/patient/{patient_id}/"


def section(html: str, code: str) -> str:
    """The part of the patient page about one vital (its <section id="vital-CODE">)."""
    found = re.search(rf'<section[^>]*id="vital-{re.escape(code)}".*?</section>', html, re.S)
    assert found, f"no section for {code}"
    return found.group(0)


def text(html: str) -> str:
    """What a reader sees of some HTML: tags dropped, runs of white space made one space."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def charts(html: str) -> dict[str, dict]:
    found = re.search(r'<script id="forecast-charts" type="application/json">(.*?)</script>', html)
    assert found
    return {chart["code"]: chart for chart in json.loads(found.group(1))}


@pytest.fixture
def patient(db) -> str:
    return make_patient("Forecast", given="Fay")


# --- access -------------------------------------------------------------------------------


def test_anonymous_and_non_staff_users_are_sent_to_the_login(client, django_user_model, patient):
    for method, url in [
        ("get", FLEET),
        ("get", patient_url(patient)),
        ("post", patient_url(patient) + "forecast/"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next=/forecasting/"), url
    outsider = django_user_model.objects.create_user("outsider", password="x", is_staff=False)
    client.force_login(outsider)
    assert client.get(FLEET).status_code == 302


def test_staff_without_a_role_are_refused(client, django_user_model, patient):
    someone = django_user_model.objects.create_user("temp", password="x", is_staff=True)
    client.force_login(someone)
    assert client.get(FLEET).status_code == 403
    assert client.get(patient_url(patient)).status_code == 403
    response = client.post(patient_url(patient) + "forecast/", {"code": "8867-4"})
    assert response.status_code == 403
    assert not ForecastRun.objects.exists()


@pytest.fixture
def forecast(patient) -> dict[str, ForecastRun]:
    """Runs made by the forecasting service from the patient's hourly aggregates: heart rate a
    daily sine rising towards its alert threshold (130/min), respiratory rate white noise, SpO₂
    only ten hours (too short)."""
    hourly(patient, "heart_rate", 10 * 24, daily_sine(1, level=90, amplitude=10, trend=0.12))
    hourly(patient, "respiratory_rate", 10 * 24, white_noise(2, level=16, sd=2))
    hourly(patient, "oxygen_saturation", 10, white_noise(3, level=96, sd=1))
    with_baseline(patient, "heart_rate", "respiratory_rate")
    now = END + timedelta(minutes=30)
    return {
        name: run_forecast(patient, code, now=now)
        for name, code in [("hr", "8867-4"), ("rr", "9279-1"), ("spo2", "2708-6")]
    }


def test_the_page_shows_each_forecast_with_its_backtest_and_early_warning(clinician, forecast):
    hr = forecast["hr"]
    assert hr.status == ForecastRun.DONE and hr.beats_baseline, hr.backtest
    html = page(clinician.get(patient_url(hr.patient_id)))
    assert "Forecasts: Fay Forecast" in html
    part = section(html, "8867-4")
    assert "Heart rate" in part and "beats the baseline" in part and UNTRUSTED not in part
    # The backtest figures as stored: MAE of prophet and of each baseline, and the skill.
    for model in ("prophet", "naive", "seasonal_naive"):
        row = re.search(rf'<tr data-model="{model}".*?</tr>', part, re.S).group(0)
        assert f"{hr.backtest[model]['mae']:.2f}" in row
        assert f"{hr.backtest[model]['mape']:.1f} %" in row
    assert f"{hr.skill:+.2f}" in part
    # The early warning: the stored probability of crossing 130/min, and when.
    assert hr.probability is not None and hr.threshold == 130
    shown = math.floor(hr.probability * 100 + 0.5)
    assert f"{shown} % chance of above 130 /min within the next 48 hours" in text(part)
    if hr.crossing_at:
        assert f"{hr.crossing_at:%-d %b %H:%M}" in part
    assert "Forecast now (every vital)" in html and "Forecast Heart rate now" in part


def test_the_chart_has_history_forecast_intervals_thresholds_and_baseline(clinician, forecast):
    hr = forecast["hr"]
    chart = charts(page(clinician.get(patient_url(hr.patient_id))))["8867-4"]
    # Recent history: the last 7 days of the 10 the model saw, gaps as null.
    assert len(chart["history"]) == 7 * 24
    assert chart["history"][-1][1] == pytest.approx(hr.history[-1][1])
    # The forecast with its 80% and 95% intervals, one point per hour of the horizon.
    assert len(chart["forecast"]) == hr.horizon
    for point in chart["forecast"]:
        assert point["lo95"] <= point["lo80"] <= point["yhat"] <= point["hi80"] <= point["hi95"]
    assert chart["forecast"][0]["x"] > chart["history"][-1][0]
    assert {line["value"] for line in chart["lines"]} == {40, 130}
    twin = PatientTwin.objects.get(patient_id=hr.patient_id)
    assert chart["baseline"]["median"] == twin.state["baseline"]["heart_rate"]["median"]
    assert chart["baseline"]["low"] < chart["baseline"]["median"] < chart["baseline"]["high"]
    assert chart["trusted"] is True


def test_a_forecast_that_does_not_beat_its_baseline_is_marked(clinician, forecast):
    rr = forecast["rr"]
    assert rr.status == ForecastRun.DONE and not rr.beats_baseline, rr.backtest
    html = page(clinician.get(patient_url(rr.patient_id)))
    part = section(html, "9279-1")
    assert UNTRUSTED in part
    assert "Off: the forecast does not beat the baseline." in part
    assert "chance of" not in part  # no early warning given from it
    assert charts(html)["9279-1"]["trusted"] is False


def test_a_skipped_series_shows_its_reason(clinician, forecast):
    spo2 = forecast["spo2"]
    assert spo2.status == ForecastRun.SKIPPED and spo2.reason
    part = section(page(clinician.get(patient_url(spo2.patient_id))), "2708-6")
    assert "skipped" in part and spo2.reason in part
    assert "<canvas" not in part


# --- forecast now -------------------------------------------------------------------------


def test_forecast_now_from_the_page_makes_a_new_run_once_committed(
    nurse, patient, django_capture_on_commit_callbacks
):
    hourly(patient, "heart_rate", 4 * 24, daily_sine(5))
    url = patient_url(patient) + "forecast/"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = nurse.post(url, {"code": "8867-4"}, follow=True)
    assert len(queued) == 1 and not ForecastRun.objects.exists()  # sent when the view commits
    queued[0]()  # the commit: with no broker the task runs in process
    run = ForecastRun.objects.get(patient_id=patient)
    assert run.code == "8867-4" and run.status == ForecastRun.DONE
    assert run.window_end == END + timedelta(hours=1)
    assert "Forecast queued: Heart rate" in page(response)
    assert response.redirect_chain[-1][0] == patient_url(patient) + "#vital-8867-4"
    assert 'id="vital-8867-4"' in page(nurse.get(patient_url(patient)))  # the new forecast
    # Every vital with data at once.
    hourly(patient, "systolic", 4 * 24, daily_sine(6, level=130))
    with django_capture_on_commit_callbacks(execute=True):
        nurse.post(url)
    assert set(ForecastRun.objects.values_list("code", flat=True)) == {"8867-4", "8480-6"}
    assert ForecastRun.objects.filter(code="8867-4").count() == 1  # same data: the same run


def test_forecast_now_with_a_code_that_is_not_forecast_says_so(
    nurse, patient, django_capture_on_commit_callbacks
):
    for code in ("1234-5", "8302-2", "<script>"):
        with django_capture_on_commit_callbacks(execute=True) as queued:
            response = nurse.post(patient_url(patient) + "forecast/", {"code": code}, follow=True)
        html = page(response)
        assert "is not the LOINC code of a vital that is forecast" in html
        assert not queued
    with django_capture_on_commit_callbacks(execute=True):
        response = nurse.post(patient_url(patient) + "forecast/", follow=True)
    assert "No vital sign of this patient to forecast" in page(response)
    assert (
        nurse.post("/forecasting/patient/nobody/forecast/", {"code": "8867-4"}).status_code == 404
    )
    assert not ForecastRun.objects.exists()


def test_the_twin_page_links_to_the_forecasts(clinician, forecast):
    patient_id = forecast["hr"].patient_id
    html = page(clinician.get(f"/twins/patient/{patient_id}/"))
    assert f'href="{patient_url(patient_id)}"' in html
    # The forecast page's script and stylesheet are served (WhiteNoise, DEBUG off).
    assert clinician.get("/static/forecasting/forecast.js").status_code == 200
    assert clinician.get("/static/forecasting/forecasting.css").status_code == 200


def test_an_unknown_patient_is_not_found(clinician):
    assert clinician.get(patient_url("no-such-patient")).status_code == 404


# --- the fleet view -----------------------------------------------------------------------


def test_fleet_ranks_the_latest_forecast_of_each_series_by_probability(clinician, db):
    low, high, middle, untrusted = (make_patient(n) for n in ("Low", "High", "Middle", "Noisy"))
    stored_run(low, probability=0.2)
    stored_run(high, probability=0.9)
    # An older run of the same series is superseded by the newer one.
    old = stored_run(middle, probability=0.95, skill=0.5)
    ForecastRun.objects.filter(pk=old.pk).update(created=old.created - timedelta(hours=6))
    stored_run(middle, probability=0.6)
    stored_run(middle, code="8480-6", vital="systolic", probability=0.05, threshold=200.0)
    stored_run(untrusted, probability=0.99, beats_baseline=False, skill=-0.2)
    skipped = make_patient("Short")
    stored_run(skipped, status=ForecastRun.SKIPPED, reason="only 5 hourly values", probability=None)

    html = page(clinician.get(FLEET))
    rows = re.findall(
        r'<tr class="(forecast-\w+)" data-patient="([^"]+)" data-code="([^"]+)"', html
    )
    assert [(p, c) for _k, p, c in rows] == [
        (high, "8867-4"),
        (middle, "8867-4"),
        (low, "8867-4"),
        (middle, "8480-6"),
        (untrusted, "8867-4"),  # 99 %, but its forecast is not trusted: last, and marked
    ]
    assert [k for k, _p, _c in rows] == ["forecast-trusted"] * 4 + ["forecast-untrusted"]
    assert html.count(UNTRUSTED) == 1
    assert "95 %" not in html  # the superseded run is not shown
    assert "90 %" in html and "60 %" in html
    assert "1 series skipped" in html
    # Each row links to the patient's forecast page, at the vital.
    assert f'href="{patient_url(high)}#vital-8867-4"' in html
    assert "Fay Forecast" not in html and "Ada High" in html


def test_the_fleet_is_linked_from_the_admin_index_and_the_ward(clinician):
    assert f'href="{FLEET}"' in page(clinician.get("/admin/"))
    assert f'href="{FLEET}"' in page(clinician.get("/twins/ward/"))
