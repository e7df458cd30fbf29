"""Datetime parameters: an instant or an interval, RFC 3339, open ends with ``..``.

The same parser serves the Features/Records ``datetime`` query parameter, the processes and the
CLI, so every entry point accepts and rejects the same strings with the same message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Interval:
    """A closed time interval; ``None`` ends are open."""

    start: dt.datetime | None
    end: dt.datetime | None

    def contains(self, moment: dt.datetime) -> bool:
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment <= self.end
        )

    @property
    def is_instant_day(self) -> bool:
        return (self.start is not None and self.end is not None
                and self.end - self.start < dt.timedelta(days=1))


def _parse_moment(text: str, *, end: bool) -> dt.datetime:
    text = text.strip()
    try:
        if len(text) == 10:  # a date: the whole day
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time.max if end else dt.time.min)
            return moment.replace(tzinfo=UTC)
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(
            f"invalid datetime {text!r}; use RFC 3339 such as 2024-06-12 or 2024-06-12T11:00:00Z"
        ) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_interval(value: str | None) -> Interval:
    """``2024-06-12``, ``2024-06-01/2024-08-31``, ``../2024-08-31``, ``2024-06-01/..``.

    A date alone means that whole day (UTC); an instant with a time means that instant.
    """
    if value is None or str(value).strip() in ("", "../..", ".."):
        return Interval(None, None)
    text = str(value).strip()
    if "/" in text:
        parts = text.split("/")
        if len(parts) != 2:
            raise ValueError(f"invalid datetime interval {text!r}; use start/end")
        start_txt, end_txt = parts
        start = None if start_txt in ("", "..") else _parse_moment(start_txt, end=False)
        end = None if end_txt in ("", "..") else _parse_moment(end_txt, end=True)
        if start and end and start > end:
            raise ValueError(f"datetime interval {text!r} ends before it starts")
        return Interval(start, end)
    start = _parse_moment(text, end=False)
    end = _parse_moment(text, end=True) if len(text) == 10 else start
    return Interval(start, end)
