"""``manage.py import_readings FILE --device <serial>``: an Apple Health export.xml or a CSV.

Readings go through the same ingest as HTTP and MQTT (checks, pairing at the reading's time,
duplicates, dead letters), in batches, with a progress bar; a rerun of the same file adds
nothing (its readings are duplicates).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from devices import services
from devices.adapters import applehealth, csvfile
from devices.models import Device
from devices.readings import Rejected


class Progress:
    """A file handle that moves a progress bar as it is read."""

    def __init__(self, handle, bar):
        self.handle, self.bar = handle, bar

    def read(self, size=-1):
        data = self.handle.read(size)
        self.bar.update(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self.handle, name)


class Command(BaseCommand):
    help = "Import wearable readings from an Apple Health export.xml or a CSV file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file")
        parser.add_argument("--device", required=True, help="the registered device's identifier")
        parser.add_argument(
            "--format", choices=["applehealth", "csv"], help="default: by extension"
        )
        parser.add_argument("--batch", type=int, default=1000)

    def handle(
        self, *args, file: str, device: str, format: str | None, batch: int, **options
    ) -> None:
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        registered = Device.objects.filter(identifier=device).first()
        if registered is None:
            raise CommandError(f"Device '{device}' is not registered (manage.py register_device)")
        kind = format or ("csv" if path.suffix.lower() == ".csv" else "applehealth")
        parser = csvfile.parse if kind == "csv" else applehealth.parse
        totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
        with (
            path.open("rb") as raw,
            tqdm(
                total=path.stat().st_size, unit="B", unit_scale=True, disable=None, file=self.stderr
            ) as bar,
        ):
            pending: list[services.Parsed] = []
            try:
                for item in parser(Progress(raw, bar)):
                    pending.append(item)
                    if len(pending) >= batch:
                        self._store(registered, pending, totals)
                        pending = []
            except Rejected as exc:
                raise CommandError(str(exc)) from None
            self._store(registered, pending, totals)
        self.stdout.write(
            f"{totals['accepted']} stored, {totals['duplicate']} duplicate(s), "
            f"{totals['rejected']} rejected (see Dead letters in the admin)"
        )

    @staticmethod
    def _store(device: Device, items: list[services.Parsed], totals: dict[str, int]) -> None:
        if not items:
            return
        result = services.ingest(device, items, source="file")
        totals["accepted"] += result.accepted
        totals["duplicate"] += result.duplicate
        totals["rejected"] += len(result.rejected)
