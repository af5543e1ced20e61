"""The wearable simulator: plausible, reproducible streams, and episodes that look like them."""

from __future__ import annotations

import io
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from devices.adapters.native import reading
from devices.readings import Rejected, check
from devices.simulator import Episode, Simulator
from fhir_api.models import Resource

DAY = datetime(2026, 11, 27, tzinfo=UTC)


def day_of(sim: Simulator, device: str, hours: int = 24) -> list[dict]:
    return sim.readings(DAY, DAY + timedelta(hours=hours)).get(device, [])


def values(items: list[dict], kind: str, key: str = "value") -> list[float]:
    return [r[key] for r in items if r["type"] == kind]


def test_same_seed_same_stream_and_every_reading_is_accepted():
    a = Simulator(["A", "B"], seed=7).readings(DAY, DAY + timedelta(hours=6))
    b = Simulator(["A", "B"], seed=7).readings(DAY, DAY + timedelta(hours=6))
    assert a == b
    assert a != Simulator(["A", "B"], seed=8).readings(DAY, DAY + timedelta(hours=6))
    for items in a.values():
        for item in items:
            try:
                check(reading(item), now=DAY + timedelta(days=1))
            except Rejected as exc:  # pragma: no cover - the assertion names the reading
                pytest.fail(f"{item}: {exc}")


def test_a_calm_day_has_a_circadian_rhythm_dropouts_and_nightly_charging():
    items = day_of(Simulator(["A"], seed=3), "A")
    hr = [(r["time"][11:13], r["value"]) for r in items if r["type"] == "heart_rate"]
    night = statistics.mean(v for h, v in hr if h in ("02", "03", "04"))
    afternoon = statistics.mean(v for h, v in hr if h in ("14", "15", "16"))
    assert afternoon > night + 5
    assert len(hr) < 24 * 60  # some minutes missing: the watch came off
    battery = {r["time"][11:13]: r["value"] for r in items if r["type"] == "battery"}
    assert battery["23"] == 100 and battery["20"] < 60


@pytest.mark.parametrize(
    ("kind", "check_fn"),
    [
        (
            "sepsis",
            lambda calm, ill: (
                ill["heart_rate"] > calm["heart_rate"] + 30 and ill["body_temperature"] > 38.5
            ),
        ),
        ("hypoxia", lambda calm, ill: ill["oxygen_saturation"] < 90),
        ("hypertensive_crisis", lambda calm, ill: ill["systolic"] > 180),
        ("fever", lambda calm, ill: ill["body_temperature"] > 38.3),
    ],
)
def test_episodes_bend_the_physiology(kind, check_fn):
    start = DAY + timedelta(hours=10)
    calm = Simulator(["A"], seed=5).readings(
        start + timedelta(hours=4), start + timedelta(hours=6)
    )["A"]
    ill = Simulator(["A"], seed=5, episodes=[Episode(kind, 0, start, 8)]).readings(
        start + timedelta(hours=4), start + timedelta(hours=6)
    )["A"]

    def summary(items):
        return {
            "heart_rate": statistics.mean(values(items, "heart_rate")),
            "oxygen_saturation": statistics.mean(values(items, "oxygen_saturation")),
            "body_temperature": statistics.mean(values(items, "body_temperature")),
            "systolic": statistics.mean(values(items, "blood_pressure", "systolic") or [0]),
        }

    assert check_fn(summary(calm), summary(ill))


def test_a_fall_is_reported_as_an_event():
    at = DAY + timedelta(hours=9, minutes=30)
    items = Simulator(["A"], seed=1, episodes=[Episode("fall", 0, at, 0.25)]).readings(
        DAY, DAY + timedelta(hours=12)
    )["A"]
    assert [r for r in items if r["type"] == "fall"] == [
        {"type": "fall", "time": "2026-11-27T09:30:00.000000Z"}
    ]


def test_the_command_streams_to_a_live_server_over_http(live):
    call_command(
        "simulate_wearables",
        "--patients",
        "2",
        "--rate",
        "20",
        "--duration",
        "3",
        "--url",
        live["url"],
        stderr=io.StringIO(),
    )
    assert Resource.objects.filter(resource_type="Observation").count() > 10
    assert Resource.objects.filter(resource_type="Patient").count() == 2
