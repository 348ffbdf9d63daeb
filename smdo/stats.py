"""Exchange statistics from the journal: per period (day, week, month, quarter; UTC) and per subscriber.

One module computes them for the console, `smdo stats` and its CSV, so the three always agree.
The store counts a period's documents per UTC day, sender, receiver and state, and hands over the
durations the percentiles need (`JournalStore.period_facts`, read from covering indexes); this
module adds the days up into periods and subscribers.

Per subscriber, "sent" and the outcome columns describe the documents it sent (how many were
delivered, registered, ...), "received" counts the documents addressed to it. The row with
subscriber "*" is the whole network.
"""
from __future__ import annotations

import csv
import io
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone

from smdo.journal.store import DeliveryState, JournalStore

PERIODS = ("day", "week", "month", "quarter")
ALL = "*"
_REGISTRATION = {s.value for s in (DeliveryState.REGISTERED, DeliveryState.REFUSED,
                                   DeliveryState.NOT_REGISTRABLE, DeliveryState.SIGNATURE_NOT_TRUSTED)}
_DELIVERED = _REGISTRATION | {DeliveryState.DELIVERED.value}


@dataclass(frozen=True)
class StatsRow:
    period: str  # "2026-12-01", "2026-W49", "2026-12", "2026-Q4"
    subscriber: str  # a code, or "*" for everyone
    sent: int  # documents the hub accepted from this subscriber
    received: int  # deliveries addressed to this subscriber
    delivered: int  # deliveries of its documents the receiver acknowledged (101)
    registered: int  # ... and registered
    registration_refused: int  # ... refused, not registrable or signature not trusted by the receiver
    not_delivered: int  # ... expired (102)
    refused: int  # its packets the hub refused (any error code)
    delivery_median_s: float | None
    delivery_p95_s: float | None
    registration_median_s: float | None
    registration_p95_s: float | None
    missing_registration_share: float | None  # delivered without any registration ack, of delivered

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COLUMNS = tuple(f.name for f in fields(StatsRow))


@dataclass
class _Tally:
    sent: int = 0
    received: int = 0
    delivered: int = 0
    registered: int = 0
    registration_refused: int = 0
    not_delivered: int = 0
    refused: int = 0
    to_delivery: array = field(default_factory=lambda: array("d"))
    to_registration: array = field(default_factory=lambda: array("d"))
    unregistered: int = 0


def period_label(ts: float, period: str) -> str:
    day = datetime.fromtimestamp(ts, timezone.utc).date()
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def period_start(ts: float, period: str) -> float:
    """The start (UTC) of the period that contains `ts`."""
    day = datetime.fromtimestamp(ts, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    elif period == "quarter":
        day = day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
    elif period != "day":
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    return day.timestamp()


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class _Aggregator:
    def __init__(self, period: str, subscriber: str | None) -> None:
        self.period = period
        self.subscriber = subscriber
        self.tallies: dict[tuple[str, str], _Tally] = {}
        self.labels: dict[int, str] = {}  # UTC day number -> period label

    def tallies_for(self, day: int, *codes: str | None) -> list[_Tally]:
        """The tallies a fact about these subscribers counts in: everyone's, and each one's."""
        label = self.labels.get(day)
        if label is None:
            label = self.labels[day] = period_label(day * 86400, self.period)
        out = []
        for code in (ALL, *codes):
            if code is None or (self.subscriber is not None and code != self.subscriber):
                continue
            tally = self.tallies.get((label, code))
            if tally is None:
                tally = self.tallies[(label, code)] = _Tally()
            out.append(tally)
        return out

    def __call__(self, kind: str, rows: list[tuple]) -> None:
        if kind == "document":
            for day, sender, n in rows:
                for t in self.tallies_for(day, sender):
                    t.sent += n
        elif kind == "refusal":
            for day, sender, n in rows:
                for t in self.tallies_for(day, sender):
                    t.refused += n
        elif kind == "delivery":
            for day, sender, receiver, state, n in rows:
                for t in self.tallies_for(day, receiver):
                    t.received += n
                for t in self.tallies_for(day, sender):
                    _count_outcome(t, state, n)
        elif kind == "durations":
            for day, sender, to_delivery, to_registration in rows:
                for t in self.tallies_for(day, sender):
                    if to_delivery is not None:
                        t.to_delivery.append(to_delivery)
                    if to_registration is not None:
                        t.to_registration.append(to_registration)

    def rows(self) -> list[StatsRow]:
        out = []
        for (label, code), t in sorted(self.tallies.items(), key=lambda kv: (kv[0][0], kv[0][1] != ALL, kv[0][1])):
            out.append(StatsRow(
                period=label, subscriber=code, sent=t.sent, received=t.received, delivered=t.delivered,
                registered=t.registered, registration_refused=t.registration_refused,
                not_delivered=t.not_delivered, refused=t.refused,
                delivery_median_s=_round(percentile(t.to_delivery, 0.5)),
                delivery_p95_s=_round(percentile(t.to_delivery, 0.95)),
                registration_median_s=_round(percentile(t.to_registration, 0.5)),
                registration_p95_s=_round(percentile(t.to_registration, 0.95)),
                missing_registration_share=round(t.unregistered / t.delivered, 4) if t.delivered else None,
            ))
        return out


def _count_outcome(t: _Tally, state: str, n: int) -> None:
    if state in _DELIVERED:
        t.delivered += n
    if state == DeliveryState.REGISTERED.value:
        t.registered += n
    elif state in _REGISTRATION:
        t.registration_refused += n
    elif state == DeliveryState.DELIVERED.value:
        t.unregistered += n
    elif state == DeliveryState.EXPIRED.value:
        t.not_delivered += n


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def compute(journal: JournalStore, *, since: float, until: float, period: str = "month",
                  subscriber: str | None = None) -> list[StatsRow]:
    """Statistics of the documents received in [since, until), per period and subscriber."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    aggregator = _Aggregator(period, subscriber)
    await journal.period_facts(since, until, aggregator)
    return aggregator.rows()


def to_csv(rows: Iterable[StatsRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if v is None else v for v in (getattr(row, c) for c in COLUMNS)])
    return out.getvalue()
