#!/usr/bin/env python
"""FHIR search at scale: N patients × M vital-sign Observations, a fixed query mix over HTTP.

    .venv/bin/python bench/search.py                        # 1,000 patients × 1,000 = 1M
    .venv/bin/python bench/search.py --sizes 100k,1M        # both sizes, and how latency grew:
                                                            # 1,000 patients × 100, then × 1,000
    .venv/bin/python bench/search.py --sizes 100k,1M --keep # reuse the databases loaded before
    .venv/bin/python bench/search.py --patients 50 --observations 200   # a quick look
    .venv/bin/python bench/search.py --scale 10M            # 10,000 × 1,000 (not run by default:
                                                            # about 10× the 1M load time and disk)

Loading: for each size a PostgreSQL database of its own (``clouddth_bench_search_1m``, …) is
dropped, created and migrated (``--keep`` reuses it and loads only what is missing), then filled
through ``fhir_api.bulk.create_many`` (COPY), one transaction per patient with its Observations:
heart rate 8867-4, respiratory rate 9279-1, SpO2 2708-6, body temperature 8310-5, blood pressure
panel 85354-9 with systolic 8480-6 and diastolic 8462-4 components, body weight 29463-7, in UCUM
units, category vital-signs, ``effectiveDateTime`` spread over the 90 days before the load,
subject ``Patient/bench-NNNNNN``. Resources are validated as any write is, unless
``--no-validate`` (the output says so). Then ``VACUUM ANALYZE``, as autovacuum would do.

Measuring: the production server (``python -m dth_project.serve``) on each size's database (all
of them up at once), and ``--clients`` (4) concurrent client processes, each with one keep-alive
connection per server, send each query ``--requests`` (200) times in all to each size, each time
for a random patient (and date window). The requests are spread over ``--rounds`` (5) rounds:
in each, every query goes to every size in turn (the order reversed every other round), each
share with the same questions to its floor at once, before it every other round (the second
finds the patients' pages in PostgreSQL's buffers: until session 9 the floor always went
second). A shared machine's speed drifts by half within minutes; measured a minute apart, two
sizes (or a query and its floor) would be measured on two machines, interleaved they share
the drift, and the growth and × floor ratios are the server's own. The sizes share PostgreSQL's caches while they are measured.

  a  Observation?patient=P&code=http://loinc.org|8867-4&date=ge…&date=lt…   (a 30-day window)
  b  Observation/$lastn?patient=P&category=vital-signs
  c  Observation?code-value-quantity=http://loinc.org|8867-4$gt120&_count=50
  c' the same for one patient (patient=P)
  d  Observation?patient=P&code=http://loinc.org|8867-4&_include=Observation:subject
  e  Patient?_has:Observation:patient:code-value-quantity=http://loinc.org|8867-4$gt120
  f  Observation?code=http://loinc.org|8867-4&_summary=count                 (all patients)

For the patient-scoped queries (a, b, c', d) the same question is also put straight to
PostgreSQL in SQL written by hand over the index tables (psycopg2, the same patients, the same
concurrency): the floor, and the ratio of the HTTP latency to it. The floors' answers are
checked against the server's for a few patients first. With several sizes, the growth of each
latency from the smallest size to the largest is printed. Targets (1M, PostgreSQL): patient-
scoped queries and $lastn p50 ≤ 10 ms, p95 ≤ 30 ms, ≤ 3× their floor, growth 100k→1M ≤ 1.5×.

Only loopback PostgreSQL is accepted. The databases are kept for ``--keep`` unless ``--drop``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # bench/ is not a package: its directory is on sys.path
    CLK_TCK,
    ROOT,
    _children,
    _postgres_pids,
    _ticks,
    database_exists,
    free_port,
    issue_token,
    manage,
    percentile,
    pg,
    recreate_database,
    start_server,
    stop_server,
    with_dbname,
)
from crud import LOOPBACK, Connection, build_request

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ],
    "text": "Vital Signs",
}
DAYS = 90
WINDOW_DAYS = 30
TARGETS = {"p50": 10.0, "p95": 30.0, "ratio": 3.0, "growth": 1.5}
PATIENT_SCOPED = ("a", "b", "c'", "d")


# --- Data --------------------------------------------------------------------------------------


def patient_id(i: int) -> str:
    return f"bench-{i:06d}"


def _coding(code: str, display: str) -> dict:
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


def _quantity(value: float, unit: str, code: str, places: int = 0) -> dict:
    return {
        "value": Decimal(f"{value:.{places}f}"),
        "unit": unit,
        "system": UCUM,
        "code": code,
    }


# (LOINC code, display, value maker(rng, baseline) -> valueQuantity or components)
def _heart(rng, b):
    return {"valueQuantity": _quantity(max(35, rng.gauss(b["hr"], 12)), "beats/minute", "/min")}


def _resp(rng, b):
    return {"valueQuantity": _quantity(max(6, rng.gauss(b["rr"], 2.5)), "breaths/minute", "/min")}


def _spo2(rng, b):
    return {"valueQuantity": _quantity(min(100, rng.gauss(b["spo2"], 1.5)), "%", "%")}


def _temp(rng, b):
    return {"valueQuantity": _quantity(rng.gauss(b["temp"], 0.4), "C", "Cel", 1)}


def _bp(rng, b):
    systolic = rng.gauss(b["sys"], 12)
    diastolic = min(systolic - 20, rng.gauss(b["dia"], 8))
    return {
        "component": [
            {
                "code": _coding("8480-6", "Systolic blood pressure"),
                "valueQuantity": _quantity(systolic, "mmHg", "mm[Hg]"),
            },
            {
                "code": _coding("8462-4", "Diastolic blood pressure"),
                "valueQuantity": _quantity(diastolic, "mmHg", "mm[Hg]"),
            },
        ]
    }


def _weight(rng, b):
    return {"valueQuantity": _quantity(rng.gauss(b["kg"], 0.8), "kg", "kg", 1)}


VITALS = [
    ("8867-4", "Heart rate", _heart),
    ("9279-1", "Respiratory rate", _resp),
    ("2708-6", "Oxygen saturation in Arterial blood", _spo2),
    ("8310-5", "Body temperature", _temp),
    ("85354-9", "Blood pressure panel with all children optional", _bp),
    ("29463-7", "Body weight", _weight),
]
FAMILIES = ["Smith", "Okafor", "García", "Nguyen", "Müller", "Kowalski", "Haddad", "Tanaka"]
GIVENS = ["Ada", "Kwame", "Lucía", "Minh", "Jonas", "Zofia", "Layla", "Hiro"]


def patient_resources(i: int, m: int, anchor: datetime) -> list[dict]:
    """Patient ``i`` and its ``m`` Observations: the same every time for the same arguments."""
    rng = random.Random(i)
    pid = patient_id(i)
    out = [
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": f"MRN-{i:09d}"}],
            "active": True,
            "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(GIVENS)]}],
            "gender": rng.choice(["female", "male"]),
            "birthDate": f"{rng.randint(1930, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }
    ]
    baseline = {
        "hr": rng.gauss(80, 10),
        "rr": rng.gauss(16, 2),
        "spo2": rng.gauss(96, 1.5),
        "temp": rng.gauss(36.9, 0.3),
        "sys": rng.gauss(128, 15),
        "dia": rng.gauss(80, 8),
        "kg": rng.gauss(78, 15),
    }
    start = anchor - timedelta(days=DAYS)
    for j in range(m):
        code, display, make = VITALS[j % len(VITALS)]
        when = start + timedelta(seconds=rng.randrange(DAYS * 86400))
        out.append(
            {
                "resourceType": "Observation",
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "status": "final",
                "category": [CATEGORY],
                "code": _coding(code, display),
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                **make(rng, baseline),
            }
        )
    return out


# --- Loading -----------------------------------------------------------------------------------


def _load_worker(env: dict, indices: list[int], m: int, anchor: datetime, validate: bool, queue):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "dth_project.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from fhir_api import bulk

    try:
        for i in indices:
            items = patient_resources(i, m, anchor)
            bulk.create_many(items, validate=validate, keep_ids=True)
            queue.put(("done", len(items)))
    except Exception as exc:  # report, never hang the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    queue.put(("finished", 0))


@dataclass
class Database:
    label: str
    name: str
    url: str
    patients: int
    observations: int
    env: dict = field(default_factory=dict)


def loaded_patients(db: Database) -> set[int]:
    conn = pg(db.url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT logical_id FROM fhir_resource WHERE resource_type = 'Patient'"
            " AND logical_id LIKE 'bench-%%'"
        )
        found = {int(row[0].split("-", 1)[1]) for row in cur.fetchall()}
    conn.close()
    return found


def data_anchor(db: Database) -> datetime:
    """The instant the data's 90 days end at: from the data when some is loaded, else today."""
    conn = pg(db.url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT max(low) FROM fhir_date_index WHERE resource_type = 'Observation'"
            " AND param = 'date'"
        )
        latest = cur.fetchone()[0]
    conn.close()
    if latest is None:
        return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return latest.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )


def load(db: Database, args) -> dict:
    """Make sure the database holds the size's patients; returns what was loaded and how fast."""
    if args.keep and database_exists(args.pg_url, db.name):
        print(f"[{db.label}] database {db.name}: kept, migrating …", flush=True)
    else:
        print(f"[{db.label}] database {db.name}: dropping, creating, migrating …", flush=True)
        recreate_database(args.pg_url, db.name)
    manage(db.env, "migrate", "--noinput", timeout=3600)
    have = loaded_patients(db)
    extra = sorted(i for i in have if i >= db.patients)
    if extra:
        raise SystemExit(
            f"{db.name} holds {len(have)} bench patients, more than the {db.patients} of this"
            " size: run without --keep to start it over"
        )
    missing = [i for i in range(db.patients) if i not in have]
    anchor = data_anchor(db)
    stats = {"loaded_resources": 0, "seconds": 0.0, "rate": None, "validated": args.validate}
    if missing:
        workers = max(1, min(args.load_workers, len(missing)))
        total = len(missing) * (db.observations + 1)
        print(
            f"[{db.label}] loading {len(missing):,} patients × {db.observations:,} Observations"
            f" ({total:,} resources) with {workers} processes through fhir_api.bulk"
            f" (validation {'on' if args.validate else 'OFF: --no-validate'}) …",
            flush=True,
        )
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        procs = [
            ctx.Process(
                target=_load_worker,
                args=(db.env, missing[w::workers], db.observations, anchor, args.validate, queue),
                daemon=True,
            )
            for w in range(workers)
        ]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        done, finished, last = 0, 0, t0
        try:
            while finished < workers:
                try:
                    kind, value = queue.get(timeout=600)
                except Exception:
                    if not any(p.is_alive() for p in procs):
                        raise RuntimeError("the loader processes died") from None
                    continue
                if kind == "error":
                    raise RuntimeError(f"a loader failed: {value}")
                if kind == "finished":
                    finished += 1
                    continue
                done += value
                now = time.perf_counter()
                if now - last >= 15:
                    last = now
                    rate = done / (now - t0)
                    eta = (total - done) / rate if rate else 0
                    print(
                        f"  {done:,}/{total:,} resources, {rate:,.0f}/s, {eta / 60:.1f} min left",
                        flush=True,
                    )
        finally:
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.terminate()
        seconds = time.perf_counter() - t0
        stats.update(loaded_resources=done, seconds=seconds, rate=done / seconds)
        print(
            f"[{db.label}] loaded {done:,} resources in {seconds:,.0f} s: {done / seconds:,.0f}"
            f" resources/s (validation {'on' if args.validate else 'off'})",
            flush=True,
        )
    if missing or args.analyze:
        t0 = time.perf_counter()
        conn = pg(db.url)
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        conn.close()
        print(f"[{db.label}] VACUUM ANALYZE: {time.perf_counter() - t0:,.0f} s", flush=True)
    return stats


def table_sizes(db: Database) -> list[tuple[str, int, int]]:
    conn = pg(db.url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT relname, reltuples::bigint, pg_total_relation_size(oid) FROM pg_class"
            " WHERE relname LIKE 'fhir\\_%%' AND relkind = 'r' ORDER BY 3 DESC"
        )
        rows = cur.fetchall()
    conn.close()
    return rows


# --- The server --------------------------------------------------------------------------------


class Server:
    """The production server on a database."""

    def __init__(self, db: Database, args) -> None:
        self.db, self.args = db, args
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = None
        self.env = {**db.env, "PORT": str(self.port), **args.server_env}

    def start(self) -> str:
        token = issue_token(self.env, "bench/search.py")
        self.proc, self.log = start_server(
            self.env,
            self.port,
            self.args.server_arg,
            self.args.server_log,
            token,
            timeout=90,
            interval=0.3,
        )
        return token

    def stop(self) -> None:
        stop_server(self.proc, self.log)


# --- CPU accounting ----------------------------------------------------------------------------


class Meter:
    """CPU seconds used by the server's processes and by the database's backends.

    On a shared, busy machine wall-clock latency mostly measures the others; CPU per request
    is what this server costs, and it compares with the floor's however busy the machine is.
    """

    def __init__(self, server_pid: int | None, dbname: str) -> None:
        self.server_pid, self.dbname = server_pid, dbname

    def snapshot(self) -> tuple[dict, dict]:
        server = {}
        if self.server_pid:
            server = {p: _ticks(p) for p in [self.server_pid, *_children(self.server_pid)]}
        return server, {p: _ticks(p) for p in _postgres_pids(self.dbname)}

    @staticmethod
    def used(a: tuple[dict, dict], b: tuple[dict, dict]) -> tuple[float, float]:
        def seconds(x: dict, y: dict) -> float:
            return sum(t - x.get(pid, 0) for pid, t in y.items()) / CLK_TCK

        return seconds(a[0], b[0]), seconds(a[1], b[1])


# --- The query mix -----------------------------------------------------------------------------


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="-._~:/")


HR = f"{LOINC}|8867-4"
FAST = f"{HR}$gt120"


@dataclass(frozen=True)
class Ask:
    """One request: the patient and date window it is about."""

    patient: str
    ge: str  # yyyy-mm-dd
    lt: str


def http_path(kind: str, a: Ask) -> str:
    if kind == "a":
        return f"/fhir/Observation?patient={a.patient}&code={q(HR)}&date=ge{a.ge}&date=lt{a.lt}"
    if kind == "b":
        return f"/fhir/Observation/$lastn?patient={a.patient}&category=vital-signs"
    if kind == "c":
        return f"/fhir/Observation?code-value-quantity={q(FAST)}&_count=50"
    if kind == "c'":
        return f"/fhir/Observation?patient={a.patient}&code-value-quantity={q(FAST)}&_count=50"
    if kind == "d":
        return f"/fhir/Observation?patient={a.patient}&code={q(HR)}&_include=Observation:subject"
    if kind == "e":
        return f"/fhir/Patient?_has:Observation:patient:code-value-quantity={q(FAST)}"
    if kind == "f":
        return f"/fhir/Observation?code={q(HR)}&_summary=count"
    raise ValueError(kind)


QUERIES = {
    "a": "patient + code + date range",
    "b": "$lastn patient + category",
    "c": "code-value-quantity > 120, _count=50",
    "c'": "  the same, patient-scoped",
    "d": "patient + code + _include subject",
    "e": "_has:Observation code-value-qty",
    "f": "code, _summary=count (all)",
}

# The floors: the same questions asked of PostgreSQL by hand. Each gives the page (at most 51
# rows, as the server reads one more than it shows) with the total, or $lastn's rows.
_PAGE = """
    SELECT r.logical_id, count(*) OVER () AS total, r.content
    FROM fhir_resource r
    WHERE r.resource_type = 'Observation' AND NOT r.deleted AND {where}
    ORDER BY r.id LIMIT 51
"""
_CODE = """r.id IN (SELECT t.resource_id FROM fhir_token_index t
    WHERE t.patient = %(p)s AND t.resource_type = 'Observation' AND t.param = 'code'
      AND t.code = '8867-4' AND t.system = 'http://loinc.org')"""
_DATE = """r.id IN (SELECT d.resource_id FROM fhir_date_index d
    WHERE d.patient = %(p)s AND d.resource_type = 'Observation' AND d.param = 'date'
      AND d.low >= %(ge)s AND d.low < %(lt)s)"""
_FAST = """r.id IN (SELECT c.resource_id FROM fhir_composite_index c
    WHERE c.patient = %(p)s AND c.resource_type = 'Observation'
      AND c.param = 'code-value-quantity' AND c.c1_code = '8867-4'
      AND c.c1_system = 'http://loinc.org' AND c.c2_value > 120)"""
FLOORS = {
    "a": _PAGE.format(where=f"{_CODE} AND {_DATE}"),
    # $lastn over its own index table (fhir_lastn_index): the patient's codes by a skip scan,
    # then each code's newest row that is a vital sign. (Until session 9 the floor joined the
    # patient's token and date rows, as the operation then did: 10-16 ms at 1M.)
    "b": """
        WITH RECURSIVE keys(code, system, label) AS (
            (SELECT l.code, l.system, l.label FROM fhir_lastn_index l WHERE l.patient = %(p)s
             ORDER BY l.code, l.system, l.label LIMIT 1)
            UNION ALL
            SELECT n.code, n.system, n.label FROM keys k CROSS JOIN LATERAL (
                SELECT l.code, l.system, l.label FROM fhir_lastn_index l
                WHERE l.patient = %(p)s AND (l.code, l.system, l.label) > (k.code, k.system, k.label)
                ORDER BY l.code, l.system, l.label LIMIT 1
            ) n
        )
        SELECT r.logical_id, NULL, r.content
        FROM keys k CROSS JOIN LATERAL (
            SELECT l.resource_id FROM fhir_lastn_index l
            WHERE l.patient = %(p)s AND l.code = k.code AND l.system = k.system
              AND l.label = k.label
              AND EXISTS (SELECT 1 FROM fhir_token_index c WHERE c.resource_id = l.resource_id
                          AND c.resource_type = 'Observation' AND c.param = 'category'
                          AND c.code = 'vital-signs')
            ORDER BY l.low DESC LIMIT 1
        ) x
        JOIN fhir_resource r ON r.id = x.resource_id
    """,
    "c'": _PAGE.format(where=_FAST),
    "d": f"""
        ({_PAGE.format(where=_CODE)})
        UNION ALL
        SELECT logical_id, NULL, content FROM fhir_resource
        WHERE resource_type = 'Patient' AND logical_id = %(p)s AND NOT deleted
    """,
}


# --- Clients -----------------------------------------------------------------------------------

# Each client process keeps one keep-alive connection per server and one per database (with
# several sizes measured in turn, several servers and databases are up at once).
_conns: dict[tuple[str, int], Connection] = {}
_pgs: dict[str, object] = {}
_TOTAL = re.compile(rb'"total":(\d+)')


def _task(job: dict) -> dict:
    """One client's share of a run: HTTP requests or floor statements, timed one by one."""
    lat, errors, totals, entries = [], {}, [], []
    perf = time.perf_counter
    cpu0 = time.process_time()
    if job["mode"] == "http":
        address = (job["host"], job["port"])
        _conn = _conns.get(address)
        if _conn is None:
            _conn = _conns[address] = Connection(*address)
        host, token = job["host_header"], job["token"]
        reqs = [build_request("GET", host, path, token) for path in job["paths"]]
        for raw in reqs:
            t0 = perf()
            try:
                status, _h, body = _conn.request(raw, retry_safe=True)
            except (OSError, ValueError, IndexError) as exc:
                _conn.close()
                key = f"{type(exc).__name__}: {exc}"
                errors[key] = errors.get(key, 0) + 1
                continue
            t = perf() - t0
            if status != 200:
                key = f"HTTP {status}: {body[:300]!r}"
                errors[key] = errors.get(key, 0) + 1
                continue
            lat.append(t)
            m = _TOTAL.search(body[:4096])
            totals.append(int(m.group(1)) if m else -1)
            entries.append(body.count(b'"fullUrl"'))
    else:
        _pg = _pgs.get(job["db_url"])
        if _pg is None:
            _pg = _pgs[job["db_url"]] = pg(job["db_url"])
        cur = _pg.cursor()
        for params in job["params"]:
            t0 = perf()
            cur.execute(job["sql"], params)
            rows = cur.fetchall()
            lat.append(perf() - t0)
            totals.append(rows[0][1] if rows and rows[0][1] is not None else len(rows))
            entries.append(len(rows))
        cur.close()
    return {
        "lat": lat,
        "errors": errors,
        "totals": totals,
        "entries": entries,
        "cpu": time.process_time() - cpu0,
    }


class Clients:
    def __init__(self, n: int) -> None:
        self.n = n
        self.pool = mp.get_context("fork").Pool(n)

    def run(self, jobs: list[dict]) -> dict:
        results = self.pool.map(_task, jobs, chunksize=1)
        out = {"lat": [], "errors": {}, "totals": [], "entries": [], "cpu": 0.0}
        for r in results:
            out["cpu"] += r["cpu"]
            out["lat"].extend(r["lat"])
            out["totals"].extend(r["totals"])
            out["entries"].extend(r["entries"])
            for k, v in r["errors"].items():
                out["errors"][k] = out["errors"].get(k, 0) + v
        return out

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def asks(rng: random.Random, n: int, patients: int, anchor: datetime) -> list[Ask]:
    out = []
    for _ in range(n):
        start = anchor - timedelta(days=DAYS) + timedelta(days=rng.randrange(DAYS - WINDOW_DAYS))
        out.append(
            Ask(
                patient_id(rng.randrange(patients)),
                start.strftime("%Y-%m-%d"),
                (start + timedelta(days=WINDOW_DAYS)).strftime("%Y-%m-%d"),
            )
        )
    return out


def floor_params(a: Ask) -> dict:
    return {"p": a.patient, "ge": f"{a.ge}T00:00:00Z", "lt": f"{a.lt}T00:00:00Z"}


def split(items: list, n: int) -> list[list]:
    return [items[i::n] for i in range(n)]


def http_jobs(kind: str, items: list[Ask], target: dict, n: int) -> list[dict]:
    return [
        {"mode": "http", **target, "paths": [http_path(kind, a) for a in part]}
        for part in split(items, n)
    ]


def floor_jobs(kind: str, items: list[Ask], db_url: str, n: int) -> list[dict]:
    return [
        {
            "mode": "sql",
            "db_url": db_url,
            "sql": FLOORS[kind],
            "params": [floor_params(a) for a in part],
        }
        for part in split(items, n)
    ]


def fetch_json(target: dict, path: str) -> tuple[int, dict | None]:
    conn = Connection(target["host"], target["port"])
    try:
        status, _h, body = conn.request(
            build_request("GET", target["host_header"], path, target["token"]), retry_safe=True
        )
    finally:
        conn.close()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def check_floors(kinds: list[str], target: dict, db_url: str, items: list[Ask]) -> list[str]:
    """The floor must answer what the server answers: same ids on the page, same total."""
    problems = []
    conn = pg(db_url)
    for kind in kinds:
        for a in items:
            status, bundle = fetch_json(target, http_path(kind, a))
            if status != 200 or bundle is None:
                problems.append(f"{kind} {a.patient}: HTTP {status}")
                continue
            got = {
                e["resource"]["id"]
                for e in bundle.get("entry", [])
                if e.get("search", {}).get("mode") in ("match", "include")
            }
            with conn.cursor() as cur:
                cur.execute(FLOORS[kind], floor_params(a))
                rows = cur.fetchall()
            page = (
                rows
                if kind == "b"
                else [r for r in rows if r[1] is None] + [r for r in rows if r[1] is not None][:50]
            )
            want = {r[0] for r in page}
            total = next((r[1] for r in rows if r[1] is not None), None)
            if got != want:
                problems.append(
                    f"{kind} {a.patient}: server {len(got)} resources, floor {len(want)},"
                    f" {len(got ^ want)} differ"
                )
            if total is not None and bundle.get("total") not in (None, total):
                problems.append(f"{kind} {a.patient}: total {bundle.get('total')} vs floor {total}")
    conn.close()
    return problems


@dataclass
class Figures:
    p50: float | None = None
    p95: float | None = None
    floor_p50: float | None = None
    floor_p95: float | None = None
    results: float | None = None  # median total (or entries) per answer
    n: int = 0
    errors: dict = field(default_factory=dict)
    note: str = ""
    server_ms: float | None = None  # CPU ms per request in the server's processes
    pg_ms: float | None = None  # CPU ms per request in PostgreSQL
    floor_ms: float | None = None  # CPU ms per floor statement: PostgreSQL + psycopg2 client

    @property
    def cost(self) -> float | None:
        if self.server_ms is None or self.pg_ms is None:
            return None
        return self.server_ms + self.pg_ms

    @property
    def cost_ratio(self) -> float | None:
        return self.cost / self.floor_ms if self.cost and self.floor_ms else None

    @property
    def ratio50(self) -> float | None:
        return self.p50 / self.floor_p50 if self.p50 and self.floor_p50 else None

    @property
    def ratio95(self) -> float | None:
        return self.p95 / self.floor_p95 if self.p95 and self.floor_p95 else None


def ms(values: list[float], qtl: float) -> float | None:
    return percentile(values, qtl) * 1000 if values else None


class Sized:
    """One size under measurement: its database, its server, and what was measured so far."""

    def __init__(self, db: Database, args) -> None:
        self.db, self.args = db, args
        self.server = Server(db, args)
        self.rng = random.Random(args.seed)
        self.kinds: list[str] = []
        self.lastn = True
        # per query: HTTP and floor latencies, CPU seconds and answer sizes, over every round
        self.acc: dict[str, dict] = {}

    def start(self, clients: Clients) -> None:
        db, args = self.db, self.args
        print(f"[{db.label}] starting the server …", flush=True)
        token = self.server.start()
        self.target = {
            "host": "127.0.0.1",
            "port": self.server.port,
            "host_header": f"127.0.0.1:{self.server.port}",
            "token": token,
        }
        self.anchor = data_anchor(db)
        kinds = [k for k in args.queries.split(",") if k]
        status, _body = fetch_json(self.target, http_path("b", Ask(patient_id(0), "", "")))
        self.lastn = status == 200
        if not self.lastn and "b" in kinds:
            print(f"[{db.label}] $lastn is not answered (HTTP {status}): skipped", flush=True)
            kinds.remove("b")
        self.kinds = kinds
        self.meter = Meter(self.server.proc.pid if self.server.proc else None, db.name)
        # Warm every worker and cache: every query a few times, unmeasured.
        warm = asks(self.rng, args.clients * 5, db.patients, self.anchor)
        for kind in kinds:
            clients.run(http_jobs(kind, warm, self.target, args.clients))
            if kind in FLOORS:
                clients.run(floor_jobs(kind, warm, db.url, args.clients))
        problems = check_floors(
            [k for k in kinds if k in FLOORS],
            self.target,
            db.url,
            asks(random.Random(args.seed + 1), 3, db.patients, self.anchor),
        )
        for p in problems:
            print(f"  floor check: {p}", flush=True)
        for kind in kinds:
            self.acc[kind] = {
                "lat": [],
                "totals": [],
                "entries": [],
                "errors": {},
                "server_s": 0.0,
                "pg_s": 0.0,
                "floor_lat": [],
                "floor_s": 0.0,
            }

    def round(self, clients: Clients, kind: str, n: int, *, floor_first: bool = False) -> None:
        """``n`` requests of ``kind`` over HTTP and the same questions to the floor, the floor
        first if ``floor_first``: the one asked second finds the patients' pages in
        PostgreSQL's buffers, read there by the first, so ``measure`` alternates."""
        items = asks(self.rng, n, self.db.patients, self.anchor)
        steps = [self._http, self._floor] if not floor_first else [self._floor, self._http]
        for step in steps:
            step(clients, kind, items)

    def _http(self, clients: Clients, kind: str, items: list[Ask]) -> None:
        args, acc = self.args, self.acc[kind]
        before = self.meter.snapshot()
        http = clients.run(http_jobs(kind, items, self.target, args.clients))
        server_s, pg_s = Meter.used(before, self.meter.snapshot())
        acc["lat"] += http["lat"]
        acc["totals"] += http["totals"]
        acc["entries"] += http["entries"]
        for k, v in http["errors"].items():
            acc["errors"][k] = acc["errors"].get(k, 0) + v
        acc["server_s"] += server_s
        acc["pg_s"] += pg_s

    def _floor(self, clients: Clients, kind: str, items: list[Ask]) -> None:
        if kind not in FLOORS:
            return
        acc = self.acc[kind]
        before = self.meter.snapshot()
        floor = clients.run(floor_jobs(kind, items, self.db.url, self.args.clients))
        _server, floor_pg = Meter.used(before, self.meter.snapshot())
        acc["floor_lat"] += floor["lat"]
        acc["floor_s"] += floor_pg + floor["cpu"]

    def figures(self) -> dict[str, Figures]:
        figures: dict[str, Figures] = {}
        for kind in QUERIES:
            if kind not in self.kinds:
                note = "not run" if kind != "b" or self.lastn else "no $lastn"
                figures[kind] = Figures(note=note)
                continue
            acc = self.acc[kind]
            lat = acc["lat"]
            f = Figures(
                p50=ms(lat, 0.50),
                p95=ms(lat, 0.95),
                n=len(lat),
                errors=acc["errors"],
                results=statistics.median(
                    [t if t >= 0 else e for t, e in zip(acc["totals"], acc["entries"], strict=True)]
                )
                if lat
                else None,
            )
            if f.n:
                f.server_ms, f.pg_ms = acc["server_s"] / f.n * 1000, acc["pg_s"] / f.n * 1000
            if acc["floor_lat"]:
                f.floor_p50, f.floor_p95 = ms(acc["floor_lat"], 0.50), ms(acc["floor_lat"], 0.95)
                f.floor_ms = acc["floor_s"] / len(acc["floor_lat"]) * 1000
            figures[kind] = f
        return figures

    def stop(self) -> None:
        self.server.stop()


def measure(dbs: list[Database], args) -> list[dict[str, Figures]]:
    """Every size's server up at once, then ``--rounds`` rounds: in each, for every size (in
    turn, the order reversed every other round) and query, a share of its ``--requests`` over
    HTTP and the same questions to its floor (the floor first every other round: whichever
    goes second finds the pages in PostgreSQL's buffers).

    On a shared machine whose speed drifts by half within minutes, a size or a floor measured
    a minute after another is measured on another machine: interleaved, they share its drift,
    and the ratios (× floor, growth) are the server's own."""
    sized = [Sized(db, args) for db in dbs]
    clients = Clients(args.clients)
    try:
        for one in sized:
            one.start(clients)
        kinds = [k for k in QUERIES if any(k in one.kinds for one in sized)]
        shares = split(list(range(args.requests)), args.rounds)
        for r, share in enumerate(shares):
            order = sized if r % 2 == 0 else sized[::-1]
            print(f"  round {r + 1}/{len(shares)}", flush=True)
            for kind in kinds:
                for one in order:
                    if kind in one.kinds and share:
                        one.round(clients, kind, len(share), floor_first=r % 2 == 1)
        return [one.figures() for one in sized]
    finally:
        clients.close()
        for one in sized:
            one.stop()


# --- Report ------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_size(db: Database, figures: dict[str, Figures], stats: dict, args) -> None:
    print()
    print(
        f"== {db.observations * db.patients:,} Observations ({db.patients:,} patients ×"
        f" {db.observations:,}), PostgreSQL, {args.clients} clients, {args.requests} requests"
        " per query =="
    )
    if stats.get("rate"):
        print(
            f"load: {stats['loaded_resources']:,} resources in {stats['seconds']:,.0f} s ="
            f" {stats['rate']:,.0f} resources/s (fhir_api.bulk, validation"
            f" {'on' if stats['validated'] else 'OFF (--no-validate)'})"
        )
    head = (
        f"{'query':<42}{'p50 ms':>8}{'p95 ms':>8}{'floor50':>9}{'floor95':>9}"
        f"{'×floor50':>9}{'×floor95':>9}{'results':>9}{'errors':>7}"
        f" |{'srv cpu':>8}{'pg cpu':>7}{'floor cpu':>10}{'×cpu':>6}"
    )
    print(head)
    print("-" * len(head))
    for kind, title in QUERIES.items():
        f = figures.get(kind, Figures(note="not run"))
        if f.note:
            print(f"{kind:<3}{title:<39}  ({f.note})")
            continue
        print(
            f"{kind:<3}{title:<39}{fmt(f.p50):>8}{fmt(f.p95):>8}{fmt(f.floor_p50):>9}"
            f"{fmt(f.floor_p95):>9}{fmt(f.ratio50, '.1f'):>9}{fmt(f.ratio95, '.1f'):>9}"
            f"{fmt(f.results, '.0f'):>9}{sum(f.errors.values()):>7}"
            f" |{fmt(f.server_ms):>8}{fmt(f.pg_ms):>7}{fmt(f.floor_ms):>10}"
            f"{fmt(f.cost_ratio, '.1f'):>6}"
        )
        for what, count in sorted(f.errors.items(), key=lambda kv: -kv[1])[:3]:
            print(f"     {count} × {what}")
    print(
        "results: the Bundle's total (median); for $lastn the resources returned.\n"
        "srv cpu, pg cpu: CPU ms per request in the server's processes and in this database's\n"
        "PostgreSQL backends; floor cpu: PostgreSQL + psycopg2 CPU ms per floor statement;\n"
        "×cpu: (srv + pg) ÷ floor. CPU per request holds however busy the machine is; the\n"
        f"latencies do not (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)."
    )


def print_growth(runs: list[tuple[Database, dict[str, Figures]]]) -> dict:
    (small_db, small), (big_db, big) = runs[0], runs[-1]
    a, b = small_db.label, big_db.label
    print()
    print(f"== growth {a} → {b} ==")
    head = (
        f"{'query':<42}{f'p50 {a}':>10}{f'p50 {b}':>10}{'growth':>8}"
        f"{f'p95 {a}':>10}{f'p95 {b}':>10}{'growth':>8}"
    )
    print(head)
    print("-" * len(head))
    growth = {}
    for kind, title in QUERIES.items():
        s, g = small.get(kind), big.get(kind)
        if not s or not g or s.note or g.note:
            continue
        g50 = g.p50 / s.p50 if s.p50 and g.p50 else None
        g95 = g.p95 / s.p95 if s.p95 and g.p95 else None
        growth[kind] = (g50, g95)
        print(
            f"{kind:<3}{title:<39}{fmt(s.p50):>10}{fmt(g.p50):>10}{fmt(g50, '.2f'):>8}"
            f"{fmt(s.p95):>10}{fmt(g.p95):>10}{fmt(g95, '.2f'):>8}"
        )
    return growth


def verdict(figures: dict[str, Figures], growth: dict | None) -> list[str]:
    lines = []
    for kind in PATIENT_SCOPED:
        f = figures.get(kind)
        if f is None or f.note:
            lines.append(f"{kind}: not measured")
            continue
        checks = [
            ("p50", f.p50, TARGETS["p50"]),
            ("p95", f.p95, TARGETS["p95"]),
            ("×floor p50", f.ratio50, TARGETS["ratio"]),
        ]
        if growth is not None and kind in growth:
            checks.append(("growth p50", growth[kind][0], TARGETS["growth"]))
        parts = []
        for name, value, limit in checks:
            ok = value is not None and value <= limit
            parts.append(f"{name} {fmt(value)} ≤ {limit:g} {'met' if ok else 'NOT met'}")
        lines.append(f"{kind}: " + ", ".join(parts))
    return lines


# --- Main --------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    text = text.strip().lower().replace(",", "").replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor > 1 else text
    return int(float(number) * factor)


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--patients", type=int, default=1000, help="patients (1000)")
    p.add_argument("--observations", type=int, default=1000, help="Observations per patient (1000)")
    p.add_argument(
        "--scale",
        help="total Observations instead of --patients (e.g. 10M: 10,000 patients × 1,000)",
    )
    p.add_argument(
        "--sizes",
        help="several totals, smallest first, e.g. 100k,1M: --patients patients, each with"
        " size ÷ patients Observations (--grow patients: --observations each, size ÷ M patients)",
    )
    p.add_argument(
        "--grow",
        choices=("observations", "patients"),
        default="observations",
        help="with --sizes, what grows with the size (observations per patient)",
    )
    p.add_argument(
        "--keep", action="store_true", help="reuse a loaded database, load what is missing"
    )
    p.add_argument("--drop", action="store_true", help="drop the databases at the end")
    p.add_argument("--load-only", action="store_true", help="load the databases, measure nothing")
    p.add_argument(
        "--analyze", action="store_true", help="VACUUM ANALYZE even if nothing was loaded"
    )
    p.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="load without fhir.resources validation (faster; said in the output)",
    )
    p.add_argument("--load-workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    p.add_argument("--requests", type=int, default=200, help="requests per query (200)")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds the requests are spread over, the sizes and floors interleaved (5)",
    )
    p.add_argument("--queries", default="a,b,c,c',d,e,f", help="which queries (a,b,c,c',d,e,f)")
    p.add_argument("--seed", type=int, default=20260101)
    p.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server (its maintenance database)",
    )
    p.add_argument("--db-name", default="clouddth_bench_search", help="prefix of the databases")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument of python -m dth_project.serve, repeatable",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable of the server (and of its token's manage.py), repeatable;"
        " bench/floor_view.py says what it is for",
    )
    p.add_argument("--server-log", default=str(ROOT / "var" / "bench-search-server.log"))
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    if any("=" not in item for item in args.server_env):
        p.error("--server-env takes NAME=VALUE")
    args.server_env = dict(item.split("=", 1) for item in args.server_env)
    if args.sizes:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    elif args.scale:
        sizes = [parse_size(args.scale)]
    else:
        sizes = [args.patients * args.observations]
    if args.sizes and args.grow == "observations":
        shapes = [(args.patients, size // args.patients) for size in sizes]
    else:
        shapes = [(size // args.observations, args.observations) for size in sizes]
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if sorted(sizes) != sizes or any(n < 1 or m < 1 for n, m in shapes):
        p.error("sizes must be ascending, with at least one patient and one Observation each")
    args.size_list = list(zip(sizes, shapes, strict=True))
    host = urllib.parse.urlsplit(args.pg_url).hostname or ""
    if host not in LOOPBACK:
        p.error(f"{args.pg_url}: only loopback PostgreSQL is benchmarked")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    Path(args.server_log).parent.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[Database, dict[str, Figures], dict]] = []
    databases = []
    loaded: list[tuple[Database, dict]] = []
    try:
        for size, (patients, observations) in args.size_list:
            label = size_label(size)
            name = f"{args.db_name}_{label}"
            url = with_dbname(args.pg_url, name)
            db = Database(label, name, url, patients, observations)
            db.env = {
                **os.environ,
                "DATABASE_URL": url,
                "REQUIRE_POSTGRES": "1",
                "DEBUG": "0",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "FHIR_BASE_URL": "",
            }
            db.env.pop("DJANGO_SETTINGS_MODULE", None)
            databases.append(db)
            stats = load(db, args)
            loaded.append((db, stats))
            for relname, rows, size_bytes in table_sizes(db)[:6]:
                print(f"  {relname:<28}{rows:>14,} rows {size_bytes / 2**20:>10,.0f} MB")
        if args.load_only or not loaded:
            return 0
        measured = measure([db for db, _stats in loaded], args)
        for (db, stats), figures in zip(loaded, measured, strict=True):
            runs.append((db, figures, stats))
            print_size(db, figures, stats, args)
        growth = print_growth([(d, f) for d, f, _s in runs]) if len(runs) > 1 else None
        big_db, big, _ = runs[-1]
        print()
        print(f"== targets at {big_db.label} (patient-scoped and $lastn) ==")
        for line in verdict(big, growth):
            print(line)
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        d.label: {
                            "load": s,
                            "queries": {
                                k: {**f.__dict__, "ratio50": f.ratio50, "ratio95": f.ratio95}
                                for k, f in figs.items()
                            },
                        }
                        for d, figs, s in runs
                    },
                    indent=2,
                    default=str,
                )
            )
        return 0
    finally:
        if args.drop:
            for db in databases:
                with contextlib.suppress(Exception):
                    recreate_database(args.pg_url, db.name, drop_only=True)


if __name__ == "__main__":
    sys.exit(main())
