"""The clinicians' views: staff only, roles enforced, the ward overview (page and JSON), the
patient twin page, its chart series, alert triage recorded as FHIR Provenance, diagnosis
written as searchable FHIR resources, per-patient settings that re-score NEWS2."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Group

from twins import series, services
from twins.models import Alert, LifecycleEvent, PatientTwin, VitalHour
from twins.roles import CLINICIAN, NURSE, ROLE_PERMISSIONS

# Fixtures are imported from the support module (pytest finds them here), and test arguments
# take their names: hence F401/F811 are off in this file.
# ruff: noqa: F401, F811
from .twin_views_support import (
    T0,
    clinician,
    clinician_user,
    make_patient,
    nurse,
    nurse_user,
    roles,
    send,
    vitals,
    worn,
)

WARD, WARD_JSON = "/twins/ward/", "/twins/ward.json"


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return unescape(response.content.decode())


@pytest.fixture
def ward_patients(worn, send):
    """A calm patient, a deteriorating one (NEWS2 5, an open alert) and a discharged one."""
    calm, calm_device = worn("Calm", "VIEW-1")
    ill, ill_device = worn("Ill", "VIEW-2", given="Bea")
    gone, gone_device = worn("Gone", "VIEW-3")
    send(
        calm_device,
        [
            *vitals(T0),
            {"type": "battery", "value": 80, "unit": "%", "time": "2026-11-27T08:00:00Z"},
        ],
    )
    send(ill_device, vitals(T0))
    send(ill_device, vitals(T0 + timedelta(minutes=5), hr=115, rr=22, spo2=95))
    send(gone_device, vitals(T0))
    services.change_stage(gone, "discharged", by="tests", why="home")
    return {"calm": calm, "ill": ill, "gone": gone}


@pytest.fixture
def alert(ward_patients) -> Alert:
    return Alert.objects.get(patient_id=ward_patients["ill"], problem="news2")


# --- access -------------------------------------------------------------------------------


def _urls(patient_id: str, alert_id: int) -> list[tuple[str, str]]:
    base = f"/twins/patient/{patient_id}/"
    return [
        ("get", WARD),
        ("get", WARD_JSON),
        ("get", base),
        ("get", base + "series.json?vital=heart_rate&range=24h"),
        ("post", base + "settings/"),
        ("post", base + "stage/"),
        ("post", base + "impression/"),
        ("post", base + "condition/"),
        ("post", f"/twins/alert/{alert_id}/act/"),
    ]


def test_anonymous_and_non_staff_users_are_sent_to_the_login(client, django_user_model, alert):
    for method, url in _urls(alert.patient_id, alert.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next=/twins/"), url
    outsider = django_user_model.objects.create_user("outsider", password="x", is_staff=False)
    client.force_login(outsider)
    assert client.get(WARD).status_code == 302


def test_staff_without_a_role_are_refused(client, django_user_model, alert):
    someone = django_user_model.objects.create_user("temp", password="x", is_staff=True)
    client.force_login(someone)
    for method, url in _urls(alert.patient_id, alert.pk):
        assert getattr(client, method)(url).status_code == 403, url


def test_the_roles_are_groups_with_their_permissions():
    nurse_perms = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=NURSE).permissions.select_related("content_type")
    }
    clinician_perms = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=CLINICIAN).permissions.select_related("content_type")
    }
    assert nurse_perms == set(ROLE_PERMISSIONS[NURSE])
    assert clinician_perms == set(ROLE_PERMISSIONS[CLINICIAN])
    assert "twins.change_patienttwin" not in nurse_perms
    assert {"twins.change_patienttwin", "twins.record_diagnosis"} <= clinician_perms
    assert Group.objects.get(name="admin").permissions.count() >= len(clinician_perms)


def test_a_nurse_triages_but_cannot_change_settings_diagnose_or_resolve(nurse, alert):
    base = f"/twins/patient/{alert.patient_id}/"
    assert nurse.post(base + "settings/", {"scale": 2}).status_code == 403
    assert nurse.post(base + "stage/", {"stage": "acute", "reason": "x"}).status_code == 403
    assert nurse.post(base + "impression/", {"summary": "x"}).status_code == 403
    assert (
        nurse.post(base + "condition/", {"text": "x", "verification": "confirmed"}).status_code
        == 403
    )
    act = f"/twins/alert/{alert.pk}/act/"
    assert nurse.post(act, {"action": "resolve", "comment": "fine"}).status_code == 403
    assert nurse.post(act, {"action": "escalate"}).status_code == 403
    assert nurse.post(act, {"action": "acknowledge"}).status_code == 302
    alert.refresh_from_db()
    assert alert.status == Alert.ACKNOWLEDGED
    twin = PatientTwin.objects.get(patient_id=alert.patient_id)
    assert twin.news2_scale == 1
    # The page offers a nurse only what she may do.
    html = page(nurse.get(base))
    assert "Record impression" not in html and "Save settings" not in html
    assert 'value="resolve"' not in html and 'value="comment"' in html


# --- ward overview ------------------------------------------------------------------------


def test_ward_json_lists_monitored_patients_most_at_risk_first(clinician, ward_patients):
    data = clinician.get(WARD_JSON).json()
    ids = [row["patient_id"] for row in data["patients"]]
    assert ids == [ward_patients["ill"], ward_patients["calm"]]  # the discharged one is gone
    ill, calm = data["patients"]
    assert ill["name"] == "Bea Ill" and ill["age"] is not None
    assert ill["news2"]["total"] == 5 and ill["news2"]["colour"] == "orange"
    assert ill["news2"]["partial"] is True
    assert ill["alerts"]["count"] == 1 and ill["alerts"]["worst_label"] == "medium"
    assert "NEWS2 5" in ill["alerts"]["summary"]
    assert ill["alerts"]["items"][0]["flag"].startswith("Flag/")
    assert ill["last_reading"].startswith("2026-11-27T08:05:00")
    assert ill["last_reading_age"].endswith("ago")
    assert calm["news2"]["total"] == 0 and calm["news2"]["colour"] == "green"
    assert calm["alerts"]["count"] == 0
    assert calm["devices"][0]["identifier"] == "VIEW-1" and calm["devices"][0]["battery"] == 80
    assert calm["devices"][0]["silent"] is True  # nothing heard from it since 2026-11-27 08:00
    assert ill["url"] == f"/twins/patient/{ward_patients['ill']}/"
    # The table body the page swaps in, rendered from the same rows.
    assert data["html"].index("Bea Ill") < data["html"].index("Ada Calm")
    assert "news2-orange" in data["html"] and "Gone" not in data["html"]


def test_ward_json_follows_a_new_alert_at_once(clinician, ward_patients, send, worn):
    before = clinician.get(WARD_JSON).json()["patients"]
    assert before[-1]["patient_id"] == ward_patients["calm"]
    patient, device = worn("Newly", "VIEW-4")
    send(device, vitals(T0))
    send(device, vitals(T0 + timedelta(minutes=3), hr=140, rr=28, spo2=90, sbp=88))
    rows = clinician.get(WARD_JSON).json()["patients"]
    assert rows[0]["patient_id"] == patient
    assert rows[0]["news2"]["colour"] == "red" and rows[0]["alerts"]["worst_label"] == "high"


def test_ward_page_shows_the_table_and_polls_the_json(clinician, ward_patients):
    html = page(clinician.get(WARD))
    assert "Ward overview" in html and "Bea Ill" in html and "Ada Calm" in html
    assert 'data-url="/twins/ward.json"' in html and "twins/ward.js" in html
    assert 'class="news2 news2-orange"' in html and "partial" in html
    assert "Acknowledge" in html  # the open alert can be acknowledged from the ward
    assert "admin/css/base.css" in html  # inside the admin's look


def test_the_admin_index_links_to_the_ward(clinician):
    html = page(clinician.get("/admin/"))
    assert 'href="/twins/ward/"' in html


def test_static_files_are_served_with_debug_off(client, settings):
    assert settings.DEBUG is False
    response = client.get("/static/vendor/chartjs/chart.umd.js")
    assert response.status_code == 200
    assert b"Chart.js v4" in b"".join(response.streaming_content)[:200]
    assert client.get("/static/twins/ward.js").status_code == 200


# --- patient twin page --------------------------------------------------------------------


def test_patient_page_shows_header_vitals_alerts_charts_and_timeline(clinician, ward_patients, api):
    ill = ward_patients["ill"]
    api.fhir(
        "POST",
        "/fhir/Condition",
        {
            "resourceType": "Condition",
            "code": {"text": "Heart failure"},
            "subject": {"reference": f"Patient/{ill}"},
            "onsetDateTime": "2019-03-01",
        },
    )
    html = page(clinician.get(f"/twins/patient/{ill}/"))
    assert "Bea Ill" in html and "monitored" in html and "VIEW-2" in html
    assert "Heart rate" in html and "<strong>115</strong> /min" in html
    assert "NEWS2 5 (partial)" in html and 'value="acknowledge"' in html
    assert 'data-vital="news2"' in html and 'data-vital="heart_rate"' in html
    assert "vendor/chartjs/chart.umd.js" in html
    assert "Condition: Heart failure" in html
    assert "Device paired: VIEW-2" in html and "Stage: monitored" in html
    assert "Alert (medium)" in html
    assert "Record impression" in html and "Save settings" in html


def test_an_unknown_patient_is_404(clinician, db):
    assert clinician.get("/twins/patient/nobody/").status_code == 404
    assert clinician.get("/twins/patient/nobody/series.json").status_code == 404


# --- chart series -------------------------------------------------------------------------


@pytest.fixture
def an_hour_after_t0(monkeypatch):
    """The charts are looked at an hour after T0. A chart's window ends at the wall clock
    (``series.window``), and these tests' readings are at fixed times: without this they
    fell out of the 24-hour window a day after T0."""
    window = series.window
    moment = T0 + timedelta(hours=1)
    monkeypatch.setattr(
        series, "window", lambda twin, key, now=None: window(twin, key, now or moment)
    )


def test_series_24h_comes_from_the_observations(clinician, worn, send, an_hour_after_t0):
    patient, device = worn("Series", "VIEW-S")
    for minute, hr in enumerate([70, 74, 78]):
        send(
            device,
            [
                {
                    "type": "heart_rate",
                    "value": hr,
                    "unit": "/min",
                    "time": f"2026-11-27T08:0{minute}:00Z",
                }
            ],
        )
    twin = PatientTwin.objects.get(patient_id=patient)
    twin.state["baseline"] = {"heart_rate": {"median": 72.0, "mad": 3.0, "hours": 48, "at": "x"}}
    twin.thresholds = {"heart_rate": {"high": 110}}
    twin.save()
    data = clinician.get(f"/twins/patient/{patient}/series.json?vital=heart_rate&range=24h").json()
    assert data["source"] == "observations" and data["unit"] == "/min"
    assert [p[1] for p in data["points"]] == [70, 74, 78]
    assert data["points"][0][0] == 1795766400000  # 2026-11-27T08:00:00Z in epoch ms
    assert data["end"] - data["start"] == 24 * 3600 * 1000
    assert {(line["kind"], line["value"]) for line in data["lines"]} == {("low", 40), ("high", 110)}
    assert data["baseline"]["median"] == 72.0
    assert data["baseline"]["low"] == pytest.approx(72 - 2 * 1.4826 * 3, abs=0.01)


def test_series_of_blood_pressure_reads_the_panel(clinician, worn, send, an_hour_after_t0):
    patient, device = worn("Pressure", "VIEW-BP")
    send(device, vitals(T0, sbp=141, dbp=91))
    url = f"/twins/patient/{patient}/series.json?range=24h&vital="
    assert [p[1] for p in clinician.get(url + "systolic").json()["points"]] == [141]
    assert [p[1] for p in clinician.get(url + "diastolic").json()["points"]] == [91]


def test_series_7d_and_30d_come_from_the_hourly_aggregates(clinician, worn, send, an_hour_after_t0):
    patient, device = worn("Hourly", "VIEW-H")
    send(device, vitals(T0))
    VitalHour.objects.create(
        patient_id=patient,
        vital="heart_rate",
        hour=T0 - timedelta(days=3),
        n=2,
        total=150,
        low=70,
        high=80,
    )
    VitalHour.objects.create(
        patient_id=patient,
        vital="heart_rate",
        hour=T0 - timedelta(days=20),
        n=1,
        total=60,
        low=60,
        high=60,
    )
    week = clinician.get(f"/twins/patient/{patient}/series.json?vital=heart_rate&range=7d").json()
    assert week["source"] == "hourly"
    assert [p[1] for p in week["points"]] == [75.0, 72.0]
    assert week["spread"][0][1:] == [70, 80]
    month = clinician.get(f"/twins/patient/{patient}/series.json?vital=heart_rate&range=30d").json()
    assert [p[1] for p in month["points"]] == [60.0, 75.0, 72.0]


def test_series_of_news2_comes_from_the_score_observations(
    clinician, ward_patients, an_hour_after_t0
):
    data = clinician.get(
        f"/twins/patient/{ward_patients['ill']}/series.json?vital=news2&range=24h"
    ).json()
    assert [p[1] for p in data["points"]] == [0, 5]
    assert all(p[2] for p in data["points"])  # partial: oxygen and consciousness assumed
    assert [line["value"] for line in data["lines"]] == [5, 7]


def test_series_refuses_an_unknown_vital_or_range(clinician, ward_patients):
    base = f"/twins/patient/{ward_patients['ill']}/series.json"
    assert clinician.get(base + "?vital=mood").status_code == 400
    assert clinician.get(base + "?vital=heart_rate&range=1y").status_code == 400


# --- triage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "check"),
    [
        ({"action": "acknowledge"}, lambda a: a.status == Alert.ACKNOWLEDGED),
        ({"action": "assign", "assignee": "nurse.joy"}, lambda a: a.assigned_to == "nurse.joy"),
        ({"action": "escalate"}, lambda a: a.severity == 3 and a.status == Alert.ACTIVE),
        (
            {"action": "resolve", "comment": "Sepsis ruled out"},
            lambda a: a.status == Alert.RESOLVED,
        ),
        ({"action": "comment", "comment": "Family informed"}, lambda a: a.status == Alert.ACTIVE),
    ],
)
def test_each_triage_action_changes_the_alert_and_is_recorded_as_provenance(
    clinician, clinician_user, nurse_user, alert, api, form, check
):
    response = clinician.post(f"/twins/alert/{alert.pk}/act/", {**form, "next": WARD})
    assert response.status_code == 302 and response["Location"] == WARD
    alert.refresh_from_db()
    assert check(alert)
    action = alert.actions.get()
    assert action.action == form["action"] and action.by == clinician_user
    found = api.fhir("GET", f"/fhir/Provenance?target=Flag/{alert.flag_id}").json_body
    assert found["total"] == 1
    provenance = found["entry"][0]["resource"]
    assert provenance["activity"]["coding"][0]["code"] == form["action"]
    assert provenance["recorded"]
    who = provenance["agent"][0]["who"]["reference"]
    practitioner = api.fhir("GET", f"/fhir/{who}").json_body
    assert practitioner["identifier"][0]["value"] == "dr.grey"
    if form.get("comment") or form.get("assignee"):
        assert provenance["reason"][0]["text"] == form.get("comment") or form.get("assignee")


def test_resolving_needs_a_comment(clinician, alert):
    response = clinician.post(f"/twins/alert/{alert.pk}/act/", {"action": "resolve"}, follow=True)
    alert.refresh_from_db()
    assert alert.status == Alert.ACTIVE
    assert "Say why the alert is resolved" in page(response)


def test_acting_on_a_resolved_alert_says_so(clinician, alert):
    clinician.post(f"/twins/alert/{alert.pk}/act/", {"action": "resolve", "comment": "ok"})
    response = clinician.post(
        f"/twins/alert/{alert.pk}/act/", {"action": "acknowledge"}, follow=True
    )
    assert "The alert is resolved" in page(response)


# --- diagnosis, settings, stage -----------------------------------------------------------


def test_a_clinical_impression_is_written_and_searchable_by_patient(clinician, ward_patients, api):
    ill = ward_patients["ill"]
    response = clinician.post(
        f"/twins/patient/{ill}/impression/",
        {"summary": "Early sepsis likely", "finding": "Sepsis", "finding_code": "91302008"},
    )
    assert response.status_code == 302
    found = api.fhir("GET", f"/fhir/ClinicalImpression?patient={ill}").json_body
    assert found["total"] == 1
    impression = found["entry"][0]["resource"]
    assert impression["status"] == "completed" and impression["summary"] == "Early sepsis likely"
    assert impression["finding"][0]["itemCodeableConcept"]["coding"][0]["code"] == "91302008"
    assert impression["assessor"]["reference"].startswith("Practitioner/")
    assert "Clinical assessment" in page(clinician.get(f"/twins/patient/{ill}/"))


def test_a_condition_is_written_and_searchable_by_patient_and_code(clinician, ward_patients, api):
    ill = ward_patients["ill"]
    response = clinician.post(
        f"/twins/patient/{ill}/condition/",
        {
            "text": "Pneumonia",
            "code": "233604007",
            "verification": "provisional",
            "onset": "2026-11-26",
        },
    )
    assert response.status_code == 302
    found = api.fhir(
        "GET", f"/fhir/Condition?patient={ill}&code=http://snomed.info/sct|233604007"
    ).json_body
    assert found["total"] == 1
    condition = found["entry"][0]["resource"]
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
    assert condition["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert condition["onsetDateTime"] == "2026-11-26"
    assert condition["recorder"]["reference"].startswith("Practitioner/")


def test_a_condition_needs_a_name_or_code(clinician, ward_patients, api):
    ill = ward_patients["ill"]
    response = clinician.post(
        f"/twins/patient/{ill}/condition/", {"verification": "confirmed"}, follow=True
    )
    assert "Name the condition" in page(response)
    assert api.fhir("GET", f"/fhir/Condition?patient={ill}").json_body["total"] == 0


def test_changing_the_settings_scores_news2_again(clinician, ward_patients):
    ill = ward_patients["ill"]
    twin = PatientTwin.objects.get(patient_id=ill)
    assert twin.news2["total"] == 5 and twin.news2["assumed"]
    response = clinician.post(
        f"/twins/patient/{ill}/settings/",
        {"scale": "1", "oxygen": "oxygen", "consciousness": "alert", "heart_rate_high": "100"},
    )
    assert response.status_code == 302
    twin.refresh_from_db()
    assert twin.on_oxygen is True and twin.consciousness == "alert"
    assert twin.thresholds == {"heart_rate": {"high": 100.0}}
    assert twin.news2["total"] == 7 and twin.news2["colour"] == "red"  # + 2 for oxygen
    assert twin.news2["assumed"] == []
    assert Alert.objects.get(patient_id=ill, problem="news2").severity == 3


def test_settings_refuse_a_low_threshold_above_the_high(clinician, ward_patients):
    ill = ward_patients["ill"]
    response = clinician.post(
        f"/twins/patient/{ill}/settings/", {"scale": "1", "heart_rate_low": "150"}, follow=True
    )
    assert "must be below the high one" in page(response)
    assert PatientTwin.objects.get(patient_id=ill).thresholds == {}


def test_changing_the_stage_records_who_and_why(clinician, ward_patients):
    ill = ward_patients["ill"]
    response = clinician.post(
        f"/twins/patient/{ill}/stage/", {"stage": "hospitalised", "reason": "Admitted via A&E"}
    )
    assert response.status_code == 302
    assert PatientTwin.objects.get(patient_id=ill).stage == "hospitalised"
    event = LifecycleEvent.objects.filter(patient_id=ill).latest("at")
    assert (event.to_stage, event.by, event.why) == ("hospitalised", "dr.grey", "Admitted via A&E")
    assert event.fhir_reference.startswith("Encounter/")
    assert "Stage: hospitalised" in page(clinician.get(f"/twins/patient/{ill}/"))


# --- admin --------------------------------------------------------------------------------


def test_the_admin_lists_twins_alerts_and_lifecycle_events_read_only(admin_client, alert):
    assert "Bea Ill" not in page(admin_client.get("/admin/twins/patienttwin/"))  # ids, linked
    assert f"/twins/patient/{alert.patient_id}/" in page(
        admin_client.get("/admin/twins/patienttwin/")
    )
    html = page(admin_client.get(f"/admin/twins/alert/{alert.pk}/change/"))
    assert (
        "NEWS2 5" in html
        and "Save" not in html.split('id="content-main"')[1].split("</form>")[0][-400:]
    )
    assert page(admin_client.get("/admin/twins/lifecycleevent/"))
    assert admin_client.get("/admin/twins/alert/add/").status_code == 403


def test_the_hourly_spread_keeps_the_lowest_and_highest_of_the_hour(
    clinician, worn, send, an_hour_after_t0
):
    patient, device = worn("Spread", "VIEW-SP")
    for minute, hr in ((1, 80), (2, 64), (3, 97), (4, 75)):  # one reading per batch, as over HTTP
        send(
            device,
            [
                {
                    "type": "heart_rate",
                    "value": hr,
                    "unit": "/min",
                    "time": f"2026-11-27T08:0{minute}:00Z",
                }
            ],
        )
    hour = VitalHour.objects.get(patient_id=patient, vital="heart_rate")
    assert (hour.n, hour.low, hour.high) == (4, 64, 97)
    week = clinician.get(f"/twins/patient/{patient}/series.json?vital=heart_rate&range=7d").json()
    assert week["points"][0][1] == 79.0 and week["spread"][0][1:] == [64, 97]
