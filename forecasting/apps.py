from __future__ import annotations

from django.apps import AppConfig


class ForecastingConfig(AppConfig):
    name = "forecasting"
    verbose_name = "Forecasting"

    def ready(self) -> None:
        from celery.signals import task_postrun, worker_process_init

        from fhir_api import operations

        from . import tasks
        from .operation import DEFINITION_URL, answer

        operations.register("Patient", "forecast", DEFINITION_URL, answer)
        # A twin refresh may have made forecasts due (tasks.queue_due).
        task_postrun.connect(tasks.after_task, dispatch_uid="forecasting.after_task")
        # Worker processes import the model's libraries before their first task.
        worker_process_init.connect(tasks.preload, dispatch_uid="forecasting.preload")
