#!/usr/bin/env python
"""End-to-end device ingest: readings/s over HTTP and MQTT until searchable, and the COPY floor.

    .venv/bin/python bench/ingest.py                         # 100,000 readings per transport
    .venv/bin/python bench/ingest.py --readings 200000 --consumers 2 --message-size 500
    .venv/bin/python bench/ingest.py --nice -10       # as root, on a busy shared machine
    .venv/bin/python bench/ingest.py --transports http --readings 20000   # a quick look

Readings: ``--patients`` (40) simulated patients, each with a paired wristband, registered as
``simulate_wearables`` does; their readings come from ``devices.simulator`` (personal
baselines, circadian rhythm, activity, dropouts, a few scripted episodes): heart rate, SpO2,
respiratory rate, temperature, blood pressure, steps, HRV, weight, glucose and battery, mixed
as a wristband sends them, over a stretch of simulated days in the past month.

For each transport a fresh PostgreSQL database (``--db-name``) is dropped, created and migrated:

- http: the production server (``python -m dth_project.serve``) on a free loopback port;
  ``--clients`` (4) client processes, each with one keep-alive connection, POST the readings to
  ``/api/devices/readings`` in batches of ``--batch`` (500) readings of one device each
  (``Authorization: Device <key>``), every batch answered 202 with all of it accepted.
- mqtt: ``--consumers`` (4) ``manage.py mqtt_ingest --shared`` processes; one publisher sends the
  same readings as messages of ``--message-size`` (250) readings to
  ``dth/devices/<device>/readings`` at QoS 1, as a gateway would. The broker is a Mosquitto of
  the bench's own on a free loopback port (so that other consumers of ``dth/devices/+/readings``
  on the shared broker neither see nor steal the messages), configured as the system one
  (Debian defaults: 20 messages in flight per client) but with no cap on queued messages; or
  the broker at ``--mqtt-url``.

The clock starts when the first batch is sent and stops when the last reading is searchable:
the bench polls the count of ``Observation?identifier=urn:clouddth:device-reading|…`` rows in the
token index (written in the same transaction as the Observation) until all are there, then
checks ``Observation?code=http://loinc.org|8867-4&_summary=count`` (HTTP) or its index rows
(MQTT) against the number of heart-rate readings sent.

The floor: the same readings mapped to the same rows the ingest writes (the Observation JSON in
the resource and version tables and its index rows, built by the ingest's own code), loaded
with ``COPY … FROM STDIN`` into plain tables (no index, no constraint) in one transaction, right
after each transport in its database (a shared machine's load changes from minute to minute).

Printed: readings/s per transport, the floor, the ratio, the peak RSS (VmHWM) of each ingest
process (server workers, mqtt_ingest), CPU seconds per 1,000 readings of the ingest processes
and of PostgreSQL (steadier than readings/s on a shared machine), and the targets: ≥ 5,000
readings/s over each transport, ≥ 25 % of the floor, ≤ 400 MB peak RSS per process.
Exit status 1 when a reading was lost, rejected or duplicated, or a transport timed out.

Only loopback addresses are used; every loop is bounded by ``--timeout``; the database and the
bench's broker are removed at the end (unless ``--keep-db``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # bench/ is not a package: its directory is on sys.path
    CLK_TCK,
    ROOT,
    _children,
    _machine_busy,
    _ticks,
    free_port,
    pg,
    popen_niced,
    recreate_database,
    renice,
    set_autogroup_nice,
    setup_django,
    with_dbname,
)
from crud import LOOPBACK, Connection, OwnServer

READING_SYSTEM = "urn:clouddth:device-reading"  # devices.mapping.READING_ID_SYSTEM
TOPIC_PREFIX = "dth/devices"  # the consumers are told it (MQTT_TOPIC_PREFIX)
HEART_RATE = ("http://loinc.org", "8867-4")
TARGET_RATE = 5000.0
TARGET_RATIO = 0.25
TARGET_RSS_MB = 400.0
COUNT_SQL = (
    "SELECT count(*) FROM fhir_token_index WHERE resource_type = 'Observation'"
    " AND param = 'identifier' AND system = %s"
)
CODE_SQL = (
    "SELECT count(DISTINCT resource_id) FROM fhir_token_index WHERE resource_type ="
    " 'Observation' AND param = 'code' AND system = %s AND code = %s"
)
INDEX_TABLES = (
    "fhir_token_index",
    "fhir_string_index",
    "fhir_date_index",
    "fhir_quantity_index",
    "fhir_number_index",
    "fhir_reference_index",
    "fhir_uri_index",
    "fhir_composite_index",
)


# --- Inside Django (run as a subprocess on the bench database) --------------------------------


def internal_setup(out: str, patients: int, seed: int, readings: int, t0: str) -> None:
    """Patients, paired wristbands and keys (as simulate_wearables makes them), and readings."""
    setup_django()
    from devices.management.commands.simulate_wearables import setup
    from devices.simulator import Episode, Simulator
    from fhir_api.search.dates import format_instant

    people = setup(patients, seed)
    start = datetime.fromisoformat(t0)
    episodes = [
        Episode("sepsis", 0, start + timedelta(hours=2), 10),
        Episode("hypoxia", 1 % patients, start + timedelta(hours=5), 4),
        Episode("hypertensive_crisis", 2 % patients, start + timedelta(hours=1), 3),
        Episode("fever", 3 % patients, start + timedelta(hours=8), 12),
        Episode("fall", 4 % patients, start + timedelta(hours=3, minutes=7), 0.25),
    ]
    devices = [d for _p, d, _k in people]
    sim = Simulator(devices, seed=seed, episodes=episodes)
    need = math.ceil(readings / patients)
    got: dict[str, list] = {d: [] for d in devices}
    t = start
    while min(len(v) for v in got.values()) < need:
        for device, items in sim.readings(t, t + timedelta(hours=1)).items():
            got[device].extend(items)
        t += timedelta(hours=1)
    # A few readings before the measured stretch, to warm the server and the consumers up.
    warm = Simulator(devices, seed=seed + 1).readings(start - timedelta(hours=3), start)
    result = {
        "devices": [{"patient": p, "device": d, "key": k} for p, d, k in people],
        "readings": {d: items[:need] for d, items in got.items()},
        "warmup": {d: items[:20] for d, items in warm.items()},
        "until": format_instant(t),
    }
    Path(out).write_text(json.dumps(result))


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


def internal_floor_rows(setup_file: str, out_dir: str) -> None:
    """The rows the ingest writes for the readings, as COPY text files, one per table.

    The Observation of each reading is built by the ingest's own functions (adapter, check,
    identifier, observation, indexrows) and stored as the write path stores it
    (``services._content``), so the floor moves exactly the bytes the ingest moves.
    """
    setup_django()
    from devices.adapters import native
    from devices.indexrows import observation_rows
    from devices.ranges import Ranges, settings_for
    from devices.readings import check, identifier, observation
    from fhir_api.search.extract import COLUMNS
    from fhir_api.services import _content, new_id

    data = json.loads(Path(setup_file).read_text())
    patient_of = {d["device"]: d["patient"] for d in data["devices"]}
    now = datetime.now(UTC)
    out = Path(out_dir)
    files = {"fhir_resource": open(out / "fhir_resource", "w")}  # noqa: SIM115
    files["fhir_resource_version"] = open(out / "fhir_resource_version", "w")  # noqa: SIM115
    columns = {
        "fhir_resource": "id, resource_type, logical_id, version_id, last_updated, deleted,"
        " content",
        "fhir_resource_version": "resource_id, resource_type, logical_id, version_id,"
        " last_updated, deleted, method, content",
    }
    for model, names in COLUMNS.items():
        table = model._meta.db_table
        files[table] = open(out / table, "w")  # noqa: SIM115
        columns[table] = ", ".join(("resource_id", "resource_type", "param", "patient", *names))
    pk = 0
    stamp = now.isoformat()
    settings = settings_for(sorted(set(patient_of.values())))
    for device, items in data["readings"].items():
        patient = patient_of[device]
        judged = Ranges(settings[patient])
        for parsed in native.parse({"readings": items}):
            checked = check(parsed.reading, now)
            key = identifier(device, patient, checked)
            obs = observation(
                checked, patient=patient, device_fhir_id="bench-device", key=key, ranges=judged
            )
            lid = new_id()
            pk += 1
            content = _copy_text(_content("Observation", lid, obs, 1, now))
            files["fhir_resource"].write(f"{pk}\tObservation\t{lid}\t1\t{stamp}\tf\t{content}\n")
            files["fhir_resource_version"].write(
                f"{pk}\tObservation\t{lid}\t1\t{stamp}\tf\tPOST\t{content}\n"
            )
            rows = observation_rows(checked, obs)
            head = f"{pk}\tObservation\t"
            patient_col = _copy_text(rows.patient)
            for model, table_rows in rows.rows.items():
                write = files[model._meta.db_table].write
                for row in table_rows:
                    rest = "\t".join(map(_copy_text, row[1:]))
                    write(f"{head}{_copy_text(row[0])}\t{patient_col}\t{rest}\n")
    for f in files.values():
        f.close()
    (out / "columns.json").write_text(json.dumps(columns))


# --- Measuring ---------------------------------------------------------------------------------


def searchable(conn) -> int:
    with conn.cursor() as cur:
        cur.execute(COUNT_SQL, [READING_SYSTEM])
        return cur.fetchone()[0]


def vm_hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def renice_backends(conn, dbname: str, nice: int) -> None:
    """The bench database's PostgreSQL backends at ``nice`` (``--nice``)."""
    if not nice:
        return
    with conn.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [dbname])
        renice([pid for (pid,) in cur.fetchall()], nice)


class CPU:
    """CPU seconds of the ingest processes (and their children), of the PostgreSQL backends
    serving the bench database (not those of anyone else on a shared machine), and of the
    whole machine."""

    def __init__(self, pids: list[int], conn, dbname: str) -> None:
        self.pids, self.conn, self.dbname = pids, conn, dbname
        self.start = self._snap()

    def _backends(self) -> list[int]:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.dbname],
            )
            return [row[0] for row in cur.fetchall()]

    def _snap(self) -> dict:
        own = {}
        for pid in self.pids:
            for p in [pid, *_children(pid)]:
                own[p] = _ticks(p)
        busy, _total = _machine_busy()
        return {"own": own, "pg": {p: _ticks(p) for p in self._backends()}, "busy": busy}

    def used(self) -> dict:
        end = self._snap()

        def delta(key):
            return sum(t - self.start[key].get(p, 0) for p, t in end[key].items()) / CLK_TCK

        return {
            "ingest": delta("own"),
            "postgres": delta("pg"),
            "machine": (end["busy"] - self.start["busy"]) / CLK_TCK,
        }


@dataclass
class Outcome:
    transport: str
    readings: int
    seconds: float = float("nan")
    searchable: int = 0
    problems: list[str] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""
    floor: float | None = None  # COPY floor, readings/s, measured right after, in its database

    @property
    def rate(self) -> float:
        return self.searchable / self.seconds if self.seconds > 0 else float("nan")


def wait_searchable(conn, goal: int, deadline: float, interval: float = 0.1) -> int:
    """Poll until ``goal`` readings are searchable (or the deadline); the last count seen."""
    count = searchable(conn)
    while count < goal and time.monotonic() < deadline:
        time.sleep(interval)
        count = searchable(conn)
    return count


# --- HTTP --------------------------------------------------------------------------------------


def http_request(host: str, key: str, body: bytes) -> bytes:
    head = (
        "POST /api/devices/readings HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Device {key}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nUser-Agent: clouddth-bench\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def batches(readings: dict[str, list], size: int) -> list[tuple[str, list]]:
    """(device, readings) chunks, devices interleaved as many devices' uploads would be."""
    per_device = [
        [(device, items[i : i + size]) for i in range(0, len(items), size)]
        for device, items in readings.items()
    ]
    out = []
    for round_ in range(max(len(p) for p in per_device)):
        out.extend(p[round_] for p in per_device if round_ < len(p))
    return out


def http_client(port: int, requests: list[tuple[bytes, int]], start: float, queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection("127.0.0.1", port, timeout=120)
    tally = {"accepted": 0, "duplicate": 0, "rejected": 0, "errors": []}
    time.sleep(max(0.0, start - time.time()))
    try:
        for raw, _n in requests:
            status, _h, body = conn.request(raw, retry_safe=False)
            if status != 202:
                tally["errors"].append(f"HTTP {status}: {body[:200]!r}")
                continue
            answer = json.loads(body)
            tally["accepted"] += answer["accepted"]
            tally["duplicate"] += answer["duplicate"]
            tally["rejected"] += answer["rejected"]
            if answer["rejected"]:
                tally["errors"].append(json.dumps(answer["rejections"][:3]))
    except Exception as exc:  # report, never hang the parent
        tally["errors"].append(f"client crashed: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
        queue.put(tally)


def run_http_clients(port: int, per_client: list[list[tuple[bytes, int]]]) -> tuple:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start = time.time() + 0.2
    procs = [
        ctx.Process(target=http_client, args=(port, reqs, start, queue), daemon=True)
        for reqs in per_client
    ]
    for p in procs:
        p.start()
    return procs, start, queue


def run_http(args, data: dict, server: OwnServer) -> Outcome:
    port = server.port
    host = f"127.0.0.1:{port}"
    keys = {d["device"]: d["key"] for d in data["devices"]}
    total = sum(len(v) for v in data["readings"].values())
    out = Outcome("http", total)
    conn = pg(server.db_url)
    try:
        # Warm-up: a batch per worker thread, before the measured readings.
        warm = [
            (http_request(host, keys[d], json.dumps({"device": d, "readings": items}).encode()), 0)
            for d, items in data["warmup"].items()
        ]
        procs, _start, queue = run_http_clients(
            port, [warm[i :: args.clients] for i in range(args.clients)]
        )
        for _ in procs:
            queue.get(timeout=args.timeout)
        for p in procs:
            p.join(10)
        base = searchable(conn)

        chunks = batches(data["readings"], args.batch)
        requests = [
            (
                http_request(host, keys[d], json.dumps({"device": d, "readings": items}).encode()),
                len(items),
            )
            for d, items in chunks
        ]
        workers = _children(server.proc.pid)
        renice_backends(conn, server.args.db_name, args.nice)
        cpu = CPU([server.proc.pid], conn, server.args.db_name)
        procs, start, queue = run_http_clients(
            port, [requests[i :: args.clients] for i in range(args.clients)]
        )
        deadline = time.monotonic() + args.timeout
        tallies = []
        while len(tallies) < len(procs) and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                tallies.append(queue.get(timeout=0.5))
        accepted = sum(t["accepted"] for t in tallies)
        # Every 202 came after its commit; poll until the index says so too.
        count = wait_searchable(conn, base + accepted, deadline) - base
        end = time.time()
        out.cpu = cpu.used()
        out.seconds = end - start
        out.searchable = count
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
        if len(tallies) < len(procs):
            out.problems.append("a client did not finish before --timeout")
        if accepted != total or count != total:
            out.problems.append(f"{total} sent, {accepted} accepted, {count} searchable")
        for t in tallies:
            if t["duplicate"]:
                out.problems.append(f"{t['duplicate']} reported as duplicates")
            out.problems.extend(t["errors"][:5])
        hr = sum(
            1 for items in data["readings"].values() for r in items if r["type"] == "heart_rate"
        )
        hr += sum(1 for v in data["warmup"].values() for r in v if r["type"] == "heart_rate")
        found = fhir_count(port, server.token, "Observation?code=http://loinc.org|8867-4")
        if found != hr:
            out.problems.append(f"Observation?code=…8867-4 counts {found}, {hr} heart rates sent")
        for pid in workers:
            out.rss_mb[f"server worker {pid}"] = vm_hwm_mb(pid) or float("nan")
        out.rss_mb[f"server main {server.proc.pid}"] = vm_hwm_mb(server.proc.pid) or 0.0
        out.note = f"{len(workers)} server workers, {len(requests)} requests of ≤{args.batch}"
    finally:
        conn.close()
    return out


def fhir_count(port: int, token: str, query: str) -> int | None:
    conn = Connection("127.0.0.1", port, timeout=120)
    try:
        raw = (
            f"GET /fhir/{query}&_summary=count HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/fhir+json\r\n\r\n"
        ).encode()
        status, _h, body = conn.request(raw, retry_safe=True)
        return json.loads(body).get("total") if status == 200 else None
    finally:
        conn.close()


# --- MQTT --------------------------------------------------------------------------------------


class Broker:
    """A Mosquitto of the bench's own on a free loopback port (Debian's defaults otherwise)."""

    def __init__(self, workdir: Path, nice: int = 0) -> None:
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\n"
        )
        self.log = open(workdir / "mosquitto.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = popen_niced(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
            nice,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: see {workdir / 'mosquitto.log'}")
            time.sleep(0.1)
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def mqtt_client(url: str, client_id: str, *, clean: bool = True, inflight: int = 20):
    import paho.mqtt.client as mqtt

    parts = urllib.parse.urlsplit(url)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
    )
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    client.max_inflight_messages_set(inflight)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    return client


def publish_all(client, messages: list[tuple[str, bytes]], timeout: float) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    deadline = time.monotonic() + timeout
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))


def run_mqtt(args, data: dict, env: dict, db_url: str, mqtt_url: str, workdir: Path) -> Outcome:
    keys = {d["device"]: d["key"] for d in data["devices"]}
    total = sum(len(v) for v in data["readings"].values())
    out = Outcome("mqtt", total)
    tag = secrets.token_hex(3)
    ids = [f"bench-ingest-{tag}-{i}" for i in range(args.consumers)]
    env = {**env, "MQTT_URL": mqtt_url, "MQTT_TOPIC_PREFIX": TOPIC_PREFIX}
    logs, consumers = [], []
    conn = pg(db_url)
    publisher = None
    try:
        for client_id in ids:
            log = open(workdir / f"{client_id}.log", "w")  # noqa: SIM115 (closed below)
            logs.append(log)
            cmd = [sys.executable, "manage.py", "mqtt_ingest", "--client-id", client_id]
            cmd += ["--shared", *args.consumer_arg]
            consumers.append(
                popen_niced(cmd, args.nice, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        # Each consumer has subscribed once it says so and a message for it got through.
        deadline = time.monotonic() + 60
        for client_id, proc in zip(ids, consumers, strict=True):
            while "topic" not in (workdir / f"{client_id}.log").read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mqtt_ingest did not start: see {workdir}")
                time.sleep(0.1)
        time.sleep(1.0)
        publisher = mqtt_client(mqtt_url, f"bench-ingest-pub-{tag}", inflight=100)
        publisher.loop_start()

        def message(device: str, items: list) -> tuple[str, bytes]:
            body = {"device": device, "readings": items, "key": keys[device]}
            return f"{TOPIC_PREFIX}/{device}/readings", json.dumps(body).encode()

        warm = [message(d, items) for d, items in data["warmup"].items()]
        publish_all(publisher, warm, 30)
        goal = sum(len(v) for v in data["warmup"].values())
        wait_searchable(conn, goal, time.monotonic() + 120, 0.2)
        base = searchable(conn)

        messages = [message(d, items) for d, items in batches(data["readings"], args.message_size)]
        renice_backends(conn, args.db_name, args.nice)
        cpu = CPU([p.pid for p in consumers], conn, args.db_name)
        start = time.time()
        publish_all(publisher, messages, args.timeout)
        published = time.time() - start
        deadline = time.monotonic() + args.timeout
        count = wait_searchable(conn, base + total, deadline, 0.2) - base
        end = time.time()
        out.cpu = cpu.used()
        out.seconds = end - start
        out.searchable = count
        if count != total:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*), min(reason) FROM devices_dead_letter")
                dead, reason = cur.fetchone()
            out.problems.append(
                f"{total} published, {count} searchable after {args.timeout:g} s;"
                f" {dead} dead letter(s) (e.g. {reason})"
            )
        hr = sum(
            1 for items in data["readings"].values() for r in items if r["type"] == "heart_rate"
        )
        with conn.cursor() as cur:
            cur.execute(CODE_SQL, list(HEART_RATE))
            found = cur.fetchone()[0]
        warm_hr = sum(1 for v in data["warmup"].values() for r in v if r["type"] == "heart_rate")
        if found != hr + warm_hr:
            out.problems.append(f"code 8867-4 has {found - warm_hr} Observations, {hr} sent")
        for client_id, proc in zip(ids, consumers, strict=True):
            out.rss_mb[f"mqtt_ingest {client_id}"] = vm_hwm_mb(proc.pid) or float("nan")
        out.note = (
            f"{args.consumers} consumer(s), {len(messages)} messages of ≤{args.message_size}"
            f" readings (published in {published:.1f} s)"
        )
    finally:
        conn.close()
        if publisher is not None:
            publisher.loop_stop()
            publisher.disconnect()
        for proc in consumers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in consumers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in logs:
            log.close()
        # Forget the consumers' persistent sessions on a broker that outlives the bench.
        for client_id in ids if args.mqtt_url else []:
            with contextlib.suppress(Exception):
                c = mqtt_client(mqtt_url, client_id, clean=True)
                c.disconnect()
    return out


def celery_env(args) -> dict:
    """``--twins queued``: a broker (so no eager run in the request), but one of each process's
    own memory, which no worker reads: nothing is shared with other users of the machine's
    brokers, and nothing is left behind."""
    return {"CELERY_BROKER_URL": "memory://"} if args.twins == "queued" else {}


# --- The floor ---------------------------------------------------------------------------------


def run_floor(db_url: str, rows_dir: Path, total: int, nice: int = 0) -> tuple[float, int]:
    """Seconds to COPY the rows into plain tables, in one committed transaction; bytes moved."""
    columns = json.loads((rows_dir / "columns.json").read_text())
    conn = pg(db_url)
    size = 0
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            renice([cur.fetchone()[0]], nice)
            for table in columns:
                cur.execute(f"DROP TABLE IF EXISTS floor_{table}")
                cur.execute(
                    f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY)"
                )
        conn.autocommit = False
        start = time.time()
        with conn.cursor() as cur:
            for table, names in columns.items():
                with open(rows_dir / table) as f:
                    size += os.fstat(f.fileno()).st_size
                    cur.copy_expert(f"COPY floor_{table} ({names}) FROM STDIN", f)
        conn.commit()
        seconds = time.time() - start
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM floor_fhir_resource")
            if cur.fetchone()[0] != total:
                raise RuntimeError("the floor did not load every resource row")
            for table in columns:
                cur.execute(f"DROP TABLE floor_{table}")
        return seconds, size
    finally:
        conn.close()


def measure_floor(args, data: dict, env: dict, db_url: str, workdir: Path) -> tuple[float, int]:
    """The floor in ``db_url``: readings/s of the COPY, and its bytes (rows mapped once)."""
    rows_dir = workdir / "rows"
    if not rows_dir.exists():
        print("floor: mapping the same readings to their rows …", flush=True)
        rows_dir.mkdir()
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--internal-floor-rows",
                data["file"],
                str(rows_dir),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=args.timeout,
        )
    total = sum(len(v) for v in data["readings"].values())
    seconds, size = run_floor(db_url, rows_dir, total, args.nice)
    return total / seconds, size


# --- Main --------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--readings", type=int, default=100_000, help="per transport (100000)")
    p.add_argument("--patients", type=int, default=40, help="simulated patients/devices (40)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--transports", default="http,mqtt", help="comma list of http, mqtt")
    p.add_argument("--clients", type=int, default=4, help="HTTP client processes (4)")
    p.add_argument("--batch", type=int, default=500, help="readings per HTTP request (500)")
    p.add_argument(
        "--consumers",
        type=int,
        default=4,
        help="mqtt_ingest processes (4: each one transaction at a"
        " time, so that one's commit overlaps the others' work)",
    )
    p.add_argument("--message-size", type=int, default=250, help="readings per message (250)")
    p.add_argument(
        "--consumer-arg",
        action="append",
        default=[],
        help="extra mqtt_ingest argument, repeatable (e.g. --consumer-arg=--max-batch=4000)",
    )
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument of python -m dth_project.serve, repeatable"
        " (e.g. --server-arg=--workers=3)",
    )
    p.add_argument("--mqtt-url", help="use this broker instead of a Mosquitto of the bench's own")
    p.add_argument(
        "--twins",
        choices=["queued", "inline"],
        default="queued",
        help="queued (default): the twin refresh each batch asks for is queued to Celery, as"
        " deployed, on a memory:// broker of each process's own that no worker reads; inline: no"
        " broker, so the refresh runs in the ingest process",
    )
    p.add_argument("--no-floor", action="store_true", help="skip the COPY floor")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the bench, the server, the consumers, the broker and the database's backends"
        " at this nice value (e.g. -10, as root: a measure of the ingest on a busy shared"
        " machine; the floor's COPY too)",
    )
    p.add_argument("--timeout", type=float, default=600, help="seconds per transport, at most")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to make the bench database on (maintenance database)",
    )
    p.add_argument("--db-name", default="clouddth_bench_ingest")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    p.add_argument("--server-log", default=str(ROOT / "var" / "bench-ingest-server.log"))
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--internal-setup", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--internal-floor-rows", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.readings, args.patients, args.clients, args.batch, args.consumers) < 1:
        p.error("sizes and counts must be positive")
    for url in filter(None, [args.pg_url, args.mqtt_url]):
        if (urllib.parse.urlsplit(url).hostname or "") not in LOOPBACK:
            p.error(f"{url}: only loopback addresses are benchmarked (127.0.0.1, localhost, ::1)")
    return args


def prepare(args, env: dict, workdir: Path, t0: str) -> dict:
    setup_file = workdir / f"setup-{secrets.token_hex(3)}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--internal-setup", str(setup_file)]
    cmd += [str(args.patients), str(args.seed), str(args.readings), t0]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=args.timeout)
    data = json.loads(setup_file.read_text())
    data["file"] = str(setup_file)
    return data


def fresh_database(args, env: dict) -> None:
    recreate_database(args.pg_url, args.db_name)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def report(args, outcomes: list[Outcome], floor_bytes: int) -> tuple[dict, bool]:
    ok = True
    figures: dict = {}
    print()
    if floor_bytes:
        print(
            f"COPY floor: the same rows ({floor_bytes / 1e6:,.0f} MB of resource, version and index"
            " rows) into plain tables, right after each transport in its database"
        )
    for o in outcomes:
        floor = o.floor
        ratio = o.rate / floor if floor else float("nan")
        peak = max(o.rss_mb.values(), default=float("nan"))
        per_k = {k: v / o.searchable * 1000 for k, v in o.cpu.items()} if o.searchable else {}
        print(
            f"{o.transport.upper()}: {o.rate:,.0f} readings/s ({o.searchable:,} in {o.seconds:.1f} s)"
        )
        print(f"  {o.note}")
        if args.twins == "inline":
            print("  twin refreshes run in the ingest processes (--twins inline)")
        else:
            print("  twin refreshes queued (Celery, memory:// broker), not run")
        if floor:
            print(f"  COPY floor {floor:,.0f} readings/s; ratio to it: {ratio:.1%}")
        print(
            "  CPU s per 1,000 readings: "
            + ", ".join(f"{k} {v:.2f}" for k, v in per_k.items())
            + f"  (machine busy {o.cpu.get('machine', 0) / o.seconds:.2f} cores)"
        )
        own = per_k.get("ingest", 0) + per_k.get("postgres", 0)
        if own:
            print(
                f"  CPU-bound estimate with {os.cpu_count()} cores to itself:"
                f" {os.cpu_count() / own * 1000:,.0f} readings/s (ingest + its PostgreSQL backends)"
            )
        print("  peak RSS (VmHWM): " + ", ".join(f"{k} {v:.0f} MB" for k, v in o.rss_mb.items()))
        checks = [
            (o.rate >= TARGET_RATE, f"≥ {TARGET_RATE:,.0f}/s", f"{o.rate / TARGET_RATE:.2f}×"),
            (peak <= TARGET_RSS_MB, f"peak RSS ≤ {TARGET_RSS_MB:.0f} MB", f"{peak:.0f} MB"),
        ]
        if floor:
            checks.append((ratio >= TARGET_RATIO, f"≥ {TARGET_RATIO:.0%} of floor", f"{ratio:.1%}"))
        print(
            "  targets: "
            + "; ".join(
                f"{what} {'met' if met else 'NOT met'} ({value})" for met, what, value in checks
            )
        )
        for problem in o.problems[:10]:
            print(f"  PROBLEM: {problem}")
            ok = False
        figures[o.transport] = {
            "readings": o.searchable,
            "seconds": o.seconds,
            "readings_per_s": o.rate,
            "floor_readings_per_s": floor,
            "ratio_to_floor": ratio if floor else None,
            "peak_rss_mb": o.rss_mb,
            "cpu_s_per_1000": per_k,
            "problems": o.problems,
        }
    return figures, ok


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.internal_setup:
        out, patients, seed, readings, t0 = args.internal_setup
        internal_setup(out, int(patients), int(seed), int(readings), t0)
        return 0
    if args.internal_floor_rows:
        internal_floor_rows(*args.internal_floor_rows)
        return 0
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    Path(args.server_log).parent.mkdir(parents=True, exist_ok=True)
    own_group = None
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        own_group = set_autogroup_nice("self", args.nice)
        print(f"bench, server, consumers, broker and database backends at nice {args.nice}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    # The readings: a stretch of simulated time well inside the pairings (made 30 days back).
    t0 = (datetime.now(UTC) - timedelta(days=25)).replace(minute=0, second=0, microsecond=0)
    outcomes: list[Outcome] = []
    floor_bytes = 0
    broker = None
    server = None
    try:
        for transport in transports:
            if transport == "http":
                server_args = argparse.Namespace(
                    pg_url=args.pg_url,
                    db_name=args.db_name,
                    keep_db=True,
                    server_arg=args.server_arg,
                    server_log=args.server_log,
                    nice=args.nice,
                )
                server = OwnServer(server_args)
                server.env.update(celery_env(args))
                server.token = server.start()
                data = prepare(args, server.env, workdir, t0.isoformat())
                print(
                    f"http: {sum(len(v) for v in data['readings'].values()):,} readings of"
                    f" {args.patients} devices, {args.clients} clients × batches of {args.batch}",
                    flush=True,
                )
                outcomes.append(run_http(args, data, server))
                env, db_url = server.env, server.db_url
                server.stop()
                server = None
                if not args.no_floor:
                    outcomes[-1].floor, floor_bytes = measure_floor(
                        args, data, env, db_url, workdir
                    )
            elif transport == "mqtt":
                env = {
                    **os.environ,
                    "DATABASE_URL": with_dbname(args.pg_url, args.db_name),
                    "REQUIRE_POSTGRES": "1",
                    "DEBUG": "0",
                    "SECRET_KEY": secrets.token_urlsafe(50),
                    **celery_env(args),
                }
                env.pop("DJANGO_SETTINGS_MODULE", None)
                db_url = env["DATABASE_URL"]
                print(f"database {args.db_name}: dropping, creating, migrating …", flush=True)
                fresh_database(args, env)
                if args.mqtt_url:
                    mqtt_url = args.mqtt_url
                else:
                    broker = Broker(workdir, args.nice)
                    mqtt_url = broker.url
                data = prepare(args, env, workdir, t0.isoformat())
                print(
                    f"mqtt: {sum(len(v) for v in data['readings'].values()):,} readings of"
                    f" {args.patients} devices via {mqtt_url}, {args.consumers} consumer(s)",
                    flush=True,
                )
                outcomes.append(run_mqtt(args, data, env, db_url, mqtt_url, workdir))
                if not args.no_floor:
                    outcomes[-1].floor, floor_bytes = measure_floor(
                        args, data, env, db_url, workdir
                    )
                if broker is not None:
                    broker.stop()
                    broker = None
            else:
                print(f"unknown transport {transport!r}", file=sys.stderr)
                return 2
        figures, ok = report(args, outcomes, floor_bytes)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
        return 0 if ok else 1
    finally:
        if server is not None:
            server.stop()
        if broker is not None:
            broker.stop()
        if not args.keep_db:
            with contextlib.suppress(Exception):
                recreate_database(args.pg_url, args.db_name, drop_only=True)
        shutil.rmtree(workdir, ignore_errors=True)
        if own_group is not None:
            set_autogroup_nice("self", own_group)


if __name__ == "__main__":
    sys.exit(main())
