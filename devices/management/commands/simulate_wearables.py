"""``manage.py simulate_wearables --patients N --rate R --via http|mqtt --seed S``.

Makes (or reuses) N simulated patients, each with a paired wearable, then streams their
readings (``devices.simulator``) to a running server over HTTP or through the MQTT broker,
at about R readings per second: simulated time runs as fast as that rate needs. Scripted
episodes: ``--episode sepsis:2:+1h:8`` (kind:patient:+start[:hours]).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from devices import services
from devices.simulator import INTERVALS, Simulator, parse_episode
from fhir_api import services as fhir

PATIENT_SYSTEM = "https://clouddth.example/simulated-patient"
READINGS_PER_SECOND_PER_PATIENT = sum(1 / s for s in INTERVALS.values())
NAMES = [
    ("Margaret", "Hughes", "female", "1938-04-12"),
    ("Arthur", "Bennett", "male", "1941-09-30"),
    ("Edith", "Clarke", "female", "1935-01-22"),
    ("Walter", "Price", "male", "1944-06-08"),
    ("Dorothy", "Shaw", "female", "1939-11-17"),
    ("Harold", "Owens", "male", "1947-02-03"),
    ("Joan", "Fletcher", "female", "1950-07-25"),
    ("Frank", "Gibson", "male", "1936-12-14"),
]


def setup(patients: int, seed: int) -> list[tuple[str, str, str]]:
    """(patient id, device identifier, device key) for each simulated patient, made if needed."""
    out = []
    for k in range(patients):
        given, family, gender, birth = NAMES[k % len(NAMES)]
        ident = f"SIM-{seed}-{k:05d}"
        patient = fhir.create(
            "Patient",
            {
                "resourceType": "Patient",
                "identifier": [{"system": PATIENT_SYSTEM, "value": ident}],
                "name": [
                    {"given": [given], "family": family if k < len(NAMES) else f"{family}-{k}"}
                ],
                "gender": gender,
                "birthDate": birth,
            },
            if_none_exist=f"identifier={PATIENT_SYSTEM}|{ident}",
        ).resource.logical_id
        device = services.register_device(f"{ident}-W", model_name="CloudDTH simulated wristband")
        services.pair(
            device, patient, start=timezone.now() - timedelta(days=30), by="simulate_wearables"
        )
        out.append((patient, device.identifier, services.issue_key(device)))
    return out


class Command(BaseCommand):
    help = "Stream simulated wearable readings to the server (HTTP) or the MQTT broker."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--patients", type=int, default=5)
        parser.add_argument(
            "--rate", type=float, default=5.0, help="readings per second, all patients"
        )
        parser.add_argument("--via", choices=["http", "mqtt"], default="http")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--url", default=os.environ.get("DTH_URL", "http://127.0.0.1:8000"))
        parser.add_argument(
            "--duration", type=float, default=0, help="seconds to run (0: until stopped)"
        )
        parser.add_argument(
            "--episode", action="append", default=[], help="kind:patient:+start[:hours]"
        )
        parser.add_argument(
            "--backfill", type=float, default=0, help="hours of history to send first"
        )

    def handle(
        self, *args, patients, rate, via, seed, url, duration, episode, backfill, **options
    ) -> None:
        if patients < 1 or rate <= 0:
            raise CommandError("--patients and --rate must be positive")
        start = timezone.now()
        speed = rate / (patients * READINGS_PER_SECOND_PER_PATIENT)
        # Faster than real time, simulated time starts in the past so that readings are never
        # stamped in the future (which the ingest refuses); once it catches up with the clock it
        # runs in real time. Episode times count from the simulated start.
        ahead = timedelta(seconds=(duration or 3600) * max(0.0, speed - 1))
        sim_start = start - min(ahead, timedelta(hours=24))
        try:
            episodes = [parse_episode(e, sim_start) for e in episode]
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        people = setup(patients, seed)
        keys = {device: key for _p, device, key in people}
        simulator = Simulator([device for _p, device, _k in people], seed=seed, episodes=episodes)
        send = self._sender(via, url, keys)
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
        self.stderr.write(
            f"simulating {patients} patient(s) via {via}, ~{rate:g} readings/s"
            f" ({speed:.1f} simulated seconds per second), episodes: {episode or 'none'}"
        )
        sent = 0
        if backfill > 0:
            t0 = sim_start - timedelta(hours=backfill)
            for hour in range(int(backfill * 60)):
                sent += send(
                    simulator.readings(
                        t0 + timedelta(minutes=hour), t0 + timedelta(minutes=hour + 1)
                    )
                )
        sim_time, began = sim_start, time.monotonic()
        while not stop["now"] and (duration <= 0 or time.monotonic() - began < duration):
            tick = time.monotonic()
            window_end = min(sim_time + timedelta(seconds=speed), timezone.now())
            if window_end > sim_time:
                sent += send(simulator.readings(sim_time, window_end))
                sim_time = window_end
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        self.stderr.write(f"sent {sent} reading(s)")

    def _sender(self, via: str, url: str, keys: dict[str, str]):
        if via == "mqtt":
            import paho.mqtt.client as mqtt

            from devices.mqtt import broker_address, publish

            host, port, user, password = broker_address()
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=f"simulator-{os.getpid()}"
            )
            if user:
                client.username_pw_set(user, password)
            client.connect(host, port)
            client.loop_start()

            def send_mqtt(batch):
                infos = [
                    publish(client, device, keys[device], {"readings": r})
                    for device, r in batch.items()
                ]
                for info in infos:
                    info.wait_for_publish(10)
                return sum(len(r) for r in batch.values())

            return send_mqtt
        session = requests.Session()
        pool = ThreadPoolExecutor(max_workers=4)
        endpoint = url.rstrip("/") + "/api/devices/readings"

        def post(device, readings):
            response = session.post(
                endpoint,
                json={"device": device, "readings": readings},
                headers={"Authorization": f"Device {keys[device]}"},
                timeout=30,
            )
            if response.status_code != 202:
                self.stderr.write(f"{device}: HTTP {response.status_code} {response.text[:200]}")
                return 0
            return response.json()["accepted"]

        def send_http(batch):
            return sum(pool.map(lambda item: post(*item), batch.items()))

        return send_http
