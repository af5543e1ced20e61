"""The fleet view: the patients whose forecasts give the highest predicted risk.

The latest run of every series (patient, LOINC code) that was forecast, ranked by the early
warning's probability that the vital crosses the patient's alert threshold within the horizon
(the ``prediction.probabilityDecimal`` of the run's RiskAssessment,
hl7.org/fhir/R4B/riskassessment-definitions.html#RiskAssessment.prediction.probability_x_).

A forecast that does not beat its better baseline gives no early warning (it does not fire a
predicted alert): it ranks after every trusted forecast, whatever its probability, and the
page marks it. Skipped and failed runs have no prediction and are only counted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Case, Count, F, FloatField, When
from django.urls import reverse
from django.utils import timezone

from twins.patients import patient_facts

from .models import ForecastRun
from .page import horizon_text, latest_per_series, percent, unit_of, vital_label

LIMIT = 50


def ranked(limit: int = LIMIT) -> list[ForecastRun]:
    """The latest done runs, trusted warnings by probability first, then the untrusted."""
    warning = Case(
        When(beats_baseline=True, probability__isnull=False, then=F("probability")),
        default=None,
        output_field=FloatField(),
    )
    return list(
        latest_per_series()
        .filter(status=ForecastRun.DONE)
        .defer("history", "points", "basis", "backtest")
        .annotate(warning=warning)
        .order_by(
            F("warning").desc(nulls_last=True),
            F("probability").desc(nulls_last=True),
            "patient_id",
            "code",
        )[:limit]
    )


def fleet(limit: int = LIMIT, now: datetime | None = None) -> dict[str, Any]:
    """The rows of the fleet view and the count of series without a forecast."""
    now = now or timezone.now()
    runs = ranked(limit)
    facts = patient_facts(sorted({r.patient_id for r in runs}), now.date())
    rows = []
    for run in runs:
        person = facts.get(run.patient_id)
        trusted = run.beats_baseline
        rows.append(
            {
                "run": run,
                "patient_id": run.patient_id,
                "name": person.name if person else f"Patient/{run.patient_id}",
                "age": person.age if person else None,
                "url": reverse("forecasting:patient", args=[run.patient_id]) + f"#vital-{run.code}",
                "label": vital_label(run),
                "unit": unit_of(run),
                "horizon": horizon_text(run),
                "trusted": trusted,
                "probability": percent(run.probability),
                "crossing_at": run.crossing_at,
                "skill": run.skill,
            }
        )
    counts = dict(
        latest_per_series()
        .exclude(status=ForecastRun.DONE)
        .values("status")
        .order_by()
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {"rows": rows, "skipped": counts.get("skipped", 0), "failed": counts.get("failed", 0)}
