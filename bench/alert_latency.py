#!/usr/bin/env python
"""Alert latency under load: from a deteriorating reading accepted to its Flag found over FHIR.

    .venv/bin/python bench/alert_latency.py                      # 1,000 readings/s, 30 episodes
    .venv/bin/python bench/alert_latency.py --rate 500 --episodes 10 --every 2
    .venv/bin/python bench/alert_latency.py --nice -10           # as root, on a busy machine

As deployed: a fresh PostgreSQL database (``--db-name``) migrated; the production
server (``python -m dth_project.serve``); real Celery workers (``celery -A dth_project worker``,
``--worker-concurrency`` processes) consuming the twin refreshes the server queues after each
commit (4 processes by default: a refresh waits on PostgreSQL more than it computes, so 2
cores keep 4 busy), on Redis (``--broker-url``) with a queue of the run's own
(``CELERY_QUEUE``), so that no other worker on the machine takes them and the bench takes no
one else's.

Load: ``--patients`` (40) simulated patients (``simulate_wearables``' setup: Patient, paired
wristband, key) stream the simulator's readings (``devices.simulator``: heart rate, SpO2,
respiration, temperature, blood pressure, steps, HRV, weight, glucose, battery) over HTTP,
``POST /api/devices/readings`` in uploads of ``--batch`` (100) readings of one device, paced to
``--rate`` (1,000) readings/s in total by ``--clients`` (4) processes, each with one keep-alive
connection. Simulated time runs as fast as the rate needs (the readings are of the past hours).

Episodes: ``--episodes`` (30) more patients, each with a calm history sent before the load, and a
deterioration scripted in the simulator (sepsis, hypoxia, hypertensive crisis, fall in turn;
lengths as in tests/test_twin_simulated_day.py). Every ``--every`` (1.5) s under load,
one patient's episode readings (its onset to past its full effect, one upload) are posted; the
clock starts when the 202 comes back and stops when ``GET /fhir/Flag?patient=…`` (polled every
``--poll`` s on a connection of its own) shows an active Flag it did not show before the
episode (or a new version of one: a deterioration on top of an open alert escalates it).
Printed: p50, p99 and the worst delay, per kind too; episodes with no new Flag after
``--give-up`` s (and whether one came once the workers caught up); Flags the calm history
raised before the episodes (false alerts, or a device's).

Baseline, in the same run: ``--baseline`` (4) more episodes injected before the load starts,
one at a time; the loaded p50 and p99 are printed as ratios to their median.

Twin update cost: measured inside the workers. Each refresh task's CPU time
(``time.process_time`` of the worker process, from task start to end) and the Observations it
applied (rows read past the twin's safe watermark that it had not applied yet) are summed while
episodes run: CPU ms per Observation applied (the device readings and the twin's own NEWS2
scores). Target: p99 ≤ 1 s, ≤ 0.2 ms per reading. Also printed: the backlog of Observations not yet applied at the end and
the seconds the workers took to drain it, the load average and how busy the machine was.

Exit status 1 when an episode's Flag came late, an upload failed, or the workers did not catch
up.
Only loopback addresses are used; the database and the queue are removed at the end (unless
``--keep-db``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crud import (  # bench/ is not a package
    LOOPBACK,
    Connection,
    OwnServer,
    _machine_busy,
    _postgres_pids,
    build_request,
    set_autogroup_nice,
)

ROOT = Path(__file__).resolve().parent.parent
# The deteriorations of the simulator's episodes. Not its fever: at +2.6 °C on a calm baseline
# it often stays at 38.x °C with NEWS2 1-4, where by design no alert is due (temperature above
# 39.0 °C, NEWS2 5 or a single 3 alert), so it would time a Flag that never comes.
KINDS = ("sepsis", "hypoxia", "hypertensive_crisis", "fall")
# Episode lengths as tests/test_twin_simulated_day.py scripts them (full effect after a third).
HOURS = {"sepsis": 6.0, "hypoxia": 6.0, "hypertensive_crisis": 6.0, "fall": 0.25}
TARGET_P99 = 1.0
TARGET_MS_PER_READING = 0.2
REFRESH_TASK = "twins.tasks.refresh_twin"
BACKLOG_SQL = """
    SELECT count(*) FROM fhir_reference_index r
    JOIN twins_patient_twin t ON t.patient_id = r.target_id
    WHERE r.resource_type = 'Observation' AND r.param = 'subject'
      AND r.target_type = 'Patient' AND r.resource_id > t.applied_upto
      AND NOT EXISTS (
        SELECT 1 FROM fhir_token_index k WHERE k.resource_id = r.resource_id
        AND k.param = '_tag' AND k.system = 'https://clouddth.example/fhir/CodeSystem/source'
        AND k.code = 'twin')
"""  # the twin's own NEWS2 scores wait for its next refresh, which passes over them


# --- Inside Django (subprocesses on the bench database) ----------------------------------------


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dth_project.settings")
    import django

    django.setup()


def internal_setup(out: str, patients: int, episodes: int, seed: int, readings: int) -> None:
    """Patients with wristbands; the load's readings; each episode's history and injection."""
    _django()
    from devices.management.commands.simulate_wearables import setup
    from devices.simulator import INTERVALS, Episode, Simulator

    people = setup(patients + episodes, seed)
    now = datetime.now(UTC).replace(microsecond=0)
    load, patients_of_episodes = people[:patients], people[patients:]
    per_hour = sum(3600 / s for s in INTERVALS.values()) * patients
    hours = math.ceil(readings / per_hour) + 1
    sim = Simulator([d for _p, d, _k in load], seed=seed)
    stream = sim.readings(now - timedelta(hours=hours + 1), now - timedelta(hours=1))
    onset = now - timedelta(hours=12)
    scripted = [
        Episode(KINDS[k % len(KINDS)], k, onset, HOURS[KINDS[k % len(KINDS)]])
        for k in range(episodes)
    ]
    esim = Simulator([d for _p, d, _k in patients_of_episodes], seed=seed + 1, dropouts=False)
    history = esim.readings(onset - timedelta(hours=3), onset)
    for episode in scripted:
        esim.people[episode.patient].episodes.append(episode)
    cases = []
    for k, (patient, device, key) in enumerate(patients_of_episodes):
        kind = scripted[k].kind
        # From the onset to an hour past the full effect: one upload, as a gateway sends what
        # it buffered (the fall: its quarter hour, the event included); blood pressure is taken
        # every 2 h, so the crisis needs 2.5 h past the full effect to be measured at it.
        window = (
            HOURS[kind]
            if kind == "fall"
            else HOURS[kind] / 3 + (2.5 if kind == "hypertensive_crisis" else 1)
        )
        injected = esim.readings(onset, onset + timedelta(hours=window)).get(device, [])
        cases.append(
            {
                "patient": patient,
                "device": device,
                "key": key,
                "kind": kind,
                "history": history.get(device, []),
                "inject": injected,
            }
        )
    result = {
        "load": [
            {"patient": p, "device": d, "key": k, "readings": stream.get(d, [])} for p, d, k in load
        ],
        "episodes": cases,
    }
    Path(out).write_text(json.dumps(result))


def internal_worker(stats_dir: str, argv: list[str]) -> None:
    """``celery -A dth_project worker …`` with each refresh's CPU time and rows counted.

    Every pool process adds up its refresh tasks (CPU seconds of the process, wall seconds,
    Observations applied) and writes the running totals to ``stats_dir/<pid>.json`` after each.
    """
    _django()
    from celery.signals import task_postrun, task_prerun, worker_ready

    from dth_project.celery import app
    from twins import services

    totals = {"tasks": 0, "rows": 0, "cpu": 0.0, "wall": 0.0}
    current: dict[str, float] = {}
    read_new = services._new_observations

    def counted(*args, **kwargs):
        new, settled = read_new(*args, **kwargs)  # (to apply, the new safe watermark)
        current["rows"] = current.get("rows", 0) + len(new)
        return new, settled

    services._new_observations = counted

    def before(task=None, **_kwargs) -> None:
        current.clear()
        if task is not None and task.name == REFRESH_TASK:
            current.update(cpu=time.process_time(), wall=time.perf_counter(), rows=0)

    def after(task=None, **_kwargs) -> None:
        if "cpu" not in current:
            return
        totals["cpu"] += time.process_time() - current["cpu"]
        totals["wall"] += time.perf_counter() - current["wall"]
        totals["rows"] += int(current["rows"])
        totals["tasks"] += 1
        path = Path(stats_dir) / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(totals))
        tmp.replace(path)

    def ready(**_kwargs) -> None:
        (Path(stats_dir) / "ready").write_text("ready")

    task_prerun.connect(before, weak=False)
    task_postrun.connect(after, weak=False)
    worker_ready.connect(ready, weak=False)
    app.worker_main(["worker", *argv])


# --- Load ------------------------------------------------------------------------------------


def readings_request(host: str, key: str, readings: list[dict]) -> bytes:
    body = json.dumps({"readings": readings}).encode()
    head = (
        "POST /api/devices/readings HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Device {key}\r\nContent-Type: application/json\r\n"
        "Accept: application/json\r\nUser-Agent: clouddth-bench\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def uploads(load: list[dict], size: int) -> list[tuple[str, list[dict]]]:
    """(key, readings) uploads in time order, the devices interleaved as a ward's would be."""
    per_device = [
        [(p["key"], p["readings"][i : i + size]) for i in range(0, len(p["readings"]), size)]
        for p in load
    ]
    out = []
    for round_ in range(max(len(p) for p in per_device)):
        out.extend(p[round_] for p in per_device if round_ < len(p))
    return out


def load_client(port: int, plan: list[tuple[float, bytes, int]], start: float, queue) -> None:
    """Send each upload at its planned time (late ones at once); report what was accepted."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection("127.0.0.1", port, timeout=120)
    tally = {"accepted": 0, "sent": 0, "errors": [], "late": 0.0}
    try:
        for at, raw, n in plan:
            wait = start + at - time.time()
            if wait > 0:
                time.sleep(wait)
            else:
                tally["late"] = max(tally["late"], -wait)
            status, _h, body = conn.request(raw, retry_safe=False)
            tally["sent"] += n
            if status != 202:
                tally["errors"].append(f"HTTP {status}: {body[:200]!r}")
                continue
            tally["accepted"] += json.loads(body)["accepted"]
    except Exception as exc:  # report, never hang the parent
        tally["errors"].append(f"client crashed: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
        queue.put(tally)


# --- Measuring -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def worker_totals(stats_dir: Path) -> dict[str, float]:
    out = {"tasks": 0, "rows": 0, "cpu": 0.0, "wall": 0.0}
    for path in stats_dir.glob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            for key, value in json.loads(path.read_text()).items():
                out[key] += value
    return out


def active_flags(body: bytes) -> dict[tuple[str, str], str]:
    """{(id, version): text} of the active Flags of a search answer (the text: the Flag's code).

    A new version of a Flag that was already active counts as news: one ongoing problem is one
    alert, so a deterioration on top of an open alert escalates that alert's Flag."""
    out = {}
    for entry in json.loads(body).get("entry", []):
        flag = entry["resource"]
        if flag.get("status") == "active":
            code = flag.get("code", {})
            key = (flag["id"], flag.get("meta", {}).get("versionId", ""))
            out[key] = code.get("text") or next(
                (c.get("display") or c.get("code") for c in code.get("coding", [])), ""
            )
    return out


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.queue = f"alert-bench-{secrets.token_hex(4)}"
        self.server = OwnServer(args)
        self.server.env.update(CELERY_BROKER_URL=args.broker_url, CELERY_QUEUE=self.queue)
        self.server.env.pop("CELERY_RESULT_BACKEND", None)
        self.workdir = Path(tempfile.mkdtemp(prefix="alert-latency-"))
        self.stats_dir = self.workdir / "stats"
        self.stats_dir.mkdir()
        self.worker: subprocess.Popen | None = None
        self.host = ""

    # processes

    def start(self) -> None:
        self.token = self.server.start()
        self.host = f"127.0.0.1:{self.server.port}"
        nice = self.args.nice
        self.worker_log = open(self.args.worker_log, "w")  # noqa: SIM115 (closed in stop)
        argv = [
            f"--concurrency={self.args.worker_concurrency}",
            "--pool=prefork",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname={self.queue}@%h",
        ]
        self.worker = subprocess.Popen(
            [sys.executable, __file__, "--internal-worker", str(self.stats_dir), *argv],
            cwd=ROOT,
            env=self.server.env,
            stdout=self.worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)) if nice else None,
        )
        if nice:
            set_autogroup_nice(self.worker.pid, nice)
        deadline = time.monotonic() + 120
        while not (self.stats_dir / "ready").exists():
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start: see {self.args.worker_log}")
            time.sleep(0.2)
        print(
            f"worker pid {self.worker.pid} ({self.args.worker_concurrency} processes), queue"
            f" {self.queue} on {self.args.broker_url}, log {self.args.worker_log}",
            flush=True,
        )

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)  # warm shutdown of its pool
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait(timeout=10)
        if self.worker is not None:
            self.worker_log.close()
        with contextlib.suppress(Exception):
            from kombu import Connection as Broker

            with Broker(self.args.broker_url) as conn:
                conn.default_channel.queue_purge(self.queue)
                conn.default_channel.queue_delete(self.queue)
                if conn.transport.driver_type == "redis":  # and the routing of its exchange
                    conn.default_channel.client.delete(
                        f"_kombu.binding.{self.queue}", f"_kombu.binding_permanent.{self.queue}"
                    )
        self.server.stop()

    # data

    def prepare(self) -> dict:
        out = self.workdir / "setup.json"
        readings = int(self.args.rate * (self.args.warmup + self.args.duration() + 30))
        cmd = [sys.executable, __file__, "--internal-setup", str(out)]
        cases = self.args.episodes + self.args.baseline
        cmd += [str(self.args.patients), str(cases), str(self.args.seed)]
        cmd += [str(readings)]
        subprocess.run(cmd, cwd=ROOT, env=self.server.env, check=True, timeout=600)
        return json.loads(out.read_text())

    def db(self):
        import psycopg2

        conn = psycopg2.connect(self.server.db_url)
        conn.autocommit = True
        return conn

    def backlog(self, conn) -> int:
        with conn.cursor() as cur:
            cur.execute(BACKLOG_SQL)
            return cur.fetchone()[0]

    def drain(self, conn, timeout: float) -> float | None:
        """Seconds until every twin applied every Observation of its patient (None: timeout)."""
        start = time.monotonic()
        while self.backlog(conn):
            if time.monotonic() - start > timeout:
                return None
            time.sleep(0.1)
        return time.monotonic() - start

    def flags_of(self, conn: Connection, patient: str) -> dict[tuple[str, str], str]:
        status, _h, body = conn.request(
            build_request("GET", self.host, f"/fhir/Flag?patient={patient}", self.token),
            retry_safe=True,
        )
        if status != 200:
            raise RuntimeError(f"Flag search answered {status}: {body[:300]!r}")
        return active_flags(body)

    def inject(self, case: dict, post: Connection, poll: Connection) -> float | None:
        """Post the episode's readings; seconds from the 202 to its Flag (None: not in time)."""
        raw = readings_request(self.host, case["key"], case["inject"])
        status, _h, body = post.request(raw, retry_safe=False)
        accepted = time.perf_counter()
        if status != 202:
            raise RuntimeError(f"episode upload answered {status}: {body[:300]!r}")
        while time.perf_counter() - accepted < self.args.give_up:
            if set(self.flags_of(poll, case["patient"])) - set(case["before"]):
                return time.perf_counter() - accepted
            time.sleep(self.args.poll)
        return None

    # the run

    def run(self) -> int:
        args = self.args
        data = self.prepare()
        db = self.db()
        post = Connection("127.0.0.1", self.server.port, timeout=60)
        poll = Connection("127.0.0.1", self.server.port, timeout=60)
        print(f"episodes: sending the calm history of {len(data['episodes'])} patients …")
        for case in data["episodes"]:
            status, _h, body = post.request(
                readings_request(self.host, case["key"], case["history"]), retry_safe=False
            )
            if status != 202:
                raise RuntimeError(f"history upload answered {status}: {body[:300]!r}")
        if self.drain(db, 120) is None:
            raise RuntimeError("the workers did not apply the episodes' history within 120 s")
        early = []  # alerts raised by the calm history: false alerts (or a device's)
        for case in data["episodes"]:
            case["before"] = self.flags_of(poll, case["patient"])
            early += [f"{case['kind']} patient: {text}" for text in case["before"].values()]

        # The baseline, in the same run: the first episodes with no load at all.
        quiet, loaded = data["episodes"][: args.baseline], data["episodes"][args.baseline :]
        baseline = []
        for case in quiet:
            found = self.inject(case, post, poll)
            if found is not None:
                baseline.append(found)
            time.sleep(0.5)
        if self.drain(db, 60) is None:
            raise RuntimeError("the workers did not apply the baseline episodes within 60 s")

        # The load, paced over warm-up + episodes.
        plan = uploads(data["load"], args.batch)
        interval = args.batch / args.rate
        span = args.warmup + args.duration()
        plan = plan[: int(span / interval)]
        if len(plan) * interval < span - 1:
            raise RuntimeError("the simulator gave too few readings for the run (a bug)")
        per_client: list[list] = [[] for _ in range(args.clients)]
        for i, (key, readings) in enumerate(plan):
            per_client[i % args.clients].append(
                (i * interval, readings_request(self.host, key, readings), len(readings))
            )
        ctx = mp.get_context("fork")
        results = ctx.Queue()
        load_start = time.time() + 0.5
        clients = [
            ctx.Process(target=load_client, args=(self.server.port, p, load_start, results))
            for p in per_client
        ]
        for proc in clients:
            proc.start()
        print(
            f"load: {len(plan)} uploads of {args.batch} readings, {args.rate:g}/s over"
            f" {span:.0f} s by {args.clients} clients; episodes after {args.warmup:g} s warm-up",
            flush=True,
        )
        time.sleep(max(0.0, load_start + args.warmup - time.time()))

        if args.nice:  # the bench database's backends too, now that the load opened them
            for pid in _postgres_pids(args.db_name):
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, pid, args.nice)
        before, busy0, clock0 = worker_totals(self.stats_dir), _machine_busy(), time.monotonic()
        load_avg = [os.getloadavg()[0]]
        delays: list[tuple[str, float]] = []
        missed: list[tuple[str, str]] = []
        for k, case in enumerate(loaded):
            slot = load_start + args.warmup + k * args.every
            time.sleep(max(0.0, slot - time.time()))
            found = self.inject(case, post, poll)
            if found is None:
                missed.append((case["kind"], case["patient"]))
            else:
                delays.append((case["kind"], found))
        after, busy1, clock1 = worker_totals(self.stats_dir), _machine_busy(), time.monotonic()
        load_avg.append(os.getloadavg()[0])

        tallies = [results.get(timeout=span + 120) for _ in clients]
        for proc in clients:
            proc.join(timeout=10)
        backlog = self.backlog(db)
        drained = self.drain(db, args.drain_timeout)
        # An episode with no Flag in time: raised late (queued behind the load) or never?
        shown = {c["patient"]: set(c["before"]) for c in loaded}
        still = [(k, p) for k, p in missed if not set(self.flags_of(poll, p)) - shown[p]]
        never = [k for k, _p in still]
        with db.cursor() as cur:  # what the twin made of those: no alert was due?
            for kind, patient in still:
                cur.execute(
                    "SELECT news2->>'total', state->'latest' FROM twins_patient_twin"
                    " WHERE patient_id = %s",
                    [patient],
                )
                row = cur.fetchone()
                if row:
                    latest = {k: v["value"] for k, v in (row[1] or {}).items()}
                    print(
                        f"  {kind} of Patient/{patient}: no Flag; NEWS2 {row[0]}, latest {latest}"
                    )
        db.close()
        post.close()
        poll.close()
        return self.report(
            delays, baseline, [k for k, _p in missed], never, early, tallies, before, after,
            (busy0, busy1), clock1 - clock0, load_avg, backlog, drained, span,
        )  # fmt: skip

    def report(
        self, delays, baseline, missed, never, early, tallies, before, after, busy, seconds, load_avg, backlog,
        drained, span,
    ) -> int:  # fmt: skip
        args = self.args
        ok = True
        accepted = sum(t["accepted"] for t in tallies)
        sent = sum(t["sent"] for t in tallies)
        errors = [e for t in tallies for e in t["errors"]]
        late = max((t["late"] for t in tallies), default=0.0)
        machine = (busy[1][0] - busy[0][0]) / max(busy[1][1] - busy[0][1], 1) * os.cpu_count()
        print()
        print(
            f"load: {accepted:,} of {sent:,} readings accepted over {span:.0f} s ="
            f" {accepted / span:,.0f} readings/s (asked {args.rate:g}/s; the latest upload"
            f" went {late:.2f} s behind its plan)"
        )
        if errors or accepted != sent:
            ok = False
            print(f"  upload errors: {len(errors)}; first: {errors[:3]}")
        values = [d for _k, d in delays]
        print(
            f"episodes: {len(delays)} of {len(delays) + len(missed)} Flags found"
            f" (polled every {args.poll * 1000:.0f} ms), {len(early)} Flags before their episode"
            + (f" ({'; '.join(early)})" if early else "")
        )
        # A Flag that came after --give-up counts in p99 as late as that; an episode that raised
        # none at all (the twin's values are printed above: e.g. a crisis that peaked at 180
        # mm[Hg], not above it) is left out of the percentiles and listed.
        late = len(missed) - len(never)
        values += [math.inf] * late
        if values:
            p50, p99 = statistics.median(values), percentile(values, 0.99)
            print(
                f"  reading accepted → Flag found: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
                f" max {max(values) * 1000:.0f} ms over {len(values)} episodes (target p99 ≤ {TARGET_P99 * 1000:.0f} ms:"
                f" {'met' if p99 <= TARGET_P99 else 'NOT met'})"
            )
            if baseline:
                quiet = statistics.median(baseline)
                print(
                    f"  baseline, same run, no load ({len(baseline)} episodes): p50"
                    f" {quiet * 1000:.0f} ms; under load p50 {p50 / quiet:.1f}×, p99"
                    f" {p99 / quiet:.1f}× the baseline"
                )
            for kind in KINDS:
                mine = [d for k, d in delays if k == kind]
                if mine:
                    print(
                        f"    {kind:<20} n={len(mine):<3} p50 {statistics.median(mine) * 1000:.0f} ms"
                        f"  max {max(mine) * 1000:.0f} ms"
                    )
        if late:
            ok = False
            print(
                f"  no Flag within {args.give_up:g} s: {', '.join(missed)}; of these, still none"
                f" once the workers caught up: {', '.join(never) or 'none'}"
            )
        tasks = after["tasks"] - before["tasks"]
        rows = after["rows"] - before["rows"]
        cpu = after["cpu"] - before["cpu"]
        wall = after["wall"] - before["wall"]
        if rows:
            per = cpu / rows * 1000
            print(
                f"twin update (in the workers, while episodes ran): {tasks:,} refreshes applied"
                f" {rows:,} Observations ({rows / max(tasks, 1):.1f} per refresh) in {cpu:.2f} CPU s"
                f" ({wall:.2f} s wall): {per:.3f} ms CPU per Observation (target ≤"
                f" {TARGET_MS_PER_READING} ms: {'met' if per <= TARGET_MS_PER_READING else 'NOT met'})"
            )
        else:
            print("twin update: no refresh applied anything while episodes ran")
        print(
            f"backlog at the end of the load: {backlog:,} Observations not yet applied;"
            + (
                f" drained in {drained:.1f} s"
                if drained is not None
                else f" NOT drained in {args.drain_timeout:g} s"
            )
        )
        if drained is None:
            ok = False
        print(
            f"machine: load average {load_avg[0]:.2f} → {load_avg[1]:.2f}, {machine:.2f} of"
            f" {os.cpu_count()} cores busy while episodes ran ({seconds:.0f} s)"
        )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "readings_per_s": accepted / span,
                        "delays_s": delays,
                        "baseline_s": baseline,
                        "missed": missed,
                        "never": never,
                        "early": early,
                        "p50_s": statistics.median(values) if values else None,
                        "p99_s": percentile(values, 0.99) if values else None,
                        "refreshes": tasks,
                        "observations_applied": rows,
                        "cpu_s": cpu,
                        "ms_per_observation": cpu / rows * 1000 if rows else None,
                        "backlog": backlog,
                        "drained_s": drained,
                        "load_average": load_avg,
                        "machine_cores_busy": machine,
                    },
                    indent=2,
                )
            )
        return 0 if ok else 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rate", type=float, default=1000.0, help="readings/s of the load (1000)")
    p.add_argument("--patients", type=int, default=40, help="patients of the load (40)")
    p.add_argument("--batch", type=int, default=100, help="readings per upload (100)")
    p.add_argument("--clients", type=int, default=4, help="HTTP client processes (4)")
    p.add_argument("--episodes", type=int, default=30, help="deterioration episodes (30)")
    p.add_argument("--every", type=float, default=1.5, help="seconds between episodes (1.5)")
    p.add_argument(
        "--baseline",
        type=int,
        default=4,
        help="episodes more, injected before the load: the no-load baseline of the run (4)",
    )
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of load first (10)")
    p.add_argument("--poll", type=float, default=0.02, help="seconds between Flag searches")
    p.add_argument("--give-up", type=float, default=10.0, help="seconds to wait for a Flag (10)")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument(
        "--worker-concurrency",
        type=int,
        default=4,
        help="worker processes (4: a refresh waits on the database more than it computes)",
    )
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--broker-url",
        default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
        help="Celery broker (a queue of the run's own is made there and deleted at the end)",
    )
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument of python -m dth_project.serve, repeatable"
        " (e.g. --server-arg=--workers=3)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server, the worker and the database's backends at this nice value (e.g."
        " -10, as root: a measure of the service on a busy shared machine)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to make the bench database on (maintenance database)",
    )
    p.add_argument("--db-name", default="clouddth_bench_alerts")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    p.add_argument("--server-log", default=str(ROOT / "var" / "bench-alerts-server.log"))
    p.add_argument("--worker-log", default=str(ROOT / "var" / "bench-alerts-worker.log"))
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--internal-setup", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--internal-worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.internal_worker is not None:
        return args
    if min(args.rate, args.patients, args.batch, args.clients, args.episodes) <= 0:
        p.error("rates, sizes and counts must be positive")
    for url in (args.pg_url, args.broker_url):
        if (urllib.parse.urlsplit(url).hostname or "") not in LOOPBACK:
            p.error(f"{url}: only loopback addresses are benchmarked (127.0.0.1, localhost, ::1)")
    args.duration = lambda: args.episodes * args.every + args.give_up
    args.tasks = None  # OwnServer: the Celery settings are the bench's own (above)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.internal_setup:
        internal_setup(args.internal_setup[0], *map(int, args.internal_setup[1:]))
        return 0
    if args.internal_worker is not None:
        internal_worker(args.internal_worker[0], args.internal_worker[1:])
        return 0
    Path(args.server_log).parent.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} at start ({os.cpu_count()} cores)", flush=True)
    bench = Bench(args)
    try:
        bench.start()
        return bench.run()
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
