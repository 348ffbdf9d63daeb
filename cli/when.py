"""Times as people type them on the command line: `2w`, `1h30m`, `yesterday`, an ISO date or time."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from typing import Any

import click

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
FORMS = "a period like 30m, 24h, 2w or 1h30m, 'today', 'yesterday', or an ISO date/time like 2026-11-30T08:00"


def period_seconds(text: str) -> float | None:
    """Seconds in `2w`, `1h30m`, `45s`, `1.5d`; None if `text` is not such a period."""
    compact = text.replace(" ", "").lower()
    if not compact or _PART.sub("", compact):
        return None
    return sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(compact))


def moment(text: str, now: datetime) -> datetime:
    """The moment `text` names, relative to `now` (aware, UTC); ValueError naming the accepted forms."""
    word = text.strip().lower()
    seconds = period_seconds(word)
    if seconds is not None:
        return now - timedelta(seconds=seconds)
    midnight = datetime.combine(now.astimezone(timezone.utc).date(), time(), timezone.utc)
    if word == "today":
        return midnight
    if word == "yesterday":
        return midnight - timedelta(days=1)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give {FORMS}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)  # naive: UTC, as the tables show


class Since(click.ParamType):
    """A click option value -> a POSIX timestamp: `--since 2w`, `--since yesterday`, `--since 2026-11-30`."""

    name = "when"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return moment(str(value), datetime.now(timezone.utc)).timestamp()
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
