"""The forecast runs in the admin: listed read-only for staff with a clinical role, with the
columns a clinician scans (patient, vital, status, skill, beats baseline, probability, made),
and a "Forecast now" action that queues a new forecast of each selected series on commit (in
eager mode, with no broker, the run is made there and then)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission

from forecasting.models import ForecastRun
from forecasting.services import run_forecast

# ruff: noqa: F401, F811
from .forecast_views_support import END, daily_sine, hourly, stored_run, white_noise
from .twin_views_support import clinician, clinician_user, make_patient, nurse, nurse_user, roles

RUNS = "/admin/forecasting/forecastrun/"
# The series end three hours before the last full hour; three more hours come in later.
EARLIER = END - timedelta(hours=3)


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return unescape(response.content.decode())


@pytest.fixture
def series(db) -> dict[str, str]:
    """Two patients with hourly heart rates (and one with a respiratory rate too), each series
    forecast once by the service."""
    first, second = make_patient("First"), make_patient("Second", given="Bo")
    hourly(first, "heart_rate", 5 * 24, daily_sine(11), end=EARLIER)
    hourly(first, "respiratory_rate", 5 * 24, white_noise(12, level=16, sd=2), end=EARLIER)
    hourly(second, "heart_rate", 5 * 24, daily_sine(13, level=80), end=EARLIER)
    now = EARLIER + timedelta(minutes=30)
    for patient, code in [(first, "8867-4"), (first, "9279-1"), (second, "8867-4")]:
        run_forecast(patient, code, now=now)
    return {"first": first, "second": second}


def test_the_runs_are_listed_read_only_with_what_a_clinician_scans(clinician, series):
    html = page(clinician.get(RUNS))
    for run in ForecastRun.objects.all():
        assert f'href="/forecasting/patient/{run.patient_id}/#vital-{run.code}"' in html
    for column in ("vital", "status", "skill", "beats_baseline", "probability", "created"):
        assert f"column-{column}" in html or f"field-{column}" in html, column
    assert "By status" in html and "By beats baseline" in html
    assert "Add forecast run" not in html
    assert clinician.get(RUNS + "add/").status_code == 403
    run = ForecastRun.objects.first()
    detail = page(clinician.get(f"{RUNS}{run.pk}/change/"))
    assert 'name="_save"' not in detail and run.data_digest in detail


def test_staff_without_a_role_cannot_see_the_runs(client, django_user_model, series):
    someone = django_user_model.objects.create_user("temp", password="x", is_staff=True)
    client.force_login(someone)
    assert client.get(RUNS).status_code == 403


def test_forecast_now_queues_each_selected_series_on_commit(
    clinician, series, django_capture_on_commit_callbacks
):
    first = series["first"]
    selected = list(ForecastRun.objects.filter(patient_id=first).values_list("pk", flat=True))
    before = ForecastRun.objects.count()
    # New data for both series of the first patient: a forecast now makes new runs.
    hourly(first, "heart_rate", 3, daily_sine(21))
    hourly(first, "respiratory_rate", 3, white_noise(22, 16, 2))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = clinician.post(
            RUNS, {"action": "forecast_now", "_selected_action": selected}, follow=True
        )
    assert "2 forecasts queued" in page(response)
    assert len(queued) == 2  # one task per series, sent when the transaction commits
    assert ForecastRun.objects.count() == before  # nothing ran before the commit
    for callback in queued:
        callback()  # the commit: with no broker the task runs in process
    new = ForecastRun.objects.filter(patient_id=first).order_by("-created", "-id")
    assert ForecastRun.objects.count() == before + 2
    assert {r.code for r in new[:2]} == {"8867-4", "9279-1"}
    assert all(r.window_end == END + timedelta(hours=1) for r in new[:2])
    # The unselected patient's series was not forecast again.
    assert ForecastRun.objects.filter(patient_id=series["second"]).count() == 1


def test_the_action_is_offered_only_to_who_may_forecast(client, django_user_model, series):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="twins", codename="view_patienttwin")
    )
    client.force_login(viewer)
    html = page(client.get(RUNS))
    assert 'value="forecast_now"' not in html
    run = ForecastRun.objects.first()
    response = client.post(RUNS, {"action": "forecast_now", "_selected_action": [run.pk]})
    assert ForecastRun.objects.count() == 3
    assert response.status_code in (200, 302)
