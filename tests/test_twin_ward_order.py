"""The ward overview's order while an alert de-escalates: an open alert keeps the rank of the
severity ``twins.alerts`` holds it at until it closes, as its Flag stays active.

Hysteresis (twins/alerts.py): a lower severity counts only once it has lasted DEESCALATE_AFTER
(15 min); an alert with no finding resolves after CALM_PERIOD (30 min). So a patient whose
readings just improved stays among the patients as ill as their open alert says, ahead of a
patient with a higher NEWS2 but a lower alert; once the alert de-escalates the patient takes the
lower rank, and once it closes (calm period, or resolved by a clinician) NEWS2 alone ranks them.
"""

from __future__ import annotations

from datetime import timedelta

from twins import services
from twins.models import Alert

# Fixtures are imported from the support module; test arguments take their names.
# ruff: noqa: F401, F811
from .twin_views_support import T0, clinician, clinician_user, roles, send, vitals, worn

WARD_JSON = "/twins/ward.json"
HIGH = {"hr": 131, "rr": 26, "spo2": 91}  # NEWS2 9: high, an alert of high severity
MEDIUM = {"hr": 124, "rr": 24, "spo2": 93}  # NEWS2 6: medium, an alert of medium severity
LOWER_MEDIUM = {"hr": 115, "rr": 22, "spo2": 95}  # NEWS2 5: medium
CALM = {}  # NEWS2 0


def order(client) -> list[str]:
    return [row["name"] for row in client.get(WARD_JSON).json()["patients"]]


def row_of(client, name: str) -> dict:
    return next(r for r in client.get(WARD_JSON).json()["patients"] if r["name"] == name)


def news2_alert(patient: str) -> Alert:
    return Alert.objects.exclude(status=Alert.RESOLVED).get(patient_id=patient, problem="news2")


def test_an_open_alert_keeps_its_rank_until_it_closes(clinician, worn, send):
    recovering, recovering_band = worn("Recovering", "ORDER-1")
    _medium, medium_band = worn("Medium", "ORDER-2")
    _calm, calm_band = worn("Calm", "ORDER-3")
    send(recovering_band, vitals(T0, **HIGH))
    send(medium_band, vitals(T0, **MEDIUM))
    send(calm_band, vitals(T0, **CALM))
    assert order(clinician) == ["Ada Recovering", "Ada Medium", "Ada Calm"]

    # Five minutes later the readings are calm (NEWS2 0) but the high alert is still open:
    # the patient stays first, ahead of NEWS2 6.
    send(recovering_band, vitals(T0 + timedelta(minutes=5), **CALM))
    assert news2_alert(recovering).severity == 3
    row = row_of(clinician, "Ada Recovering")
    assert row["news2"]["total"] == 0 and row["alerts"]["worst_label"] == "high"
    assert order(clinician) == ["Ada Recovering", "Ada Medium", "Ada Calm"]

    # Past the calm period with no finding the alert resolves: NEWS2 alone ranks the patient.
    send(recovering_band, vitals(T0 + timedelta(minutes=40), **CALM))
    assert not Alert.objects.filter(patient_id=recovering).exclude(status=Alert.RESOLVED)
    assert order(clinician)[0] == "Ada Medium"
    assert row_of(clinician, "Ada Recovering")["alerts"]["count"] == 0


def test_a_de_escalating_alert_takes_the_lower_rank_once_the_hysteresis_lets_it(
    clinician, worn, send
):
    easing, easing_band = worn("Easing", "ORDER-4")
    _medium, medium_band = worn("Medium", "ORDER-5")
    send(easing_band, vitals(T0, **HIGH))
    send(medium_band, vitals(T0, **MEDIUM))

    # NEWS2 falls to 5 (medium): for less than 15 minutes the alert stays high, and so does
    # the patient's rank, above the NEWS2 6 patient.
    send(easing_band, vitals(T0 + timedelta(minutes=5), **LOWER_MEDIUM))
    assert news2_alert(easing).severity == 3
    assert order(clinician) == ["Ada Easing", "Ada Medium"]
    send(easing_band, vitals(T0 + timedelta(minutes=12), **LOWER_MEDIUM))
    assert order(clinician) == ["Ada Easing", "Ada Medium"]

    # 15 minutes of medium: the alert de-escalates (still open), and the patient now ranks
    # among the medium ones by NEWS2, below NEWS2 6.
    send(easing_band, vitals(T0 + timedelta(minutes=21), **LOWER_MEDIUM))
    send(medium_band, vitals(T0 + timedelta(minutes=21), **MEDIUM))
    alert = news2_alert(easing)
    assert alert.severity == 2 and alert.status == Alert.ACTIVE
    assert order(clinician) == ["Ada Medium", "Ada Easing"]


def test_a_fall_ranks_above_a_higher_news2_without_an_alert(clinician, worn, send):
    _fallen, fallen_band = worn("Fallen", "ORDER-6")
    _low, low_band = worn("Low", "ORDER-7")
    send(fallen_band, [*vitals(T0, **CALM), {"type": "fall", "time": vitals(T0)[0]["time"]}])
    send(low_band, vitals(T0, hr=105, rr=21))  # NEWS2 3 (1 + 2): low band, no alert
    assert row_of(clinician, "Ada Low")["alerts"]["count"] == 0
    assert row_of(clinician, "Ada Fallen")["alerts"]["worst_label"] == "high"
    assert order(clinician) == ["Ada Fallen", "Ada Low"]


def test_resolving_an_alert_reorders_the_ward_at_once(clinician, clinician_user, worn, send):
    recovering, recovering_band = worn("Recovering", "ORDER-8")
    _medium, medium_band = worn("Medium", "ORDER-9")
    send(recovering_band, vitals(T0, **HIGH))
    send(medium_band, vitals(T0, **MEDIUM))
    send(recovering_band, vitals(T0 + timedelta(minutes=5), **CALM))
    assert order(clinician) == ["Ada Recovering", "Ada Medium"]

    services.act_on_alert(
        news2_alert(recovering).pk, "resolve", clinician_user, comment="seen, recovered"
    )

    assert order(clinician) == ["Ada Medium", "Ada Recovering"]
