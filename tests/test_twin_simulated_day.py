"""A simulated day: each scripted episode raises its alert, calm patients raise none.

Readings go through the real ingest and the twin's refresh hour by hour of simulated time.
The number of alerts on calm patients (false alerts) is printed for the closing note.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from devices import services as devices
from devices.adapters import parse_payload
from devices.readings import parse_time
from devices.simulator import Episode, Simulator
from twins.models import Alert

DAY = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # a full day before "now"
EXPECTED = {
    1: ("sepsis", {"news2"}),
    2: ("hypoxia", {"news2"}),
    3: ("hypertensive_crisis", {"bp:crisis"}),
    4: ("fall", {"event:fall"}),
    5: ("fever", {"threshold:body_temperature", "news2"}),
}
CALM = (0, 6, 7)


@pytest.mark.slow
def test_episodes_raise_their_alert_and_calm_patients_none(
    db, django_capture_on_commit_callbacks, capsys
):
    from fhir_api import services as fhir

    episodes = [
        Episode(kind, index, DAY + timedelta(hours=9 + index), 6 if kind != "fall" else 0.25)
        for index, (kind, _e) in EXPECTED.items()
    ]
    names = [f"DAY-{i}" for i in range(8)]
    simulator = Simulator(names, seed=11, episodes=episodes)
    patient_of: dict[str, str] = {}
    registered = {}
    for name in names:
        patient = fhir.create(
            "Patient", {"resourceType": "Patient", "name": [{"family": name}]}
        ).resource.logical_id
        device = devices.register_device(name)
        devices.pair(device, patient, start=parse_time("2026-11-01T00:00:00Z"))
        patient_of[name], registered[name] = patient, device
    for hour in range(24):
        window = simulator.readings(DAY + timedelta(hours=hour), DAY + timedelta(hours=hour + 1))
        for name, readings in window.items():
            for start in range(0, len(readings), 40):  # batches as a phone would send them
                with django_capture_on_commit_callbacks(execute=True):
                    result = devices.ingest(
                        registered[name],
                        parse_payload({"readings": readings[start : start + 40]}),
                        source="http",
                    )
                assert not result.rejected, result.rejected
    raised = {
        name: set(
            Alert.objects.filter(patient_id=patient_of[name]).values_list("problem", flat=True)
        )
        for name in names
    }
    false_alerts = sum(len(raised[names[i]]) for i in CALM)
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    (settings.VAR_DIR / "simulated-day.txt").write_text(
        f"{dict((n, sorted(p)) for n, p in raised.items())}\nfalse alerts: {false_alerts}\n"
    )
    with capsys.disabled():
        print(
            f"\nsimulated day: alerts per patient {dict((n, sorted(p)) for n, p in raised.items())}; false alerts on calm patients: {false_alerts}"
        )
    for index, (kind, expected) in EXPECTED.items():
        assert raised[names[index]] & expected, f"{kind} raised {raised[names[index]]}"
    assert false_alerts == 0
