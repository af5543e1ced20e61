#!/usr/bin/env python
"""What a one-patient search costs the server before any search code: the stack's own floor.

    .venv/bin/python bench/stack.py          # on bench/search.py's 1M database (load it first)
    .venv/bin/python bench/stack.py --database-url postgres://postgres@127.0.0.1:5432/other

bench/search.py's query c' (``code-value-quantity`` for one patient, an empty answer) is the
search whose server cost is nearly all fixed cost. This bench calls the production WSGI
application (``dth_project.wsgi.application``: the ``/fhir`` middleware chain) in process, no
network, with the same query string and bearer token, on five views:

1. plain: a Django view answering a fixed Bundle (what Django and the middleware cost);
2. plain + SQL: the same after running search.py's hand-written floor statement for c' through
   Django's cursor;
3. DRF: a ``fhir_api.views.FHIRView`` answering a fixed Bundle (token authentication, content
   negotiation, permission check, the FHIR JSON renderer);
4. DRF + SQL: the same after the floor statement;
5. search: ``GET /fhir/Observation?patient=…&code-value-quantity=…`` itself.

CPU milliseconds per request (``time.process_time``), ``--requests`` requests of each view in
each of ``--rounds`` rounds, the views interleaved within a round; the medians and minimums over
the rounds. The CPU PostgreSQL spends is not in these figures (it is the same statement for
2, 4 and the floor). "adds" is a view's median minus that of the view it extends (``BELOW``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time

from common import in_process  # bench/ is not a package: its directory is on sys.path
from search import FLOORS, Ask, http_path, patient_id

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/clouddth_bench_search_1m"
BUNDLE = {"resourceType": "Bundle", "type": "searchset", "total": 0}
VIEWS = ("plain", "plain + SQL", "DRF", "DRF + SQL", "search")
# What each view adds to: the SQL to its view without it, DRF to plain Django, the search's own
# code to DRF with the floor statement.
BELOW = {"plain + SQL": "plain", "DRF": "plain", "DRF + SQL": "DRF", "search": "DRF + SQL"}

urlpatterns: list = []  # filled by routes(); this module is the URLconf while it runs


def routes(patient: str) -> dict[str, str]:
    """This module's URL patterns for the views above; their paths by name."""
    from django.db import connection
    from django.http import HttpResponse
    from django.urls import include, path
    from rest_framework.response import Response

    from fhir_api.json_io import dumps
    from fhir_api.views import FHIRView

    sql, params = FLOORS["c'"], {"p": patient}
    body = dumps(BUNDLE).encode()

    def floor() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()

    def plain(request):
        return HttpResponse(body, content_type="application/fhir+json")

    def plain_sql(request):
        floor()
        return plain(request)

    class Fixed(FHIRView):
        def get(self, request):
            return Response(dict(BUNDLE))

    class FixedSQL(FHIRView):
        def get(self, request):
            floor()
            return Response(dict(BUNDLE))

    urlpatterns[:] = [
        path("fhir/bench-stack/plain", plain),
        path("fhir/bench-stack/plain-sql", plain_sql),
        path("fhir/bench-stack/drf", Fixed.as_view()),
        path("fhir/bench-stack/drf-sql", FixedSQL.as_view()),
        path("", include("dth_project.urls")),
    ]
    search = http_path("c'", Ask(patient, "", "")).split("?", 1)[0]
    names = ("plain", "plain-sql", "drf", "drf-sql")
    return dict(zip(VIEWS, [f"/fhir/bench-stack/{n}" for n in names] + [search], strict=True))


def caller(application, token: str, query: str):
    """A function calling ``application`` with a GET of a path, asserting a 200."""

    def call(path: str) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_ACCEPT": "application/fhir+json",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        status = []
        body = b"".join(application(environ, lambda s, _h, _e=None: status.append(s)))
        if not status[0].startswith("200"):
            raise SystemExit(f"{path}: {status[0]} {body[:300]!r}")

    return call


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", default=DEFAULT_DB)
    p.add_argument("--patient", type=int, default=1, help="bench patient number (1)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--requests", type=int, default=1500, help="requests of each view a round")
    args = p.parse_args(argv)
    token = in_process(args.database_url, "bench/stack.py")
    from django.conf import settings

    settings.ROOT_URLCONF = __name__
    patient = patient_id(args.patient)
    paths = routes(patient)
    from dth_project.wsgi import application

    call = caller(application, token, http_path("c'", Ask(patient, "", "")).split("?", 1)[1])
    for path in paths.values():  # warm: imports, the search's kept shape, prepared statements
        for _ in range(200):
            call(path)
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, path in paths.items():
            start = time.process_time()
            for _ in range(args.requests):
                call(path)
            cpu[name].append((time.process_time() - start) / args.requests * 1e3)
    print(f"in-process CPU ms per request, {args.rounds} rounds × {args.requests} requests,")
    print(f"patient {patient}, {args.database_url.rsplit('/', 1)[-1]}")
    medians = {name: statistics.median(values) for name, values in cpu.items()}
    print(f"{'view':<14}{'median':>8}{'min':>8}{'adds':>8}  to")
    for name, values in cpu.items():
        below = BELOW.get(name)
        adds = medians[name] - (medians[below] if below else 0.0)
        print(f"{name:<14}{medians[name]:>8.3f}{min(values):>8.3f}{adds:>+8.3f}  {below or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
