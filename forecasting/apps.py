from __future__ import annotations

from django.apps import AppConfig


class ForecastingConfig(AppConfig):
    name = "forecasting"
    verbose_name = "Forecasting"

    def ready(self) -> None:
        from celery.signals import task_postrun

        from fhir_api import operations

        from . import tasks
        from .operation import DEFINITION_URL, answer

        operations.register("Patient", "forecast", DEFINITION_URL, answer)
        # A twin refresh may have made forecasts due (tasks.queue_due).
        task_postrun.connect(tasks.after_task, dispatch_uid="forecasting.after_task")
