"""``manage.py reindex [Type …]``: rebuild the search indexes from the stored resources.

Uses the same extraction as every write (``indexing.write_indexes``), one transaction per batch,
with a progress bar. Needed after the search-parameter registry or the extraction changes: e.g.
a database indexed before the Observation ``combo-*`` parameters were answered from the rows of
their parts (``fhir_api.search.aliases``) keeps its ``combo-*`` rows until reindexed (search no
longer reads them, so they only take space).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from fhir_api import json_io
from fhir_api.indexing import write_indexes
from fhir_api.models import Resource
from fhir_api.resource_types import RESOURCE_TYPES


class Command(BaseCommand):
    help = "Rebuild the search-index rows of all resources, or of the given types."

    def add_arguments(self, parser) -> None:
        parser.add_argument("types", nargs="*", help="Resource types (default: all)")
        parser.add_argument("--batch", type=int, default=500)

    def handle(self, *args, types: list[str], batch: int, **options) -> None:
        unknown = sorted(set(types) - RESOURCE_TYPES)
        if unknown:
            raise CommandError(f"Unknown resource type(s): {', '.join(unknown)}")
        qs = Resource.objects.filter(deleted=False)
        if types:
            qs = qs.filter(resource_type__in=types)
        ids = list(qs.order_by("pk").values_list("pk", flat=True))
        with tqdm(total=len(ids), unit="res", disable=None) as bar:
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                with transaction.atomic():
                    for row in Resource.objects.filter(pk__in=chunk).select_for_update():
                        write_indexes(row, json_io.loads(row.content))
                bar.update(len(chunk))
        self.stdout.write(f"Reindexed {len(ids)} resource(s)")
