"""The forecasting jobs in process (no broker: tasks run eagerly, as in the demo): repeated task
runs on the same data create one run; new readings make the series due again after the twin's
refresh; celery beat sends the nightly fan-out, which queues one task per series."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.beat import Scheduler
from celery.schedules import crontab

from dth_project.celery import app
from fhir_api.models import Resource
from forecasting import tasks
from forecasting.models import ForecastRun

from .forecast_support import HR, hourly, last_hour, make_patient, sine_trend_noise, store_readings


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    def store(patient: str, readings: list[dict]):
        with django_capture_on_commit_callbacks(execute=True):
            return store_readings(patient, readings)

    return store


def test_repeated_task_runs_on_the_same_data_create_one_run(db, commit, settings):
    settings.FORECAST_ON_NEW_DATA = False
    patient = make_patient()
    commit(patient, hourly(sine_trend_noise(), 72))
    first = tasks.forecast_series.delay(patient, HR).get()
    again = [tasks.forecast_series.delay(patient, HR).get() for _ in range(2)]
    assert first["status"] == "done"
    assert {r["run"] for r in again} == {first["run"]}
    assert ForecastRun.objects.filter(patient_id=patient).count() == 1
    forecasts = Resource.objects.filter(
        resource_type="RiskAssessment", content__contains="forecast-method"
    )
    assert forecasts.count() == 1


def test_a_task_for_an_unknown_patient_or_code_stores_nothing(db):
    assert tasks.forecast_series.delay("nobody", HR).get()["status"] == "ignored"
    assert tasks.forecast_series.delay("nobody", "1234-5").get()["status"] == "ignored"
    assert not ForecastRun.objects.exists()


def test_new_readings_make_the_series_due_after_the_twins_refresh(db, commit, settings):
    settings.FORECAST_REFORECAST_HOURS = 6
    patient = make_patient()
    shape = sine_trend_noise()
    end = last_hour() - timedelta(hours=8)
    # Enough hours for a first forecast: the twin's refresh queues it.
    commit(patient, hourly(shape, 60, end=end))
    runs = ForecastRun.objects.filter(patient_id=patient, code=HR)
    assert runs.count() == 1 and runs.get().status == ForecastRun.DONE
    # Five new hours are not enough to forecast again ...
    newer = hourly(lambda i: shape(60 + i), 5, end=end + timedelta(hours=5))
    commit(patient, newer)
    assert runs.count() == 1
    assert tasks.due(patient) == []
    # ... a sixth is.
    commit(patient, hourly(lambda i: shape(65 + i), 1, end=end + timedelta(hours=6)))
    assert runs.count() == 2
    latest = runs.order_by("-created", "-pk").first()
    assert latest.n_points == 66


def test_beat_sends_the_nightly_fan_out_which_queues_one_task_per_series(
    db, commit, settings, django_capture_on_commit_callbacks
):
    settings.FORECAST_ON_NEW_DATA = False
    app.loader.import_default_modules()
    entry = Scheduler(app, lazy=False).schedule["forecasting-nightly"]
    assert entry.task == "forecasting.tasks.forecast_all" and entry.task in app.tasks
    assert isinstance(entry.schedule, crontab)
    assert entry.schedule.hour == {2} and entry.schedule.minute == {15}

    one, two = make_patient("One"), make_patient("Two")
    commit(one, hourly(sine_trend_noise(), 50))
    commit(two, hourly(lambda i: 36.8, 3, kind="body_temperature", unit="Cel"))
    commit(two, hourly(sine_trend_noise(), 10, end=last_hour() - timedelta(days=5)))
    with django_capture_on_commit_callbacks(execute=True):
        # One's heart rate and Two's temperature; Two's heart rate stopped 5 days ago.
        assert tasks.forecast_all.delay().get() == 2
    runs = ForecastRun.objects.order_by("patient_id", "code")
    assert {(r.patient_id, r.code, r.status) for r in runs} == {
        (one, HR, ForecastRun.DONE),
        (two, "8310-5", ForecastRun.SKIPPED),
    }
