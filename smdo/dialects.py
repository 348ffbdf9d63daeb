"""Dialects of system acknowledgements and profiles of packet authentication: one table each.

A subscriber is registered with the dialect of system acknowledgements its EDMS understands:

- ``hub``: this hub's first form: every system ack is ack_type 1, its errorcode says what
  happened (100 accepted, 101 delivered, 102 not delivered in time, 104 blocked, 105 old format,
  or the format codes of a refusal);
- ``router``: the real SMDO router (SMDO_DISPATCHER) as ЛАИС.СМДО's uSMDO.pas reads it: the
  ack_type says what happened (100-105) and errorcode 0 is success; a client reads an ack_type 1
  ack with a non-zero errorcode as an error, so it must never get the hub dialect's 101.

The hub sends each subscriber the acks of its dialect and accepts both kinds from everyone: a
receiver's delivery ack is ack_type 1 with errorcode 101 (hub) or 0 (router, as AzDoc writes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from smdo.errors import ErrorCode

HUB = "hub"
ROUTER = "router"
DIALECTS = (HUB, ROUTER)

# How a packet's sender is authenticated (the journal records which one did it):
ENVELOPE = "envelope"  # the envelope signed (XMLDSig) with a certificate bound to the sender
CLASSIC = "classic"  # the real clients': envelope unsigned, the sender known by its channel (TLS
#                      client certificate, or its registered mail address), each file's CMS signature checked
PROFILES = (ENVELOPE, CLASSIC)


class Event(Enum):
    """What a system acknowledgement from the hub tells its receiver."""

    ACCEPTED = "accepted"  # the hub journaled the packet
    DELIVERED = "delivered"  # the addressee's EDMS confirmed delivery
    NOT_DELIVERED = "not_delivered"  # not delivered within the deadline
    REFUSED = "refused"  # the packet was refused (format, signature, authorisation): codes follow
    BLOCKED = "blocked"  # sender's or addressee's access blocked
    OBSOLETE = "obsolete"  # old format version


@dataclass(frozen=True)
class SystemAck:
    ack_type: int
    errorcode: int | None  # None: the refusal's own codes are the errorcodes


# THE mapping (docs/design.md "Acknowledgement dialects" repeats it).
SYSTEM_ACKS: dict[Event, dict[str, SystemAck]] = {
    Event.ACCEPTED: {HUB: SystemAck(1, ErrorCode.ACCEPTED), ROUTER: SystemAck(100, 0)},
    Event.DELIVERED: {HUB: SystemAck(1, ErrorCode.DELIVERED), ROUTER: SystemAck(101, 0)},
    Event.NOT_DELIVERED: {HUB: SystemAck(1, ErrorCode.NOT_DELIVERED), ROUTER: SystemAck(103, ErrorCode.NOT_DELIVERED)},
    Event.REFUSED: {HUB: SystemAck(1, None), ROUTER: SystemAck(103, None)},
    Event.BLOCKED: {HUB: SystemAck(1, None), ROUTER: SystemAck(104, None)},
    Event.OBSOLETE: {HUB: SystemAck(1, None), ROUTER: SystemAck(105, None)},
}

# Delivery acks a receiver may send (either dialect): ack_type 1 with one of these codes.
DELIVERY_SUCCESS_CODES = frozenset({0, int(ErrorCode.DELIVERED)})


def check_dialect(value: str) -> str:
    if value not in DIALECTS:
        raise ValueError(f"ack dialect must be one of {', '.join(DIALECTS)}, not {value!r}")
    return value


def check_profile(value: str) -> str:
    if value not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {value!r}")
    return value


def system_ack(event: Event, dialect: str) -> SystemAck:
    return SYSTEM_ACKS[event][check_dialect(dialect)]


def refusal_event(codes: Sequence[int]) -> Event:
    """Which system ack answers a refusal with these codes (the first code leads)."""
    first = codes[0] if codes else None
    if first == ErrorCode.ADDRESSEE_BLOCKED:
        return Event.BLOCKED
    if first == ErrorCode.OBSOLETE_VERSION:
        return Event.OBSOLETE
    return Event.REFUSED


def is_delivery_confirmation(ack_type: int | None, codes: Sequence[int]) -> bool:
    """A receiver's delivery ack in either dialect: ack_type 1, and it says delivered (101 or 0)
    with no error code beside it."""
    return ack_type == 1 and bool(codes) and all(c in DELIVERY_SUCCESS_CODES for c in codes)


def read_system_ack(ack_type: int, codes: Sequence[int]) -> Event | None:
    """What a system ack from the hub says, in either dialect (SYSTEM_ACKS read backwards); an EDMS
    uses it to follow its documents. None: not a system ack (e.g. a registration ack)."""
    first = codes[0] if codes else None
    for event, forms in SYSTEM_ACKS.items():
        for form in forms.values():
            if form.ack_type != ack_type:
                continue
            if form.errorcode is not None and form.errorcode == first:
                return event
    # Anything else from the hub is a refusal: ack_type 1 with its codes (hub), 103-105 (router).
    if (ack_type == 1 and first not in (None, 0)) or ack_type in (103, 104, 105):
        return Event.REFUSED
    return None
