"""Celery beat sends ``twins.tasks.check_devices`` every minute, and that task flags a device that
went silent although no reading arrives to say so (twins.rules.device_rule: silent > 30 min).

The schedule is read by Celery beat's own scheduler from the project's Celery app, as
``celery -A dth_project beat`` reads it; the entry it sends runs the task (eagerly here: the
tests have no broker; tests/test_twin_celery.py runs tasks on a real worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.beat import Scheduler
from django.utils import timezone

from dth_project.celery import app
from twins import services
from twins.models import Alert, PatientTwin

from .twin_views_support import roles, send, vitals, worn  # noqa: F401 (fixtures)

ENTRY = "twins-check-devices"


@pytest.fixture
def scheduler() -> Scheduler:
    """Beat's scheduler over the app's configuration (not persisted: no schedule file), after
    the app imported its tasks as a starting worker or beat does (autodiscovery)."""
    app.loader.import_default_modules()
    return Scheduler(app, lazy=False)


def test_beat_schedules_check_devices_every_minute(scheduler):
    entry = scheduler.schedule[ENTRY]
    assert entry.task == "twins.tasks.check_devices"
    assert entry.task in app.tasks  # the name beat sends is a task the workers know
    assert entry.schedule.run_every == timedelta(minutes=1)


def test_the_entry_is_due_a_minute_after_it_last_ran(scheduler):
    entry = scheduler.schedule[ENTRY]
    entry.last_run_at = app.now() - timedelta(seconds=30)
    due, _next = entry.is_due()
    assert not due
    entry.last_run_at = app.now() - timedelta(seconds=61)
    due, _next = entry.is_due()
    assert due


def test_what_beat_sends_flags_a_silent_device_and_spares_a_reporting_one(scheduler, worn, send):  # noqa: F811
    now = timezone.now()
    quiet, quiet_device = worn("Quiet", "BEAT-QUIET")
    chatty, chatty_device = worn("Chatty", "BEAT-CHATTY")
    send(quiet_device, vitals(now - timedelta(minutes=45)))
    send(chatty_device, vitals(now - timedelta(minutes=5)))
    # When the readings came in, each twin's clock was its newest reading: nothing is silent.
    assert not Alert.objects.filter(problem__startswith="device:silent:").exists()

    result = scheduler.apply_async(scheduler.schedule[ENTRY])

    assert result.get() == 2  # both monitored twins were checked
    silent = Alert.objects.get(problem=f"device:silent:{quiet_device.fhir_id}")
    assert silent.patient_id == quiet and silent.status == Alert.ACTIVE
    assert "silent for 45 min" in silent.summary
    assert silent.flag_id  # written as a FHIR Flag
    assert not Alert.objects.filter(patient_id=chatty, problem__startswith="device:").exists()


def test_discharged_patients_are_not_checked(scheduler, worn, send):  # noqa: F811
    now = timezone.now()
    patient, device = worn("Home", "BEAT-HOME")
    send(device, vitals(now - timedelta(hours=2)))
    services.change_stage(patient, "discharged", by="tests", why="back home")

    assert scheduler.apply_async(scheduler.schedule[ENTRY]).get() == 0
    assert not Alert.objects.filter(patient_id=patient).exists()
    assert PatientTwin.objects.get(patient_id=patient).stage == "discharged"
