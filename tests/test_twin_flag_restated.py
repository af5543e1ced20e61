"""An open alert whose score changes within its severity (NEWS2 5 → 6, both medium) restates
its Flag, so that a FHIR client reads the current score; readings that move within one score
make no new Flag version."""

from __future__ import annotations

from datetime import timedelta

from twins.models import Alert

from .test_twin_supervision import T0, send, vitals, wearer  # noqa: F401


def flag_of(api, patient):
    flags = api.fhir("GET", f"/fhir/Flag?patient={patient}").json_body
    assert flags["total"] == 1
    return flags["entry"][0]["resource"]


def test_a_new_score_of_the_same_severity_restates_the_flag(api, wearer, send):  # noqa: F811
    patient, device = wearer
    send(device, vitals(T0))
    # NEWS2 5: RR 22 (2), SpO2 95 (1), HR 115 (2) → medium
    send(device, vitals(T0 + timedelta(minutes=5), hr=115, rr=22, spo2=95))
    first = flag_of(api, patient)
    assert "NEWS2 5" in first["code"]["text"]

    # Heart rate moves, the score stays 5: the same Flag version.
    send(device, vitals(T0 + timedelta(minutes=6), hr=117, rr=22, spo2=95))
    assert flag_of(api, patient)["meta"]["versionId"] == first["meta"]["versionId"]

    # SpO2 93 scores 2: NEWS2 6, still medium. The Flag says 6 in a new version.
    send(device, vitals(T0 + timedelta(minutes=7), hr=115, rr=22, spo2=93))
    alert = Alert.objects.get(problem="news2")
    assert alert.severity == 2 and alert.summary.startswith("NEWS2 6")
    now = flag_of(api, patient)
    assert now["id"] == first["id"] and now["meta"]["versionId"] != first["meta"]["versionId"]
    assert "NEWS2 6" in now["code"]["text"] and now["status"] == "active"
