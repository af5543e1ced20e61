#!/usr/bin/env python
"""Observation/$lastn for one patient with many Observations: latency against its SQL floor.

    .venv/bin/python bench/lastn.py                          # 10,000 Observations over 10 codes
    .venv/bin/python bench/lastn.py --observations 1000 --background 100 --calls 200
    .venv/bin/python bench/lastn.py --database-url postgres://postgres@127.0.0.1:5432/other

Uses (and creates, then migrates, when missing) the PostgreSQL database ``clouddth_bench_lastn``
unless ``--database-url`` names another. It loads, once, through ``fhir_api.bulk.create_many``
(validated, the same rows as the API's write path, index rows included):

- Patient ``bench-p0``: ``--observations`` vital-sign Observations over 10 LOINC codes, one
  every 7 minutes, the codes in turn;
- Patient ``bench-p1``, a wearable's record: ``--stream-observations`` heart rates, one a
  minute, and a body weight once a week (a code seldom measured among one measured all the
  time: the shape of a lifelong monitored record);
- ``--background`` other patients with ``--background-observations`` each.

A later run finds them and loads nothing. Then ``VACUUM ANALYZE`` (as autovacuum would), and
for a few $lastn queries it prints p50/p95/min of ``--calls`` calls of:

- floor: ``SELECT count(*)`` of the patient's ``code`` token rows (one index range as long as
  the patient's record);
- statement: the operation's statement by hand through the cursor
  (``operations.lastn.statement``: the patient's codes by a skip scan of ``fhir_lastn_index``,
  then each code's newest rows, with their resources);
- request: ``GET [base]/Observation/$lastn?…`` through Django's test client (the whole view,
  authentication and rendering, no network).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from common import django_on, percentile  # bench/ is not a package: its directory is on sys.path

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/clouddth_bench_lastn"
CODES = (
    "8867-4",
    "8310-5",
    "9279-1",
    "2708-6",
    "29463-7",
    "8302-2",
    "39156-5",
    "8480-6",
    "8462-4",
    "85354-9",
)
QUERIES = (
    "patient=bench-p0",
    "patient=bench-p0&max=3",
    "patient=bench-p0&category=vital-signs",
    "patient=bench-p0&code=http://loinc.org|8867-4,http://loinc.org|8310-5&max=5",
    "patient=bench-p1&category=vital-signs",
    "patient=bench-p1&code=http://loinc.org|29463-7&max=3",
)
MINUTES_A_WEEK = 7 * 24 * 60
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def setup(database_url: str) -> None:
    django_on(database_url, SECRET_KEY="bench-lastn-" + "x" * 40)


def _steady(i: int) -> tuple[str, int]:
    """The codes in turn, one every 7 minutes."""
    return CODES[i % 10], 7 * i


def _stream(i: int) -> tuple[str, int]:
    """A heart rate a minute, a body weight (29463-7) once a week."""
    return ("29463-7" if i % MINUTES_A_WEEK == 0 else "8867-4"), i


def load(patient: str, n: int, shape: Callable[[int], tuple[str, int]] = _steady) -> None:
    from fhir_api import bulk, services
    from fhir_api.models import Resource

    if Resource.objects.filter(resource_type="Patient", logical_id=patient).exists():
        return
    services.update("Patient", patient, {"resourceType": "Patient", "id": patient})
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for chunk in range(0, n, 1000):
        items = []
        for i in range(chunk, min(n, chunk + 1000)):
            code, minutes = shape(i)
            when = (start + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
            items.append(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "subject": {"reference": f"Patient/{patient}"},
                    "effectiveDateTime": when,
                    "valueQuantity": {
                        "value": 60 + i % 40,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                }
            )
        bulk.create_many(items)  # the rows services.create writes, one transaction per 1,000
        print(f"  {patient}: {min(n, chunk + 1000)} Observations", flush=True)


def timed(calls: int, run: Callable[[], object]) -> str:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    samples.sort()
    p95 = percentile(samples, 0.95)
    return (
        f"p50 {statistics.median(samples) * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms"
        f"   min {samples[0] * 1000:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--observations", type=int, default=10_000)
    parser.add_argument("--stream-observations", type=int, default=50_000)
    parser.add_argument("--background", type=int, default=20, help="other patients")
    parser.add_argument("--background-observations", type=int, default=1_000)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    setup(args.database_url)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIClient

    from fhir_api.models import ApiToken, Resource
    from fhir_api.operations import lastn
    from fhir_api.search.query import parse_query_string

    load("bench-p0", args.observations)
    load("bench-p1", args.stream_observations, _stream)
    for k in range(args.background):
        load(f"bench-bg{k}", args.background_observations)
    with connection.cursor() as cursor:
        # As autovacuum would: the visibility map lets the index-only scans skip the heap.
        cursor.execute("VACUUM ANALYZE")
    total = Resource.objects.filter(resource_type="Observation").count()
    print(f"{total} Observations; bench-p0 has {args.observations}; {args.calls} calls each")
    user, _ = get_user_model().objects.get_or_create(username="bench-lastn")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user, 'bench')[1]}")

    def floor(patient: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM fhir_token_index WHERE patient = %s"
                " AND resource_type = 'Observation' AND param = 'code'",
                [patient],
            )
            cursor.fetchall()

    for query in QUERIES:
        patient = query.split("&")[0].split("=")[1]
        request = lastn.parse(parse_query_string(query), strict=False)
        sql, params = lastn.statement(request, patient, exact=False)

        def statement(sql: str = sql, params: list = params) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                cursor.fetchall()

        def http(query: str = query) -> None:
            response = client.get(f"/fhir/Observation/$lastn?{query}")
            assert response.status_code == 200, response.content

        entries = len(client.get(f"/fhir/Observation/$lastn?{query}").json()["entry"])
        print(f"{query}  ({entries} entries)")
        print(f"  floor     {timed(args.calls, lambda patient=patient: floor(patient))}")
        print(f"  statement {timed(args.calls, statement)}")
        print(f"  request   {timed(args.calls, http)}")


if __name__ == "__main__":
    main()
