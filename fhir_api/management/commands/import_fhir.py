"""``manage.py import_fhir PATH…``: load transaction Bundles and NDJSON files (Synthea, exports).

Shows a progress bar, resumes an interrupted import (a rerun skips finished files and continues
an NDJSON file after its last committed batch), and ends with counts per resource type and the
rejected entries with their reasons (also kept in the admin under "Import rejections").
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fhir_api.importer import Importer, find_files


class Command(BaseCommand):
    help = "Import FHIR Bundles (.json) and NDJSON files (.ndjson), or folders of them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--batch", type=int, default=500, help="NDJSON lines per commit")

    def handle(self, *args, paths: list[str], batch: int, **options) -> None:
        try:
            files = find_files(paths)
        except FileNotFoundError as exc:
            raise CommandError(f"No such file or folder: {exc}") from None
        total = sum(f.stat().st_size for f in files)
        with tqdm(total=total, unit="B", unit_scale=True, disable=None, file=self.stderr) as bar:
            report = Importer(progress=bar.update).run([str(f) for f in files], batch=batch)
        for name in report.skipped:
            self.stdout.write(f"skipped (already imported): {name}")
        for resource_type, count in sorted(report.written.items()):
            self.stdout.write(f"{resource_type}: {count}")
        for path, position, reason in report.rejected:
            self.stdout.write(f"REJECTED {path} {position}: {reason}")
        self.stdout.write(
            f"{sum(report.written.values())} resource(s) written from {report.files} file(s),"
            f" {len(report.rejected)} rejected"
        )
