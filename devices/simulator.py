"""Simulated wearables: realistic vital-sign streams for demos, tests and benchmarks.

Each simulated patient has personal baselines (drawn from the seed), a circadian rhythm (lower
heart rate, blood pressure and temperature at night), sleep and daytime activity (heart rate
and steps up), sensor noise, dropouts (a device off the wrist for a while) and battery drain
with nightly charging. Scripted episodes bend the physiology over time the way the conditions
do: sepsis-like deterioration over hours, hypoxia, a hypertensive crisis, a fall, fever.

The simulator is a pure function of (seed, patients, episodes, time): ``readings(t0, t1)``
gives the readings each device takes in that interval, in the native HTTP format, so the same
seed gives the same stream whichever transport carries it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_api.search.dates import format_instant

# How often each reading is taken, in seconds.
INTERVALS = {
    "heart_rate": 60,
    "oxygen_saturation": 60,
    "respiratory_rate": 300,
    "body_temperature": 1800,
    "blood_pressure": 7200,
    "steps": 3600,
    "hrv_sdnn": 3600,
    "body_weight": 86400,
    "blood_glucose": 21600,
    "battery": 3600,
}
EPISODES = ("sepsis", "hypoxia", "hypertensive_crisis", "fall", "fever")


@dataclass
class Episode:
    """A scripted condition for one patient from ``start`` for ``hours``."""

    kind: str
    patient: int  # index of the simulated patient
    start: datetime
    hours: float = 6.0

    def level(self, t: datetime) -> float:
        """0 before and after; rising from 0 to 1 over the first third, then held."""
        elapsed = (t - self.start).total_seconds() / 3600
        if elapsed < 0 or elapsed > self.hours:
            return 0.0
        return min(1.0, elapsed / max(self.hours / 3, 0.25))


@dataclass
class Person:
    index: int
    device: str
    hr: float
    rr: float
    spo2: float
    temp: float
    sbp: float
    dbp: float
    weight: float
    glucose: float
    hrv: float
    rng: random.Random
    dropout_until: datetime | None = None
    episodes: list[Episode] = field(default_factory=list)


def parse_episode(text: str, now: datetime) -> Episode:
    """``sepsis:2:+1h:8`` → sepsis for patient 2, starting in 1 h, lasting 8 h."""
    parts = text.split(":")
    if len(parts) < 3 or parts[0] not in EPISODES:
        raise ValueError(
            f"episode '{text}': use kind:patient:+start[:hours], kind one of {', '.join(EPISODES)}"
        )
    offset = parts[2].lstrip("+")
    unit = offset[-1]
    amount = float(offset[:-1]) if unit in "hm" else float(offset)
    delta = (
        timedelta(hours=amount)
        if unit == "h"
        else timedelta(minutes=amount)
        if unit == "m"
        else timedelta(hours=amount)
    )
    hours = float(parts[3]) if len(parts) > 3 else (0.25 if parts[0] == "fall" else 6.0)
    return Episode(parts[0], int(parts[1]), now + delta, hours)


class Simulator:
    def __init__(
        self,
        devices: list[str],
        *,
        seed: int = 1,
        episodes: list[Episode] | None = None,
        dropouts: bool = True,
    ):
        master = random.Random(seed)
        self.dropouts = dropouts
        self.people = []
        for index, device in enumerate(devices):
            rng = random.Random(master.getrandbits(64))
            sbp = rng.uniform(115, 145)
            self.people.append(
                Person(
                    index=index,
                    device=device,
                    hr=rng.uniform(60, 82),
                    rr=rng.uniform(13, 17),
                    spo2=rng.uniform(95, 98.5),
                    temp=rng.uniform(36.4, 37.0),
                    sbp=sbp,
                    dbp=sbp * rng.uniform(0.55, 0.65),
                    weight=rng.uniform(55, 95),
                    glucose=rng.uniform(85, 130),
                    hrv=rng.uniform(20, 50),
                    rng=rng,
                )
            )
        for episode in episodes or []:
            if 0 <= episode.patient < len(self.people):
                self.people[episode.patient].episodes.append(episode)

    # --- physiology ----------------------------------------------------------------------

    @staticmethod
    def _circadian(t: datetime) -> tuple[float, bool]:
        """(-1 at 04:00 … +1 at 16:00, asleep?)"""
        hour = t.hour + t.minute / 60
        return math.sin((hour - 10) / 24 * 2 * math.pi), hour >= 23 or hour < 7

    def _active(self, p: Person, t: datetime, asleep: bool) -> float:
        if asleep:
            return 0.0
        # Deterministic activity bursts: a few per day, from the patient's own random stream.
        slot = int(t.timestamp() // 900)
        return 1.0 if random.Random(p.index * 1_000_003 + slot).random() < 0.15 else 0.0

    def vitals(self, p: Person, t: datetime) -> dict[str, float]:
        c, asleep = self._circadian(t)
        active = self._active(p, t, asleep)
        n = p.rng.gauss
        v = {
            "hr": p.hr + 6 * c - (6 if asleep else 0) + 25 * active + n(0, 2),
            "rr": p.rr + 0.8 * c + 3 * active + n(0, 0.7),
            "spo2": p.spo2 + n(0, 0.6) - (0.5 if asleep else 0),
            "temp": p.temp + 0.3 * c + n(0, 0.08),
            "sbp": p.sbp + 8 * c - (10 if asleep else 0) + 10 * active + n(0, 4),
            "dbp": p.dbp + 5 * c - (6 if asleep else 0) + 5 * active + n(0, 3),
            "glucose": p.glucose + n(0, 8),
            "hrv": max(5, p.hrv - 8 * active + n(0, 4)),
            "steps": (900 * active + (0 if asleep else p.rng.uniform(50, 300))),
        }
        for e in p.episodes:
            x = e.level(t)
            if x <= 0:
                continue
            if e.kind == "sepsis":
                v["hr"] += 45 * x
                v["rr"] += 12 * x
                v["temp"] += 2.3 * x
                v["sbp"] -= 38 * x
                v["dbp"] -= 20 * x
                v["spo2"] -= 5 * x
            elif e.kind == "hypoxia":
                v["spo2"] -= 11 * x
                v["rr"] += 9 * x
                v["hr"] += 20 * x
            elif e.kind == "hypertensive_crisis":
                v["sbp"] += 70 * x
                v["dbp"] += 40 * x
                v["hr"] += 10 * x
            elif e.kind == "fever":
                v["temp"] += 2.6 * x
                v["hr"] += 15 * x
                v["rr"] += 3 * x
            elif e.kind == "fall":
                v["hr"] += 30 * x
        v["spo2"] = min(100.0, v["spo2"])
        return v

    def _battery(self, p: Person, t: datetime) -> float:
        """Drains ~2 %/h through the day, charges overnight (22:00 to 06:00 on the charger)."""
        hour = t.hour + t.minute / 60
        if hour >= 22 or hour < 6:
            return 100.0
        return max(3.0, 100 - 4.5 * (hour - 6) - p.index % 7)

    # --- readings ------------------------------------------------------------------------

    def readings(self, t0: datetime, t1: datetime) -> dict[str, list[dict[str, Any]]]:
        """Each device's readings with times in [t0, t1), in the native HTTP format."""
        out: dict[str, list[dict[str, Any]]] = {}
        for p in self.people:
            items: list[dict[str, Any]] = []
            for kind, every in INTERVALS.items():
                offset = (p.index * 7) % every  # devices are not in lockstep
                first = math.ceil((t0.timestamp() - offset) / every) * every + offset
                ts = first
                while ts < t1.timestamp():
                    t = datetime.fromtimestamp(ts, UTC)
                    item = self._reading(p, kind, t)
                    if item is not None:
                        items.append(item)
                    ts += every
            for e in p.episodes:
                if e.kind == "fall" and t0 <= e.start < t1:
                    items.append({"type": "fall", "time": format_instant(e.start)})
            if items:
                items.sort(key=lambda r: r["time"])
                out[p.device] = items
        return out

    def _reading(self, p: Person, kind: str, t: datetime) -> dict[str, Any] | None:
        if self.dropouts and kind in ("heart_rate", "oxygen_saturation"):
            if p.dropout_until and t < p.dropout_until:
                return None
            if p.rng.random() < 0.0015:  # the watch comes off for 5 to 40 min
                p.dropout_until = t + timedelta(minutes=p.rng.uniform(5, 40))
                return None
        v = self.vitals(p, t)
        time = format_instant(t)
        if kind == "blood_pressure":
            return {
                "type": kind,
                "systolic": round(v["sbp"]),
                "diastolic": round(v["dbp"]),
                "unit": "mm[Hg]",
                "time": time,
            }
        if kind == "battery":
            return {"type": kind, "value": round(self._battery(p, t)), "unit": "%", "time": time}
        value, unit = {
            "heart_rate": (round(v["hr"]), "/min"),
            "oxygen_saturation": (round(v["spo2"]), "%"),
            "respiratory_rate": (round(v["rr"]), "/min"),
            "body_temperature": (round(v["temp"], 1), "Cel"),
            "steps": (round(v["steps"]), "{steps}"),
            "hrv_sdnn": (round(v["hrv"]), "ms"),
            "body_weight": (round(p.weight + p.rng.gauss(0, 0.3), 1), "kg"),
            "blood_glucose": (round(v["glucose"]), "mg/dL"),
        }[kind]
        return {"type": kind, "value": value, "unit": unit, "time": time}
