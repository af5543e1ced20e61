"""Small formatting rules shared by the clinicians' pages and their JSON."""

from __future__ import annotations

from datetime import datetime

from fhir_api.search.dates import parse_interval

SEVERITY = {1: "low", 2: "medium", 3: "high"}
# RCP NEWS2 chart colours by aggregate band (twins.news2.Score.colour gives the name).
BAND_COLOURS = {"green": "#2e7d32", "yellow": "#f9a825", "orange": "#ef6c00", "red": "#c62828"}
# A device is silent past this (twins.rules.device_rule flags it at 30 min too).
SILENT_SECONDS = 30 * 60
LOW_BATTERY = 15


def instant(text: str | None) -> datetime | None:
    """A stored FHIR instant or dateTime as an aware datetime (None stays None)."""
    return parse_interval(text).low if text else None


def ago(seconds: float | None) -> str:
    """'just now', '3 min ago', '2 h ago', '4 d ago'; a reading from the future is 'just now'."""
    if seconds is None:
        return "never"
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} d ago"


UNIT_LABELS = {"Cel": "°C", "mm[Hg]": "mmHg", "{steps}": "steps", "/min": "/min"}


def unit_label(ucum: str) -> str:
    """A UCUM unit code as people write it (``Cel`` → °C, ``mm[Hg]`` → mmHg)."""
    return UNIT_LABELS.get(ucum, ucum)


def number(value: float | None) -> str:
    """A vital's value as clinicians write it: no trailing zeros, at most one decimal."""
    if value is None:
        return "—"
    return f"{round(value, 1):g}"
