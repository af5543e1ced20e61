"""The Celery app. With no CELERY_BROKER_URL tasks run eagerly in process (see settings).

Production runs workers (``celery -A dth_project worker``) and one scheduler
(``celery -A dth_project beat``) that sends the periodic tasks of ``beat_schedule``.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dth_project.settings")

app = Celery("clouddth")
app.config_from_object("django.conf:settings", namespace="CELERY")
if not app.conf.broker_url:
    # Tasks run eagerly in process; the in-memory transport keeps kombu from looking for a
    # broker on localhost.
    app.conf.broker_url = "memory://"
app.autodiscover_tasks()

# Periodic tasks, sent by ``celery -A dth_project beat`` (one beat per deployment).
app.conf.beat_schedule = {
    # Re-run each monitored twin's rules at the wall clock, so that a device that went silent
    # is flagged although no reading comes to say so (twins.rules.device_rule).
    "twins-check-devices": {"task": "twins.tasks.check_devices", "schedule": 60.0},
    # Forecast every series with data in the last two days, once a night at
    # FORECAST_NIGHTLY_HOUR:15 UTC (settings checks the hour): one task per series.
    "forecasting-nightly": {
        "task": "forecasting.tasks.forecast_all",
        "schedule": crontab(minute=15, hour=os.environ.get("FORECAST_NIGHTLY_HOUR") or "2"),
    },
}
