"""Settings for the production server in which ``GET /fhir/Observation`` is the smallest DRF
view that can answer search.py's query c': its floor statement and a Bundle of what it found.

    .venv/bin/python bench/search.py --sizes 1M --queries "c'" \\
        --server-env DJANGO_SETTINGS_MODULE=floor_view --server-env PYTHONPATH=bench

c' (``code-value-quantity`` for one patient, an empty answer) costs the server nearly only what
every request costs. This view bounds what any search written on the project's stack (granian,
Django, Django REST framework, psycopg2) can reach on that query: it has the bearer-token
authentication, content negotiation and FHIR JSON renderer of every FHIR view, runs the floor's
own statement (prepared once per connection, its generic plan, as the search's statements are)
and parses, checks and plans nothing. Every other path is the project's as usual.

Not for any use but this measurement: the view answers one question whatever is asked.
"""

from __future__ import annotations

from dth_project.settings import *  # noqa: F403  (the production settings, then one change)

ROOT_URLCONF = "floor_view"

# c''s floor (search.py FLOORS["c'"]) with its values as parameters, so that it can be prepared.
SQL = """
    SELECT r.logical_id, count(*) OVER () AS total, r.content
    FROM fhir_resource r
    WHERE r.resource_type = %s AND NOT r.deleted AND r.id IN (
        SELECT c.resource_id FROM fhir_composite_index c
        WHERE c.patient = %s AND c.resource_type = %s AND c.param = %s AND c.c1_code = %s
          AND c.c1_system = %s AND c.c2_value > %s)
    ORDER BY r.id LIMIT 51
"""


def __getattr__(name: str):
    """The URL patterns, made when Django first resolves a URL: this module is imported as the
    settings, before the apps their views need are ready."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.db import connection
    from django.urls import include, path
    from rest_framework.response import Response

    from fhir_api import query_string
    from fhir_api.renderers import raw
    from fhir_api.search.fetch import execute
    from fhir_api.views import FHIRView

    class FloorView(FHIRView):
        def get(self, request):
            # Read as the FHIR views read it (no QueryDict), so the bound pays what they pay.
            params = ["Observation", query_string.value(request, "patient") or ""]
            params += ["Observation", "code-value-quantity", "8867-4", "http://loinc.org", 120.0]
            with connection.cursor() as cursor:
                execute(cursor, SQL, params, prepare=True)
                rows = cursor.fetchall()
            bundle = {"resourceType": "Bundle", "type": "searchset", "total": 0}
            if rows:
                base = self.base  # FHIRView.dispatch worked it out
                bundle["total"] = rows[0][1]
                bundle["entry"] = [
                    {
                        "fullUrl": f"{base}/Observation/{logical_id}",
                        "resource": raw(content),
                        "search": {"mode": "match"},
                    }
                    for logical_id, _total, content in rows[:50]
                ]
            return Response(bundle)

    patterns = [
        path("fhir/Observation", FloorView.as_view()),
        path("", include("dth_project.urls")),
    ]
    globals()["urlpatterns"] = patterns
    return patterns
