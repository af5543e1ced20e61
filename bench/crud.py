#!/usr/bin/env python
"""CRUD throughput of the production server: creates/s, reads/s and a 50/50 mix, with latency.

    .venv/bin/python bench/crud.py                      # own database and server, 10 s each
    .venv/bin/python bench/crud.py --duration 20 --repeat 3
    .venv/bin/python bench/crud.py --url http://127.0.0.1:8000 --token T \\
        --database-url postgres://postgres@127.0.0.1:5432/clouddth

By default it drops and re-creates a PostgreSQL database (``clouddth_bench``), migrates it,
issues a token, starts the production server (``python -m dth_project.serve``) on a free
loopback port, runs the workloads and stops the server (and drops the database unless
``--keep-db``). With ``--url`` and ``--token`` it drives a server that is already running
instead.

Workloads, each ``--duration`` seconds with ``--clients`` concurrent clients (processes, each
with one persistent keep-alive HTTP/1.1 connection and a minimal HTTP client, so that the load
generator costs little of the CPU it shares with the server):

- create: POST vital-sign Observations (heart rate, LOINC 8867-4, UCUM /min) about a Patient
  made at start, and one Patient (with an MRN identifier) in ten;
- read: GET of resources made by the create workload, chosen at random;
- mix: each request a read or a create with equal chance;
- psycopg2: the floor for a read, the same ids read straight from PostgreSQL with
  ``SELECT content FROM fhir_resource WHERE resource_type=%s AND logical_id=%s`` over the same
  number of connections, and the ratio of HTTP reads/s to it.

Only loopback addresses are accepted; every loop stops at its deadline or request cap. The exit
status is 1 when any request failed (a non-2xx answer or a connection error), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common import (  # bench/ is not a package: its directory is on sys.path
    CLK_TCK,
    ROOT,
    _children,
    _machine_busy,
    _postgres_pids,
    _ticks,
    free_port,
    issue_token,
    manage,
    percentile,
    recreate_database,
    renice,
    set_autogroup_nice,
    start_server,
    stop_server,
    with_dbname,
)

FHIR_JSON = "application/fhir+json"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
TARGETS = {"read": 2000.0, "create": 800.0}


# --- A minimal HTTP/1.1 keep-alive client -------------------------------------------------------


class HTTPError(Exception):
    pass


class Connection:
    """One persistent HTTP/1.1 connection; requests are prebuilt bytes, answers parsed lightly."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.addr = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self.buf = None, b""

    def _connect(self) -> None:
        sock = socket.create_connection(self.addr, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buf += chunk

    def request(self, raw: bytes, *, retry_safe: bool) -> tuple[int, dict[bytes, bytes], bytes]:
        reused = self.sock is not None
        if not reused:
            self._connect()
        try:
            self.sock.sendall(raw)
            while b"\r\n\r\n" not in self.buf:
                self._fill()
        except (ConnectionError, BrokenPipeError):
            self.close()
            # A kept-alive connection the server had already closed: nothing was processed.
            if reused and retry_safe:
                return self.request(raw, retry_safe=False)
            raise
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            while len(self.buf) < length:
                self._fill()
            body, self.buf = self.buf[:length], self.buf[length:]
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = self._chunked()
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # body runs to the end of the connection
            while True:
                try:
                    self._fill()
                except ConnectionResetError:
                    break
            body = self.buf
            self.close()
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, body

    def _chunked(self) -> bytes:
        parts = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size_line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self._fill()
            if size == 0:
                # No trailers are expected; skip up to the blank line.
                while not self.buf.startswith(b"\r\n") and b"\r\n\r\n" not in self.buf:
                    self._fill()
                self.buf = (
                    self.buf.split(b"\r\n", 1)[1]
                    if self.buf.startswith(b"\r\n")
                    else (self.buf.split(b"\r\n\r\n", 1)[1])
                )
                return b"".join(parts)
            parts.append(self.buf[:size])
            self.buf = self.buf[size + 2 :]


def build_request(
    method: str, host: str, path: str, token: str, body: bytes | None = None
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        f"Authorization: Bearer {token}",
        f"Accept: {FHIR_JSON}",
        "User-Agent: clouddth-bench",
    ]
    if body is not None:
        lines += [f"Content-Type: {FHIR_JSON}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


# --- Payloads ----------------------------------------------------------------------------------

FAMILIES = ["Smith", "Okafor", "García", "Nguyen", "Müller", "Kowalski", "Haddad", "Tanaka"]
GIVENS = ["Ada", "Kwame", "Lucía", "Minh", "Jonas", "Zofia", "Layla", "Hiro"]


def heart_rate(rng: random.Random, patient_ref: str) -> dict:
    """A heart-rate vital sign as a device gateway would post it (vitalsigns profile shape)."""
    when = time.gmtime(time.time() - rng.randint(0, 30 * 86400))
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ],
                "text": "Vital Signs",
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "text": "Heart rate",
        },
        "subject": {"reference": patient_ref},
        "effectiveDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", when),
        # A decimal with a trailing zero: FHIR keeps its precision, so must the server.
        "valueQuantity": {
            "value": "@@VALUE@@",
            "unit": "beats/minute",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def patient(rng: random.Random) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "system": "urn:oid:2.16.840.1.113883.19.5",
                "value": f"MRN-{rng.randrange(10**9):09d}",
            }
        ],
        "active": True,
        "name": [
            {"use": "official", "family": rng.choice(FAMILIES), "given": [rng.choice(GIVENS)]}
        ],
        "gender": rng.choice(["female", "male", "other", "unknown"]),
        "birthDate": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }


def observation_body(rng: random.Random, patient_ref: str) -> bytes:
    text = json.dumps(heart_rate(rng, patient_ref), ensure_ascii=False, separators=(",", ":"))
    value = f"{rng.randint(48, 140)}.{rng.randint(0, 9)}0"  # e.g. 72.50
    return text.replace('"@@VALUE@@"', value).encode()


def patient_body(rng: random.Random) -> bytes:
    return json.dumps(patient(rng), ensure_ascii=False, separators=(",", ":")).encode()


# --- Workers -----------------------------------------------------------------------------------


@dataclass
class Target:
    host: str
    port: int
    token: str
    database_url: str | None
    host_header: str = ""
    patient_ref: str = ""
    nice: int = 0


@dataclass
class Result:
    """What one client did in one workload."""

    ok: Counter = field(default_factory=Counter)  # kind -> count of 2xx answers
    errors: Counter = field(default_factory=Counter)  # description -> count
    latency: dict = field(default_factory=dict)  # kind -> array of seconds
    ids: list = field(default_factory=list)  # "Type/id" made by creates
    elapsed: float = 0.0
    cpu: float = 0.0


def _create_requests(target: Target, rng: random.Random, n: int) -> list[tuple[bytes, str]]:
    reqs = []
    for i in range(n):
        if i % 10 == 9:
            reqs.append(
                (
                    build_request(
                        "POST", target.host_header, "/fhir/Patient", target.token, patient_body(rng)
                    ),
                    "Patient",
                )
            )
        else:
            body = observation_body(rng, target.patient_ref)
            reqs.append(
                (
                    build_request(
                        "POST", target.host_header, "/fhir/Observation", target.token, body
                    ),
                    "Observation",
                )
            )
    return reqs


def _id_from_location(headers: dict[bytes, bytes], rtype: str) -> str:
    location = headers.get(b"location", b"").decode()
    path = urllib.parse.urlsplit(location).path
    parts = path.split("/")
    i = parts.index(rtype)
    return f"{rtype}/{parts[i + 1]}"


def run_http(target: Target, cmd: dict) -> Result:
    kind, start, deadline, cap = cmd["kind"], cmd["start"], cmd["deadline"], cmd["max_requests"]
    rng = random.Random(cmd["seed"])
    res = Result(latency={"create": array("d"), "read": array("d")})
    conn = Connection(target.host, target.port)
    creates = _create_requests(target, rng, 256) if kind in ("create", "mix") else []
    ids = cmd["ids"]
    reads = (
        [
            build_request("GET", target.host_header, f"/fhir/{i}", target.token)
            for i in (rng.choice(ids) for _ in range(2048))
        ]
        if ids and kind in ("read", "mix")
        else []
    )
    if kind in ("read", "mix") and not reads:
        raise RuntimeError("no resources to read: the create workload made none")
    lat_c, lat_r, ok, errors, made = (
        res.latency["create"],
        res.latency["read"],
        res.ok,
        res.errors,
        res.ids,
    )
    perf = time.perf_counter
    cpu0 = time.process_time()
    # Wait for the common start so that every client's window is the same.
    while (delay := start - time.time()) > 0:
        time.sleep(min(delay, 0.05))
    t_start = perf()
    end = t_start + (deadline - start)
    n = ci = ri = 0
    while n < cap:
        now = perf()
        if now >= end:
            break
        is_create = kind == "create" or (kind == "mix" and rng.random() < 0.5)
        if is_create:
            raw, rtype = creates[ci % len(creates)]
            ci += 1
        else:
            raw = reads[ri % len(reads)]
            ri += 1
        try:
            status, headers, body = conn.request(raw, retry_safe=not is_create)
        except (OSError, ValueError, IndexError) as exc:
            errors[f"{type(exc).__name__}: {exc}"] += 1
            conn.close()
            n += 1
            continue
        t = perf() - now
        n += 1
        if 200 <= status < 300:
            if is_create:
                ok["create"] += 1
                lat_c.append(t)
                if len(made) < 50_000:
                    made.append(_id_from_location(headers, rtype))
            else:
                ok["read"] += 1
                lat_r.append(t)
        else:
            errors[f"HTTP {status} on {'create' if is_create else 'read'}: {body[:200]!r}"] += 1
    res.elapsed = perf() - t_start
    res.cpu = time.process_time() - cpu0
    conn.close()
    return res


_pg_conn = None


def run_pg(target: Target, cmd: dict) -> Result:
    import psycopg2

    start, deadline, cap = cmd["start"], cmd["deadline"], cmd["max_requests"]
    rng = random.Random(cmd["seed"])
    res = Result(latency={"read": array("d")})
    keys = [tuple(rng.choice(cmd["ids"]).split("/", 1)) for _ in range(2048)]
    global _pg_conn
    if _pg_conn is None:  # kept open across runs, as the server keeps its connections
        _pg_conn = psycopg2.connect(target.database_url)
        _pg_conn.autocommit = True  # like Django outside atomic(): no BEGIN/COMMIT for a read
        if target.nice:
            with _pg_conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                os.setpriority(os.PRIO_PROCESS, cur.fetchone()[0], target.nice)
    cur = _pg_conn.cursor()
    sql = "SELECT content FROM fhir_resource WHERE resource_type=%s AND logical_id=%s"
    lat = res.latency["read"]
    perf = time.perf_counter
    cpu0 = time.process_time()
    while (delay := start - time.time()) > 0:
        time.sleep(min(delay, 0.05))
    t_start = perf()
    end = t_start + (deadline - start)
    n = 0
    while n < cap:
        now = perf()
        if now >= end:
            break
        cur.execute(sql, keys[n % len(keys)])
        row = cur.fetchone()
        n += 1
        if row is None:
            res.errors["psycopg2: row not found"] += 1
            continue
        lat.append(perf() - now)
        res.ok["read"] += 1
    res.elapsed = perf() - t_start
    res.cpu = time.process_time() - cpu0
    cur.close()
    return res


def worker_main(pipe, target: Target) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    if target.nice:
        os.setpriority(os.PRIO_PROCESS, 0, target.nice)
    while True:
        cmd = pipe.recv()
        if cmd is None:
            if _pg_conn is not None:
                _pg_conn.close()
            return
        if cmd["kind"] == "patient_ref":
            target.patient_ref = cmd["value"]
            pipe.send(None)
            continue
        try:
            res = run_pg(target, cmd) if cmd["kind"] == "pg" else run_http(target, cmd)
        except Exception as exc:  # report, never hang the parent
            res = Result(errors=Counter({f"client crashed: {type(exc).__name__}: {exc}": 1}))
        pipe.send(res)


class Clients:
    """A pool of client processes, each driven through its own pipe."""

    def __init__(self, n: int, target: Target) -> None:
        ctx = mp.get_context("fork")
        self.pipes, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, target), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def broadcast(self, cmd: dict) -> list:
        for pipe in self.pipes:
            pipe.send(cmd)
        return [pipe.recv() for pipe in self.pipes]

    def run(self, kind: str, duration: float, ids: list[str], max_requests: int) -> list[Result]:
        start = time.time() + 0.3
        results = []
        for i, pipe in enumerate(self.pipes):
            pipe.send(
                {
                    "kind": kind,
                    "start": start,
                    "deadline": start + duration,
                    "ids": ids,
                    "max_requests": max_requests,
                    "seed": secrets.randbits(64) + i,
                }
            )
        for pipe in self.pipes:
            if not pipe.poll(duration + 120):
                raise RuntimeError(f"a client did not finish the {kind} workload")
            results.append(pipe.recv())
        return results

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


class CPUMeter:
    """CPU seconds used by the server's processes, PostgreSQL and the whole machine."""

    def __init__(self, server_pid: int | None, database: str | None, nice: int = 0) -> None:
        self.server_pid = server_pid
        self.database = database
        self.nice = nice

    def renice(self) -> None:
        """Give the database's backends (the server's connections) the bench's priority."""
        if self.nice and self.database:
            renice(_postgres_pids(self.database), self.nice)

    def snapshot(self) -> dict:
        server = {}
        if self.server_pid:
            for pid in [self.server_pid, *_children(self.server_pid)]:
                server[pid] = _ticks(pid)
        pg = {pid: _ticks(pid) for pid in _postgres_pids(self.database)}
        busy, total = _machine_busy()
        return {"server": server, "pg": pg, "busy": busy, "total": total}

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        def used(key):
            return sum(t - a[key].get(pid, 0) for pid, t in b[key].items()) / CLK_TCK

        return {
            "server": used("server") if b["server"] else None,
            "postgres": used("pg"),
            "machine": (b["busy"] - a["busy"]) / CLK_TCK,
            "ncpu": (b["total"] - a["total"]) / CLK_TCK,
        }


# --- Running a workload and summarising it -----------------------------------------------------


@dataclass
class Summary:
    kind: str
    rate: dict  # kind of request -> per second
    p50: dict  # kind -> ms
    p99: dict
    errors: Counter
    wall: float
    client_cpu: float  # cores
    server_cpu: float | None
    pg_cpu: float
    machine_cpu: float  # cores busy, whoever used them
    server_ms: float | None  # server CPU milliseconds per request: robust to a noisy machine
    pg_ms: float
    ids: list


def summarise(kind: str, results: list[Result], cpu: dict, duration: float) -> Summary:
    wall = max((r.elapsed for r in results), default=0.0) or duration
    ok, errors, lat, ids = Counter(), Counter(), {}, []
    for r in results:
        ok.update(r.ok)
        errors.update(r.errors)
        ids.extend(r.ids)
        for k, v in r.latency.items():
            lat.setdefault(k, []).extend(v)
    rate = {k: ok[k] / wall for k in ok}
    p50 = {k: percentile(v, 0.50) * 1000 for k, v in lat.items() if v}
    p99 = {k: percentile(v, 0.99) * 1000 for k, v in lat.items() if v}
    done = sum(ok.values())
    ncpu_wall = cpu["ncpu"] / (os.cpu_count() or 1) or wall
    return Summary(
        kind=kind,
        rate=rate,
        p50=p50,
        p99=p99,
        errors=errors,
        wall=wall,
        client_cpu=sum(r.cpu for r in results) / wall,
        server_cpu=None if cpu["server"] is None else cpu["server"] / ncpu_wall,
        pg_cpu=cpu["postgres"] / ncpu_wall,
        machine_cpu=cpu["machine"] / ncpu_wall,
        server_ms=None if cpu["server"] is None or not done else cpu["server"] / done * 1000,
        pg_ms=cpu["postgres"] / done * 1000 if done else float("nan"),
        ids=ids,
    )


def run_workload(
    clients: Clients, meter: CPUMeter, kind: str, duration: float, ids: list[str], max_requests: int
) -> Summary:
    meter.renice()
    before = meter.snapshot()
    results = clients.run(kind, duration, ids, max_requests)
    after = meter.snapshot()
    return summarise(kind, results, CPUMeter.delta(before, after), duration)


# --- Setting up a server of our own ------------------------------------------------------------


class OwnServer:
    """A fresh database, migrated, a token, and the production server on it."""

    def __init__(self, args) -> None:
        self.args = args
        self.db_url = with_dbname(args.pg_url, args.db_name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = None
        self.env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "REQUIRE_POSTGRES": "1",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FHIR_BASE_URL": "",
            "PORT": str(self.port),
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        # None (another bench's arguments): the environment's Celery settings as they are.
        self.tasks = getattr(args, "tasks", None)
        if self.tasks == "broker":
            self.env["CELERY_BROKER_URL"] = args.broker_url
        elif self.tasks == "eager":  # no broker: tasks (twin refreshes) run inside the request
            self.env.pop("CELERY_BROKER_URL", None)

    def purge_tasks(self) -> None:
        """Drop queued tasks, so that no worker ever runs the bench's against a dropped database."""
        if self.tasks != "broker":
            return
        out = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "dth_project", "purge", "-f"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"cannot purge the Celery queue at {self.args.broker_url} (is the broker up? or"
                f" use --tasks eager):\n{out.stdout}{out.stderr}"
            )

    def manage(self, *argv: str) -> str:
        return manage(self.env, *argv)

    def start(self) -> str:
        print(f"database {self.args.db_name}: dropping, creating, migrating …", flush=True)
        recreate_database(self.args.pg_url, self.args.db_name)
        self.manage("migrate", "--noinput")
        self.purge_tasks()
        token = issue_token(self.env, "bench/crud.py")
        self.proc, self.log = start_server(
            self.env,
            self.port,
            self.args.server_arg,
            self.args.server_log,
            token,
            nice=getattr(self.args, "nice", 0),
        )
        return token

    def stop(self) -> None:
        stop_server(self.proc, self.log)
        with contextlib.suppress(Exception):
            self.purge_tasks()
        if not self.args.keep_db:
            with contextlib.suppress(Exception):
                recreate_database(self.args.pg_url, self.args.db_name, drop_only=True)


def analyze(database_url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ANALYZE")
    conn.close()


def make_patient(target: Target) -> str:
    conn = Connection(target.host, target.port)
    status, headers, body = conn.request(
        build_request(
            "POST",
            target.host_header,
            "/fhir/Patient",
            target.token,
            patient_body(random.Random(1)),
        ),
        retry_safe=False,
    )
    conn.close()
    if status != 201:
        raise RuntimeError(f"could not create the subject Patient: HTTP {status} {body[:300]!r}")
    return _id_from_location(headers, "Patient")


# --- Report ------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".0f") -> str:
    if value is None or value != value:
        return "-"
    return format(value, spec)


def report(runs: list[dict[str, Summary]], args) -> dict:
    """Print each run's table (or the median of each figure over runs); return the medians."""

    def med(workload: str, getter) -> float | None:
        values = [getter(run[workload]) for run in runs if workload in run]
        values = [v for v in values if v is not None and v == v]
        return statistics.median(values) if values else None

    rows = [
        ("create", "create", "create"),
        ("read", "read", "read"),
        ("mix: all", "mix", None),
        ("  mix: reads", "mix", "read"),
        ("  mix: creates", "mix", "create"),
        ("psycopg2 read", "pg", "read"),
    ]
    title = f"median of {len(runs)} runs" if len(runs) > 1 else "1 run"
    print()
    print(f"CRUD benchmark: {args.clients} clients, {args.duration:g} s per workload, {title}")
    if not args.url:
        if args.nice:
            print(f"server, clients and database backends at nice {args.nice}")
        print(
            "server: python -m dth_project.serve"
            + (" " + " ".join(args.server_arg) if args.server_arg else "")
            + "; Celery tasks "
            + (
                f"queued to {args.broker_url}, not run"
                if args.tasks == "broker"
                else "run eagerly in the request"
            )
        )
    head = (
        f"{'workload':<16}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'client':>8}{'server':>8}{'postgres':>9}{'machine':>9}{'srv ms':>8}{'pg ms':>7}"
    )
    print(head)
    print("-" * len(head))
    figures = {}
    for label, workload, kind in rows:
        if not any(workload in run for run in runs):
            continue

        def total(s):
            return sum(s.rate.values())

        rate = med(workload, (lambda s, k=kind: s.rate.get(k, 0.0)) if kind else total)
        p50 = med(workload, lambda s, k=kind: s.p50.get(k)) if kind else None
        p99 = med(workload, lambda s, k=kind: s.p99.get(k)) if kind else None
        figures[label.strip()] = {"rate": rate, "p50_ms": p50, "p99_ms": p99}
        line = f"{label:<16}{fmt(rate):>9}{fmt(p50, '.2f'):>9}{fmt(p99, '.2f'):>9}"
        if not label.startswith("  "):
            errs = med(workload, lambda s: sum(s.errors.values()))
            line += (
                f"{fmt(errs):>8}{fmt(med(workload, lambda s: s.client_cpu), '.2f'):>8}"
                f"{fmt(med(workload, lambda s: s.server_cpu), '.2f'):>8}"
                f"{fmt(med(workload, lambda s: s.pg_cpu), '.2f'):>9}"
                f"{fmt(med(workload, lambda s: s.machine_cpu), '.2f'):>9}"
                f"{fmt(med(workload, lambda s: s.server_ms), '.2f'):>8}"
                f"{fmt(med(workload, lambda s: s.pg_ms), '.2f'):>7}"
            )
            figures[label.strip()]["server_cpu_ms_per_req"] = med(workload, lambda s: s.server_ms)
        print(line)
    print(
        "client/server/postgres/machine: CPU cores busy during the workload, of "
        f"{os.cpu_count()} (postgres: the backends of the database; machine: everything, other"
        " users included);\n"
        "srv ms, pg ms: CPU milliseconds per request in the server's processes and in PostgreSQL"
    )
    read, floor = figures.get("read", {}).get("rate"), figures.get("psycopg2 read", {}).get("rate")
    if read and floor:
        figures["ratio"] = read / floor
        print(f"HTTP reads/s ÷ psycopg2 reads/s: {read / floor:.2f}")
    for kind, target in TARGETS.items():
        got = figures.get(kind, {}).get("rate")
        if got is not None:
            verdict = "met" if got >= target else f"NOT met ({got / target - 1:+.0%})"
            print(f"target {kind} ≥ {target:,.0f}/s: {verdict}")
    errors = Counter()
    for run in runs:
        for s in run.values():
            errors.update(s.errors)
    if errors:
        print("\nerrors:")
        for what, n in errors.most_common(10):
            print(f"  {n:>7} x {what}")
    return {"figures": figures, "errors": sum(errors.values())}


# --- Main --------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--url", help="a running server (e.g. http://127.0.0.1:8000); default: start one"
    )
    p.add_argument("--token", help="bearer token for --url")
    p.add_argument("--database-url", help="its PostgreSQL, for the psycopg2 floor (with --url)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per workload (10)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured mix first (3)")
    p.add_argument("--repeat", type=int, default=1, help="runs of all workloads; medians shown (1)")
    p.add_argument(
        "--max-requests",
        type=int,
        default=200_000,
        help="cap on requests per client per workload (200000)",
    )
    p.add_argument(
        "--workloads",
        default="create,read,mix,pg",
        help="comma list of create, read, mix, pg (create,read,mix,pg)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to make the bench database on (maintenance database)",
    )
    p.add_argument(
        "--db-name", default="clouddth_bench", help="database to (re)create (clouddth_bench)"
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server, the clients and the database's backends at this nice value (e.g."
        " -10, as root): on a shared machine other work then disturbs the figures less (0)",
    )
    p.add_argument(
        "--no-analyze",
        action="store_true",
        help="do not ANALYZE the database after the warm-up (planner statistics of empty tables)",
    )
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument of python -m dth_project.serve, repeatable"
        " (e.g. --server-arg=--workers=3)",
    )
    p.add_argument(
        "--tasks",
        choices=["broker", "eager"],
        default="broker",
        help="own server: Celery tasks (the twin refresh after each Observation) go to"
        " --broker-url and are purged unrun, as in production where workers run them (broker);"
        " or run inside the request, as with no broker configured (eager)",
    )
    p.add_argument(
        "--broker-url",
        default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"),
        help="broker for --tasks broker (redis://127.0.0.1:6379/14)",
    )
    p.add_argument("--server-log", default=str(ROOT / "var" / "bench-server.log"))
    p.add_argument("--json", help="also write the median figures to this file")
    args = p.parse_args(argv)
    if args.url and not args.token:
        p.error("--url needs --token")
    if args.clients < 1 or args.duration <= 0 or args.repeat < 1:
        p.error("--clients, --duration and --repeat must be positive")
    for url in filter(None, [args.url, args.database_url, args.pg_url, args.broker_url]):
        host = urllib.parse.urlsplit(url).hostname or ""
        if host not in LOOPBACK:
            p.error(f"{url}: only loopback addresses are benchmarked (127.0.0.1, localhost, ::1)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    own_group = None
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        own_group = set_autogroup_nice("self", args.nice)
    server = None
    clients = None
    Path(args.server_log).parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.url:
            base, token, db_url, server_pid = args.url, args.token, args.database_url, None
        else:
            server = OwnServer(args)
            token = server.start()
            base, db_url, server_pid = server.url, server.db_url, server.proc.pid
        parts = urllib.parse.urlsplit(base)
        target = Target(
            parts.hostname, parts.port or 80, token, db_url, parts.netloc, nice=args.nice
        )
        if "pg" in workloads and not db_url:
            print("no --database-url: skipping the psycopg2 floor", file=sys.stderr)
            workloads.remove("pg")
        target.patient_ref = make_patient(target)
        clients = Clients(args.clients, target)
        database = urllib.parse.urlsplit(db_url).path.lstrip("/") if db_url else None
        meter = CPUMeter(server_pid, database, args.nice)
        ids = [target.patient_ref]
        if args.warmup > 0:
            print(f"warm-up: {args.warmup:g} s of mix", flush=True)
            warm = run_workload(clients, meter, "mix", args.warmup, ids, args.max_requests)
            ids += warm.ids
        if db_url and not args.no_analyze:
            # The tables were empty when the server planned its first queries; a database in use
            # has statistics (autovacuum takes a minute to gather them), so gather them now.
            print("ANALYZE", flush=True)
            analyze(db_url)
        runs = []
        for i in range(args.repeat):
            run: dict[str, Summary] = {}
            for kind in workloads:
                print(f"run {i + 1}/{args.repeat}: {kind} for {args.duration:g} s …", flush=True)
                s = run_workload(clients, meter, kind, args.duration, ids, args.max_requests)
                ids += s.ids
                run[kind] = s
            runs.append(run)
            if args.repeat > 1:
                print(
                    f"  run {i + 1}: "
                    + ", ".join(f"{k} {sum(s.rate.values()):.0f}/s" for k, s in run.items()),
                    flush=True,
                )
        result = report(runs, args)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return 1 if result["errors"] else 0
    finally:
        if clients is not None:
            clients.close()
        if server is not None:
            server.stop()
        if own_group is not None:
            set_autogroup_nice("self", own_group)


if __name__ == "__main__":
    sys.exit(main())
