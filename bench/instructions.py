#!/usr/bin/env python
"""Instructions the server's Python executes per request, counted by callgrind: a measure of
server work that a noisy, shared machine does not move.

    .venv/bin/python bench/instructions.py                 # c' on bench/search.py's 1M database
    .venv/bin/python bench/instructions.py --query a --views search
    .venv/bin/python bench/instructions.py --database-url postgres://postgres@127.0.0.1:5432/other

On the 2-core machines here the latency and even the CPU time of one request moved by a third
from run to run (bench/README.md), so a change of 5 % to the server's work could not be seen
in bench/search.py without many interleaved runs. ``valgrind --tool=callgrind`` counts the
instructions a process executes instead, the same for the same code and data whatever else the
machine does. This bench calls the production WSGI application (``dth_project.wsgi``, the
``/fhir`` middleware chain) in process, as bench/stack.py does, with search.py's query for 50
patients in turn, under callgrind: once with ``--warm`` requests and once with ``--requests``
more, so that start-up (Django, the apps, the first request of each shape) cancels out, and
prints the difference per request.

Views: ``search``, the FHIR search itself (``GET /fhir/Observation?…``, or ``$lastn`` for b),
and ``bound``, bench/floor_view.py's smallest DRF view that answers c' (its floor statement and
a Bundle, nothing parsed or planned); with both, the ratio. PostgreSQL's work is not counted
(it runs in its own processes): bench/search.py's ``pg cpu`` measures it.

Needs valgrind (every machine kind here has it); about two minutes a view.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/clouddth_bench_search_1m"
VIEWS = ("search", "bound")
PATIENTS = 50

urlpatterns: list = []  # this module is the URLconf of the child process


def child(args: argparse.Namespace) -> None:
    """Set up Django on the database and make ``args.count`` requests of ``args.view``."""
    sys.path.insert(0, str(HERE))
    from common import in_process
    from search import Ask, http_path, patient_id
    from stack import caller

    token = in_process(args.database_url, "bench/instructions.py")
    import floor_view
    from django.conf import settings
    from django.urls import path

    import dth_project.urls

    # The bound first, then the project's own patterns: the search resolves as in production.
    urlpatterns[:] = [
        path("fhir/bound", floor_view.urlpatterns[0].callback),
        *dth_project.urls.urlpatterns,
    ]
    settings.ROOT_URLCONF = __name__
    from dth_project.wsgi import application

    query = "c'" if args.view == "bound" else args.query
    target = (
        "/fhir/bound" if args.view == "bound" else http_path(query, Ask("x", "", "")).split("?")[0]
    )
    calls = []
    for number in range(1, PATIENTS + 1):
        ask = Ask(patient_id(number), "2026-01-01", "2026-07-01")
        calls.append(caller(application, token, http_path(query, ask).split("?", 1)[1]))
    for i in range(args.count):
        calls[i % PATIENTS](target)


def instructions(args: argparse.Namespace, view: str, count: int) -> int:
    """Instructions callgrind counted in a child making ``count`` requests of ``view``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            "--view",
            view,
            "--query",
            args.query,
            "--count",
            str(count),
            "--database-url",
            args.database_url,
        ]
        # The same hash seed in every run: dict and set layouts, and so the instructions,
        # then repeat.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0 or not out.exists():
            raise SystemExit(f"{view}: the child failed:\n{done.stderr[-3000:]}")
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise SystemExit(f"{view}: no totals in callgrind's output")
        return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", default=DEFAULT_DB)
    p.add_argument("--query", default="c'", help="bench/search.py's query for the search (c')")
    p.add_argument("--views", default=",".join(VIEWS), help="search,bound")
    p.add_argument("--warm", type=int, default=150, help="requests of the first run (150)")
    p.add_argument("--requests", type=int, default=200, help="requests counted (200)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--view", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    views = [v for v in args.views.split(",") if v]
    if not views or any(v not in VIEWS for v in views):
        p.error(f"--views: some of {', '.join(VIEWS)}")
    per_request = {}
    for view in views:
        first = instructions(args, view, args.warm)
        second = instructions(args, view, args.warm + args.requests)
        per_request[view] = (second - first) / args.requests
        query = "c'" if view == "bound" else args.query
        print(f"{view:<8} ({query}): {per_request[view]:>12,.0f} instructions per request")
    if len(per_request) == 2:
        print(f"search ÷ bound: {per_request['search'] / per_request['bound']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
