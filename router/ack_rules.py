"""Which acknowledgements a subscriber may send through `POST /smdo/v1/packets`.

The hub alone speaks for the hub: a delivery outcome (100 accepted ... 105 obsolete version, in
particular 101 delivered / 102 not delivered) is made and signed by the hub, never relayed from a
subscriber. A subscriber may acknowledge only a message the hub carried to it, and only back to that
message's sender (checked against the journal in `router.ingress.acknowledged_original`).
docs/design.md has the same table.
"""
from __future__ import annotations

from smdo.errors import ErrorCode, Problem
from smdo.packet import PacketHeader

#: The hub's own delivery-outcome codes; no subscriber may put them on an acknowledgement.
HUB_CODES = frozenset(range(100, 106))

#: ack_type -> who may send it through the packets endpoint.
#: "hub" = the hub only (refused from any subscriber); "receiver" = a receiver of the acknowledged
#: message, addressed to that message's sender only.
WHO_MAY_SEND: dict[int, str] = {
    1: "receiver",  # delivery ack carrying the receiver's own check codes; never codes 100-105
    2: "receiver",  # registration result (0 registered, 1 not registrable, 2 refused, 3 untrusted)
    4: "receiver",  # notification (an event about the document)
    # The SMDO router's own dialect (ack_type 100-105): made by the hub, never by a subscriber.
    **{ack_type: "hub" for ack_type in range(100, 106)},
}


def subscriber_ack_refusal(header: PacketHeader) -> Problem | None:
    """Why a subscriber may not send this acknowledgement at all, or None (then the receiver ->
    sender rule still applies)."""
    ack_type = header.ack_type
    who = WHO_MAY_SEND.get(ack_type) if ack_type is not None else None
    if who is None:
        return Problem(ErrorCode.WRONG_MESSAGE_TYPE, f"acknowledgement type {ack_type} is not one a subscriber "
                       "may send (1, 2 or 4)", "Body/Acknowledgement@ack_type")
    if who == "hub":
        return Problem(ErrorCode.WRONG_MESSAGE_TYPE, f"acknowledgement type {ack_type} is the hub's own: "
                       "only the hub reports what happened to a message", "Body/Acknowledgement@ack_type")
    hub_codes = sorted(set(header.ack_codes) & HUB_CODES)
    if hub_codes:
        return Problem(ErrorCode.WRONG_MESSAGE_TYPE, f"errorcode {hub_codes[0]} is the hub's own delivery outcome: "
                       "only the hub says a message was accepted, delivered or not delivered",
                       "Body/Acknowledgement/AckResult@errorcode")
    return None
