"""NEWS2 at every band edge of every parameter, and the aggregate bands (RCP 2017 tables)."""

from __future__ import annotations

import pytest

from twins import news2


@pytest.mark.parametrize(
    ("rate", "points"),
    [(5, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (40, 3)],
)
def test_respiration_rate(rate, points):
    assert news2.respiration(rate) == points


@pytest.mark.parametrize(
    ("spo2", "points"), [(85, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
)
def test_spo2_scale_1(spo2, points):
    assert news2.spo2_scale1(spo2) == points


@pytest.mark.parametrize(
    ("spo2", "on_oxygen", "points"),
    [
        (80, False, 3),
        (83, True, 3),
        (84, False, 2),
        (85, True, 2),
        (86, False, 1),
        (87, True, 1),
        (88, False, 0),
        (92, True, 0),
        (93, False, 0),
        (99, False, 0),  # ≥93 on air scores 0
        (93, True, 1),
        (94, True, 1),
        (95, True, 2),
        (96, True, 2),
        (97, True, 3),
        (100, True, 3),
    ],
)
def test_spo2_scale_2(spo2, on_oxygen, points):
    assert news2.spo2_scale2(spo2, on_oxygen) == points


def test_air_or_oxygen():
    assert news2.air_or_oxygen(False) == 0
    assert news2.air_or_oxygen(True) == 2


@pytest.mark.parametrize(
    ("bp", "points"),
    [
        (70, 3),
        (90, 3),
        (91, 2),
        (100, 2),
        (101, 1),
        (110, 1),
        (111, 0),
        (219, 0),
        (220, 3),
        (260, 3),
    ],
)
def test_systolic(bp, points):
    assert news2.systolic(bp) == points


@pytest.mark.parametrize(
    ("hr", "points"),
    [
        (30, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
        (180, 3),
    ],
)
def test_pulse(hr, points):
    assert news2.pulse(hr) == points


@pytest.mark.parametrize(
    ("level", "points"),
    [("alert", 0), ("confusion", 3), ("voice", 3), ("pain", 3), ("unresponsive", 3)],
)
def test_consciousness(level, points):
    assert news2.consciousness(level) == points


@pytest.mark.parametrize(
    ("t", "points"),
    [
        (34.0, 3),
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (41.0, 2),
    ],
)
def test_temperature(t, points):
    assert news2.temperature(t) == points


CALM = dict(
    respiratory_rate=16,
    oxygen_saturation=97,
    systolic_bp=125,
    pulse_rate=72,
    temperature_c=36.8,
    on_oxygen=False,
    consciousness_level="alert",
)


@pytest.mark.parametrize(
    ("changes", "total", "band", "monitoring"),
    [
        ({}, 0, "low", "at least 12-hourly"),
        ({"pulse_rate": 95}, 1, "low", "at least 4-6 hourly"),
        (
            {"pulse_rate": 95, "respiratory_rate": 22, "oxygen_saturation": 95},
            4,
            "low",
            "at least 4-6 hourly",
        ),
        ({"respiratory_rate": 8}, 3, "low-medium", "at least hourly"),  # a single 3
        (
            {"pulse_rate": 115, "respiratory_rate": 22, "oxygen_saturation": 95},
            5,
            "medium",
            "at least hourly",
        ),
        (
            {
                "pulse_rate": 115,
                "respiratory_rate": 22,
                "oxygen_saturation": 94,
                "temperature_c": 38.5,
            },
            6,
            "medium",
            "at least hourly",
        ),
        (
            {"pulse_rate": 135, "respiratory_rate": 26, "systolic_bp": 88},
            9,
            "high",
            "continuous monitoring of vital signs",
        ),
        (
            {
                "pulse_rate": 115,
                "respiratory_rate": 22,
                "oxygen_saturation": 93,
                "temperature_c": 38.5,
            },
            7,
            "high",
            "continuous monitoring of vital signs",
        ),
    ],
)
def test_aggregate_bands(changes, total, band, monitoring):
    result = news2.score(**{**CALM, **changes})
    assert (result.total, result.band, result.monitoring) == (total, band, monitoring)
    assert not result.partial


def test_oxygen_adds_two_and_scale_2_is_used_only_when_set():
    on_o2 = news2.score(**{**CALM, "on_oxygen": True, "oxygen_saturation": 97})
    assert on_o2.total == 2
    scale2 = news2.score(**{**CALM, "on_oxygen": True, "oxygen_saturation": 97}, scale=2)
    assert scale2.components["oxygen_saturation"] == 3 and scale2.total == 5


def test_missing_and_assumed_inputs_make_a_partial_score_that_says_so():
    result = news2.score(
        respiratory_rate=None,
        oxygen_saturation=97,
        systolic_bp=None,
        pulse_rate=72,
        temperature_c=None,
    )
    assert result.partial
    assert result.missing == ["respiratory_rate", "systolic", "temperature"]
    assert result.assumed == ["supplemental_oxygen", "consciousness"]
    assert result.total == 0
