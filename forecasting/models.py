"""What a forecast run stores: the series it saw, the forecast, its backtest and its early warning.

One row per (patient, vital code, granularity, data digest): the same data window forecast twice
reuses the stored run, which is what makes the Celery task idempotent.
"""

from __future__ import annotations

from django.db import models


class ForecastRun(models.Model):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    STATUSES = [(DONE, "done"), (SKIPPED, "skipped"), (FAILED, "failed")]
    HOURLY = "hour"
    DAILY = "day"
    GRANULARITIES = [(HOURLY, "hourly"), (DAILY, "daily")]

    patient_id = models.CharField("FHIR Patient id", max_length=64)
    code = models.CharField("LOINC code", max_length=32)
    vital = models.CharField(max_length=32, help_text="The twin's name for the vital")
    unit = models.CharField(max_length=32, blank=True, default="")
    granularity = models.CharField(max_length=4, choices=GRANULARITIES)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    n_points = models.IntegerField(default=0, help_text="Buckets with data in the window")
    data_digest = models.CharField(
        max_length=64, help_text="sha256 of the aggregated series; the same data reuses the run"
    )
    status = models.CharField(max_length=8, choices=STATUSES)
    reason = models.TextField(blank=True, default="", help_text="Why skipped or failed")
    horizon = models.IntegerField(default=0, help_text="Steps forecast (hours or days)")
    # [[iso instant, mean or null for a gap], ...]: the series the model saw, gaps explicit.
    history = models.JSONField(default=list, blank=True)
    # [{"t": iso, "yhat": .., "lo80": .., "hi80": .., "lo95": .., "hi95": ..}, ...]
    points = models.JSONField(default=list, blank=True)
    # {"prophet": {"mae": .., "mape": ..}, "naive": {...}, "seasonal_naive": {...}, "origins": n}
    backtest = models.JSONField(default=dict, blank=True)
    skill = models.FloatField(
        null=True, blank=True, help_text="1 - MAE(prophet) / MAE(better baseline)"
    )
    beats_baseline = models.BooleanField(default=False)
    threshold = models.FloatField(null=True, blank=True)
    direction = models.CharField(max_length=5, blank=True, default="", help_text="above or below")
    probability = models.FloatField(
        null=True, blank=True, help_text="P(the vital crosses the threshold within the horizon)"
    )
    crossing_at = models.DateTimeField(null=True, blank=True)
    fit_seconds = models.FloatField(null=True, blank=True)
    risk_assessment_id = models.CharField(max_length=64, blank=True, default="")
    basis = models.JSONField(default=list, blank=True, help_text="Observation ids used")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "code", "granularity", "data_digest"],
                name="forecast_run_once_per_data",
            )
        ]
        indexes = [
            models.Index(fields=["patient_id", "code", "-created"], name="forecast_latest"),
            models.Index(fields=["-probability"], name="forecast_risk"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.vital} {self.granularity} {self.status} {self.created:%Y-%m-%d %H:%M}"


class QueuedForecast(models.Model):
    """A forecast of one series asked for (``tasks.queue``) and not finished yet: what
    ``GET Patient/{id}/$forecast`` says while a worker has it. The task removes it
    when it ends, whatever it stored."""

    patient_id = models.CharField("FHIR Patient id", max_length=64)
    code = models.CharField("LOINC code", max_length=32)
    queued_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient_id", "code"], name="forecast_queued_once")
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.code} queued {self.queued_at:%Y-%m-%d %H:%M}"
