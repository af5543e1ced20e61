"""A clinician's thresholds hand-edited into something other than a number ("abc", "120", a
list): the twin's rules, chart lines and patient page treat them as not set (the defaults
apply) instead of failing, and the forms that edit them refuse them with a message."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
from django.forms import modelform_factory

from twins import rules
from twins.models import Alert, PatientTwin
from twins.series import thresholds

# Fixtures are imported from the support module (pytest finds them here), and test arguments
# take their names: hence F401/F811 are off in this file.
# ruff: noqa: F401, F811
from .test_twin_rules import ctx, problems
from .twin_views_support import T0, clinician, clinician_user, roles, send, vitals, worn

HAND_EDITED = [
    {"heart_rate": {"high": "abc"}},
    {"heart_rate": {"high": "120"}},
    {"heart_rate": {"high": [120], "low": True}},
    {"heart_rate": "120"},
    {"heart_rate": {"high": float("nan")}},
    ["heart_rate", 120],
    "abc",
]


@pytest.mark.parametrize("overrides", HAND_EDITED, ids=repr)
def test_the_threshold_rule_takes_a_non_number_as_not_set(overrides):
    # 125/min: under the default high of 130, so no alert; 131: above it.
    assert problems(rules.threshold_rule(ctx({"heart_rate": 125}, thresholds=overrides))) == {}
    assert problems(rules.threshold_rule(ctx({"heart_rate": 131}, thresholds=overrides))) == {
        "threshold:heart_rate": 2
    }


def test_a_number_beside_a_non_number_still_counts():
    overrides = {"heart_rate": {"low": "abc", "high": 110}}
    assert problems(rules.threshold_rule(ctx({"heart_rate": 115}, thresholds=overrides))) == {
        "threshold:heart_rate": 2
    }
    assert problems(rules.threshold_rule(ctx({"heart_rate": 39}, thresholds=overrides))) == {
        "threshold:heart_rate": 2
    }


@pytest.fixture
def hand_edited(worn, send):
    """(patient, device): a patient whose twin holds thresholds that are not numbers."""
    patient, device = worn("Edited", "EDIT-1")
    send(device, vitals(T0))
    twin = PatientTwin.objects.get(patient_id=patient)
    twin.thresholds = {"heart_rate": {"high": "abc"}, "systolic": "120"}
    twin.save()
    return patient, device


def test_the_twin_refreshes_and_alerts_with_hand_edited_thresholds(hand_edited, send):
    patient, device = hand_edited
    # A reading above the default high of 130: the refresh does not fail on "abc".
    send(device, vitals(T0 + timedelta(minutes=5), hr=135))
    twin = PatientTwin.objects.get(patient_id=patient)
    assert twin.state["latest"]["heart_rate"]["value"] == 135
    # NEWS2 scores the heart rate (3 points) and folds the threshold into its alert.
    assert twin.news2["total"] >= 3
    assert Alert.objects.filter(patient_id=patient, problem="news2").exists()
    lines = {line["kind"]: line["value"] for line in thresholds(twin, "heart_rate")}
    assert lines == {"low": 40, "high": 130}


def test_the_patient_page_shows_and_says_so(hand_edited, clinician):
    patient, _device = hand_edited
    response = clinician.get(f"/twins/patient/{patient}/")
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "stored high 'abc' is not a number: the default applies" in html
    assert "stored '120' is not a number: the default applies" in html


def test_the_settings_form_refuses_a_threshold_that_is_not_a_number(hand_edited, clinician):
    patient, _device = hand_edited
    response = clinician.post(
        f"/twins/patient/{patient}/settings/",
        {"scale": "1", "heart_rate_high": "abc"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Heart rate high: the threshold must be a number." in unescape(response.content.decode())
    twin = PatientTwin.objects.get(patient_id=patient)
    assert twin.thresholds == {"heart_rate": {"high": "abc"}, "systolic": "120"}  # unchanged

    # A number replaces the hand-edited values.
    response = clinician.post(
        f"/twins/patient/{patient}/settings/", {"scale": "1", "heart_rate_high": "120"}
    )
    assert response.status_code == 302
    assert PatientTwin.objects.get(patient_id=patient).thresholds == {"heart_rate": {"high": 120.0}}


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"heart_rate": {"high": "abc"}}', "heart_rate high: 'abc' is not a number."),
        ('{"heart_rate": {"high": "120"}}', "heart_rate high: '120' is not a number."),
        ('{"heart_rate": 120}', 'heart_rate: give {"low": number, "high": number}, not 120.'),
        ('{"pulse": {"high": 120}}', "'pulse' is not a vital with thresholds."),
        ('["heart_rate"]', "Thresholds are an object"),
    ],
)
def test_a_model_form_over_the_twin_refuses_them_with_a_message(db, text, message):
    form_class = modelform_factory(PatientTwin, fields=["patient_id", "thresholds"])
    form = form_class(data={"patient_id": "p-form", "thresholds": text})
    assert not form.is_valid()
    assert any(message in error for error in form.errors["thresholds"])
    good = form_class(data={"patient_id": "p-form", "thresholds": '{"heart_rate": {"high": 120}}'})
    assert good.is_valid(), good.errors
