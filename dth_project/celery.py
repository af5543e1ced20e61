"""The Celery app. With no CELERY_BROKER_URL tasks run eagerly in process (see settings)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dth_project.settings")

app = Celery("clouddth")
app.config_from_object("django.conf:settings", namespace="CELERY")
if not app.conf.broker_url:
    # Tasks run eagerly in process; the in-memory transport keeps kombu from looking for a
    # broker on localhost.
    app.conf.broker_url = "memory://"
app.autodiscover_tasks()
