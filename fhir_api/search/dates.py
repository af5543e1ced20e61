"""FHIR date/dateTime/instant values as [low, high) intervals (hl7.org/fhir/R4B/search.html#date).

A search value means the whole range its precision covers: ``2026-03`` is all of March 2026.
Values without a time zone are taken as UTC, which is what this server's clock uses.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..exceptions import BadRequest

DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


# A time zone whose + arrived as a space: in a query string an unescaped + means a space
# (``date=2026-03-05T10:00:00+02:00`` reaches the server as ``…10:00:00 02:00``).
_SPACED_ZONE = re.compile(r"(T[\d:.]+) (\d{2}:\d{2})$")


@dataclass(frozen=True)
class Interval:
    low: datetime  # inclusive
    high: datetime  # exclusive


def _tz(text: str | None):
    if not text or text == "Z":
        return UTC
    from datetime import timezone

    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


# The instants a datetime column holds: the range of Python's datetime, in UTC. A search value
# whose interval reaches past them (``date=9999-12-31``: up to the year 10000; ``lt0001-01-01``
# in a zone east of UTC) is cut to them, so it compares as the instants it means.
MIN_INSTANT = datetime.min.replace(tzinfo=UTC)
MAX_INSTANT = datetime.max.replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # before 0001-01-01 or after 9999-12-31 in UTC
        return MIN_INSTANT if value.year == 1 else MAX_INSTANT


def later(value: datetime, step: timedelta) -> datetime:
    """``value + step``, or the last instant there is when that is past it."""
    try:
        return _utc(value + step)
    except OverflowError:
        return MAX_INSTANT


def earlier(value: datetime, step: timedelta) -> datetime:
    """``value - step``, or the first instant there is when that is before it."""
    try:
        return _utc(value - step)
    except OverflowError:
        return MIN_INSTANT


def _interval(low: datetime, high: datetime | timedelta) -> Interval:
    end = later(low, high) if isinstance(high, timedelta) else _utc(high)
    return Interval(_utc(low), end)


def parse_interval(text: str) -> Interval:
    """The interval a FHIR date, dateTime or instant covers, in UTC; BadRequest if it is not
    one. The ends are cut to ``MIN_INSTANT`` and ``MAX_INSTANT``."""
    match = DATE_RE.match(_SPACED_ZONE.sub(r"\1+\2", text.strip()))
    if not match:
        raise BadRequest(f"'{text}' is not a FHIR date, dateTime or instant")
    g = match.groupdict()
    try:
        tz = _tz(g["tz"])
        year = int(g["y"])
        if g["m"] is None:
            low = datetime(year, 1, 1, tzinfo=tz)
            if year == 9999:
                return _interval(low, timedelta(days=365))
            return _interval(low, datetime(year + 1, 1, 1, tzinfo=tz))
        month = int(g["m"])
        if g["d"] is None:
            low = datetime(year, month, 1, tzinfo=tz)
            return _interval(low, timedelta(days=calendar.monthrange(year, month)[1]))
        day = int(g["d"])
        if g["H"] is None:
            return _interval(datetime(year, month, day, tzinfo=tz), timedelta(days=1))
        hour = int(g["H"])
        if g["M"] is None:
            return _interval(datetime(year, month, day, hour, tzinfo=tz), timedelta(hours=1))
        minute = int(g["M"])
        if g["S"] is None:
            low = datetime(year, month, day, hour, minute, tzinfo=tz)
            return _interval(low, timedelta(minutes=1))
        second = int(g["S"])
        if g["f"] is None:
            low = datetime(year, month, day, hour, minute, second, tzinfo=tz)
            return _interval(low, timedelta(seconds=1))
        frac = g["f"]
        micro = int((frac + "000000")[:6])
        low = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        return _interval(low, timedelta(microseconds=10 ** max(0, 6 - len(frac))))
    except ValueError as exc:
        raise BadRequest(f"'{text}' is not a valid date: {exc}") from None


def format_instant(value: datetime) -> str:
    """An instant as FHIR writes it: UTC, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
