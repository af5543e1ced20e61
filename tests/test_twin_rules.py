"""Each diagnosis rule on its own: what it raises, when, and how severe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_api.search.dates import format_instant
from twins import rules

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def ctx(latest: dict[str, float], **kw) -> rules.Context:
    state = {
        "latest": {
            v: {
                "value": x,
                "time": format_instant(NOW - timedelta(minutes=1)),
                "observation": f"obs-{v}",
            }
            for v, x in latest.items()
        }
    }
    state.update(kw.pop("state", {}))
    return rules.Context(state=state, now=NOW, **kw)


def problems(findings) -> dict[str, int]:
    return {f.problem: f.severity for f in findings}


def test_registry_declares_inputs_output_and_coding():
    assert {
        "news2",
        "threshold",
        "baseline",
        "trend",
        "bp_category",
        "qsofa",
        "device_event",
        "device_state",
    } <= set(rules.REGISTRY)
    for rule in rules.REGISTRY.values():
        assert rule.inputs and rule.output and len(rule.coding) == 3


def test_thresholds_with_defaults_and_per_patient_overrides():
    assert problems(rules.threshold_rule(ctx({"heart_rate": 125}))) == {}
    assert problems(rules.threshold_rule(ctx({"heart_rate": 131}))) == {"threshold:heart_rate": 2}
    assert problems(
        rules.threshold_rule(ctx({"heart_rate": 125}, thresholds={"heart_rate": {"high": 120}}))
    ) == {"threshold:heart_rate": 2}
    assert problems(rules.threshold_rule(ctx({"oxygen_saturation": 89}))) == {
        "threshold:oxygen_saturation": 2
    }


def test_stale_values_do_not_count():
    stale = ctx({})
    stale.state["latest"]["heart_rate"] = {
        "value": 150,
        "time": format_instant(NOW - timedelta(hours=3)),
        "observation": "o",
    }
    assert rules.threshold_rule(stale) == []
    assert rules.compute_news2(stale).missing[:1] == ["respiratory_rate"]


def test_baseline_deviation_needs_a_baseline_and_a_real_distance():
    base = {"baseline": {"heart_rate": {"median": 62, "mad": 3, "hours": 200}}}
    assert rules.baseline_rule(ctx({"heart_rate": 75}, state=base)) == []  # 13 from usual: noise
    found = rules.baseline_rule(ctx({"heart_rate": 95}, state=base))
    assert problems(found) == {"baseline:heart_rate": 1} and "usual 62" in found[0].summary
    assert rules.baseline_rule(ctx({"heart_rate": 95})) == []  # no baseline yet


def test_sustained_trend_over_six_hours():
    rising = [82, 86, 90, 93, 96, 99]
    c = ctx({"heart_rate": 99}, hourly=lambda vital, hours: rising if vital == "heart_rate" else [])
    assert problems(rules.trend_rule(c)) == {"trend:heart_rate": 1}
    morning = [60, 64, 67, 70, 74, 78]  # the daily rhythm: rising, but to a normal rate
    c = ctx(
        {"heart_rate": 78}, hourly=lambda vital, hours: morning if vital == "heart_rate" else []
    )
    assert rules.trend_rule(c) == []
    wobbly = [80, 90, 86, 96, 99, 101]  # an active afternoon: up and down
    c = ctx(
        {"heart_rate": 101}, hourly=lambda vital, hours: wobbly if vital == "heart_rate" else []
    )
    assert rules.trend_rule(c) == []


@pytest.mark.parametrize(
    ("sbp", "dbp", "category"),
    [
        (115, 75, "normal"),
        (119, 79, "normal"),
        (120, 79, "elevated"),
        (129, 79, "elevated"),
        (130, 79, "stage 1"),
        (125, 80, "stage 1"),
        (139, 89, "stage 1"),
        (140, 70, "stage 2"),
        (120, 90, "stage 2"),
        (180, 110, "stage 2"),
        (181, 100, "hypertensive crisis"),
        (150, 121, "hypertensive crisis"),
    ],
)
def test_blood_pressure_category_acc_aha_2017(sbp, dbp, category):
    assert rules.bp_category(sbp, dbp) == category


def test_hypertensive_crisis_alerts_high():
    assert problems(rules.bp_rule(ctx({"systolic": 190, "diastolic": 100}))) == {"bp:crisis": 3}
    assert rules.bp_rule(ctx({"systolic": 150, "diastolic": 95})) == []


def test_qsofa_two_points_is_positive():
    assert problems(rules.qsofa_rule(ctx({"systolic": 98, "respiratory_rate": 23}))) == {"qsofa": 2}
    assert rules.qsofa_rule(ctx({"systolic": 98, "respiratory_rate": 18})) == []
    assert problems(
        rules.qsofa_rule(ctx({"systolic": 98, "respiratory_rate": 18}, consciousness="confusion"))
    ) == {"qsofa": 2}


def test_device_events_alert_at_once_and_age_out():
    recent = {
        "events": {
            "fall": {"time": format_instant(NOW - timedelta(minutes=2)), "observation": "f1"}
        }
    }
    assert problems(rules.event_rule(ctx({}, state=recent))) == {"event:fall": 3}
    old = {
        "events": {"fall": {"time": format_instant(NOW - timedelta(hours=2)), "observation": "f1"}}
    }
    assert rules.event_rule(ctx({}, state=old)) == []


def test_silent_or_draining_devices_are_flagged_before_they_fail():
    devices = {
        "devices": {
            "d1": {"last_seen": format_instant(NOW - timedelta(minutes=45)), "battery": 60},
            "d2": {"last_seen": format_instant(NOW), "battery": 40, "drain_per_hour": 20},
        }
    }
    assert problems(rules.device_rule(ctx({}, state=devices))) == {
        "device:silent:d1": 1,
        "device:battery:d2": 1,
    }


def test_news2_folds_the_thresholds_it_already_scores_into_one_alert():
    findings = rules.evaluate(
        ctx(
            {
                "heart_rate": 135,
                "respiratory_rate": 26,
                "oxygen_saturation": 95,
                "systolic": 95,
                "diastolic": 60,
                "body_temperature": 37,
            }
        )
    )
    assert problems(findings) == {"news2": 3}
    assert "Heart rate 135" in findings[0].summary and "qSOFA" in findings[0].summary


def test_a_deviation_from_baseline_during_a_news2_alert_is_part_of_it():
    base = {"baseline": {"heart_rate": {"median": 62, "mad": 3, "hours": 200}}}
    findings = rules.evaluate(
        ctx(
            {
                "heart_rate": 125,
                "respiratory_rate": 26,
                "oxygen_saturation": 95,
                "systolic": 120,
                "diastolic": 80,
                "body_temperature": 37,
            },
            state=base,
        )
    )
    assert set(problems(findings)) == {"news2"}
    assert "usual 62" in findings[0].summary
