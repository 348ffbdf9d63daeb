"""One transaction's story for a person: what happened, per receiver where it stands now, and
who must act when it is stuck. Built from the journal's entries about the msg_id."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from smdo.journal import TransactionView

_INCOMING = re.compile(r"incoming number (\S+)")


@dataclass(frozen=True)
class Event:
    at: float
    receiver: str
    what: str


@dataclass(frozen=True)
class ReceiverStatus:
    receiver: str
    mode: str
    state: str
    attempts: int
    registration_number: str
    now: str  # where it stands, in a sentence
    who_acts: str  # "" when nobody needs to


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.0f} h" if seconds >= 3600 else f"{max(0, seconds) / 60:.0f} min"


def events(entries: list[dict[str, Any]]) -> list[Event]:
    out = []
    for e in entries:
        kind, at, receiver = e.get("kind"), float(e.get("at") or 0), str(e.get("receiver") or "")
        if kind == "accepted":
            out.append(Event(at, "", f"accepted (100) from {e.get('sender')} to {', '.join(e.get('receivers', []))}"))
        elif kind == "rejected":
            out.append(Event(at, "", f"refused at stage {e.get('stage')}, codes {e.get('codes')}: {e.get('message', '')}"))
        elif kind == "state":
            state, detail = e.get("state"), e.get("detail") or ""
            if state == "forwarding":
                out.append(Event(at, receiver, f"attempt {e.get('attempt')} ({e.get('by')})"))
            elif state == "retry-wait":
                out.append(Event(at, receiver, f"failed: {detail}; next try {when(e.get('next_at'))}"))
            elif state == "delivered":
                out.append(Event(at, receiver, f"delivered (101): {detail}"))
            elif state == "expired":
                out.append(Event(at, receiver, "not delivered by the deadline (102 to the sender)"))
            else:
                out.append(Event(at, receiver, f"{state}: {detail}"))
    return out


def statuses(view: TransactionView, entries: list[dict[str, Any]], deadline: float, now: float) -> list[ReceiverStatus]:
    first_failure: dict[str, float] = {}
    for e in entries:
        if e.get("kind") == "state":
            r = str(e.get("receiver"))
            if e.get("state") == "retry-wait":
                first_failure.setdefault(r, float(e["at"]))
            elif e.get("state") == "delivered":
                first_failure.pop(r, None)
    out = []
    for d in view.deliveries:
        number = ""
        match = _INCOMING.search(d.detail or "")
        if d.state == "registered" and match:
            number = match.group(1)
        who = ""
        # A retry in flight is still a failing endpoint (the journal's rows.FAILED_BEFORE): the page
        # must not flip to "being delivered" for the second each attempt lasts. A claim keeps the
        # row's detail, so it is the last failure's in both states.
        retrying = d.state == "forwarding" and d.mode == "push" and d.attempts > 1
        if d.state == "retry-wait" or retrying:
            since = first_failure.get(d.receiver, d.updated_at)
            then = f"attempt {d.attempts} under way" if retrying else f"next try {when(d.next_at)}"
            text = (f"{d.receiver}'s endpoint failing since {when(since)} ({d.detail}); {then};"
                    f" {deadline_text(deadline, now)}")
            who = f"{d.receiver}'s EDMS administrators"
        elif d.state in ("accepted", "forwarding") and d.mode == "pull":
            text = f"waiting in {d.receiver}'s mailbox since {when(view.received_at)}"
            who = f"{d.receiver}'s EDMS must fetch it"
        elif d.state in ("accepted", "forwarding"):
            text = "being delivered by the hub"
        elif d.state == "delivered":
            text = f"delivered {when(d.updated_at)}; no registration ack yet"
            who = f"{d.receiver}'s registry office (register it and send the ack)"
        elif d.state == "registered":
            text = f"registered by {d.receiver} as {number or '?'}"
        elif d.state == "expired":
            text = f"not delivered within the deadline; {view.sender} was told (102)"
            who = f"{view.sender} (send again or by other means) and {d.receiver} (fix the endpoint)"
        else:
            text = f"{d.state}: {d.detail}"
            who = f"{view.sender} (read the receiver's reason)"
        out.append(ReceiverStatus(d.receiver, d.mode, d.state, d.attempts, number, text, who))
    return out


def deadline_text(deadline: float | None, now: float) -> str:
    if deadline is None:
        return ""
    left = deadline - now
    return f"deadline {when(deadline)} (in {_hours(left)})" if left > 0 else f"deadline passed {when(deadline)}"
