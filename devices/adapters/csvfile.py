"""CSV readings: a header row with ``type,value,unit,time`` and, for blood pressure,
``systolic,diastolic``; optional ``id``. One reading per row, in the native format's terms."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

from ..readings import Rejected
from ..services import Parsed
from .native import reading

REQUIRED = {"type", "time"}


def parse(handle: IO[bytes]) -> Iterator[Parsed]:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    rows = csv.DictReader(text)
    missing = REQUIRED - set(rows.fieldnames or [])
    if missing:
        raise Rejected(f"the CSV header lacks {', '.join(sorted(missing))}")
    for row in rows:
        item = {k: v for k, v in row.items() if k and v not in (None, "")}
        try:
            yield Parsed(item, reading(item))
        except Rejected as exc:
            yield Parsed(item, error=str(exc))
