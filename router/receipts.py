"""Receipts: checking a receiver's signed delivery ack, and what a delivery outcome journals.

A delivery counts only when the receiver answers an Acknowledgement (ack_type 1, errorcode 101) for
that very msg_id, signed with a certificate bound to that receiver. The sender then gets the hub's
101 (if it asked for acks); when the deadline passes first, a 102.
"""
from __future__ import annotations

import logging
import time

from signing.keys import certificate_fingerprint
from smdo.check import read_packet, verify_packet
from smdo.errors import ErrorCode, PacketRejected
from smdo.journal import Accepted, Claimed, DeliveryState, Record, StateChange
from smdo.packet import ACK_DELIVERY, ACKNOWLEDGEMENT, read_header

from router.hub import Hub

log = logging.getLogger(__name__)


class BadReceipt(Exception):
    """The receiver's answer is not a valid delivery ack for this packet."""


def check_delivery_ack(hub: Hub, body: bytes, delivery: Claimed) -> None:
    """Raise BadReceipt unless `body` is `delivery.receiver`'s signed 101 for `delivery.msg_id`."""
    # Parse (hardened) and verify the signature and its certificate path; no XSD pass: the hub
    # forwards nothing from this ack, it only reads five header fields, each checked below.
    try:
        root = read_packet(body, hub.limits)
        verified = verify_packet(root, hub.trust)
        h = read_header(root)
    except PacketRejected as exc:
        raise BadReceipt(f"delivery ack refused: {exc}") from exc
    except (AttributeError, TypeError, ValueError) as exc:  # signed, but not shaped like a packet
        raise BadReceipt(f"delivery ack is not a well-formed acknowledgement: {exc}") from exc
    if h.msg_type != ACKNOWLEDGEMENT or h.ack_type != ACK_DELIVERY:
        raise BadReceipt(f"expected a delivery acknowledgement, got msg_type {h.msg_type} ack_type {h.ack_type}")
    if h.ack_msg_id != delivery.msg_id:
        raise BadReceipt(f"the ack is for {h.ack_msg_id}, not {delivery.msg_id}")
    if h.sender_id != delivery.receiver:
        raise BadReceipt(f"the ack comes from {h.sender_id}, not the receiver {delivery.receiver}")
    bound = hub.registry.by_fingerprint(certificate_fingerprint(verified.certificate))
    if bound is None or bound.code != delivery.receiver:
        raise BadReceipt(f"the ack is not signed with a certificate bound to {delivery.receiver}")
    if ErrorCode.DELIVERED not in h.ack_codes:
        raise BadReceipt(f"the receiver answered codes {list(h.ack_codes)}, not 101")


def delivered(hub: Hub, delivery: Claimed, detail: str = "") -> list[Record]:
    now = time.time()
    records: list[Record] = [StateChange(delivery.msg_id, delivery.receiver, DeliveryState.DELIVERED, at=now,
                                         detail=detail, codes=(ErrorCode.DELIVERED,))]
    if delivery.msg_type != ACKNOWLEDGEMENT and delivery.acknow >= 2:
        records.append(_hub_ack(hub, ErrorCode.DELIVERED, delivery))
    return records


def expired(hub: Hub, delivery: Claimed) -> list[Record]:
    now = time.time()
    records: list[Record] = [StateChange(delivery.msg_id, delivery.receiver, DeliveryState.EXPIRED, at=now,
                                         detail="not delivered within the deadline", codes=(ErrorCode.NOT_DELIVERED,))]
    if delivery.msg_type != ACKNOWLEDGEMENT and delivery.acknow >= 1:
        records.append(_hub_ack(hub, ErrorCode.NOT_DELIVERED, delivery))
    return records


def _hub_ack(hub: Hub, code: int, delivery: Claimed, attempt: int = 0) -> Accepted:
    ack_id, raw = hub.acks.outcome(code, delivery.msg_id, delivery.sender, delivery.receiver, attempt=attempt)
    return hub.hub_packet(msg_id=ack_id, raw=raw, acknowledged=delivery.msg_id, to=delivery.sender)


#: How many other ids a hub ack tries when a subscriber's packet holds its id (keyed ids make even
#: one collision a matter of a leaked key; the bound only keeps a broken store from looping).
MAX_ACK_ID_ATTEMPTS = 8


async def settle(hub: Hub, records: list[Record]) -> None:
    """Commit a delivery outcome (`delivered` / `expired`). The hub's ack in it is never lost: if its
    msg_id is already journaled as someone else's packet, it is made again under the next keyed id.
    Found as the hub's own, it is the same event reported by another worker: one packet is enough."""
    results = await hub.committer.submit(records)
    change = next((r for r in records if isinstance(r, StateChange)), None)
    for record, duplicate in zip(records, results):
        if duplicate is None or not isinstance(record, Accepted) or record.origin != "hub" or change is None:
            continue
        await _reissue(hub, record, change)


async def _reissue(hub: Hub, record: Accepted, change: StateChange) -> None:
    """`record`'s id is taken: by the hub itself (same event, done) or by a subscriber (next id)."""
    msg_id = record.msg_id
    for attempt in range(1, MAX_ACK_ID_ATTEMPTS + 1):
        holder = await hub.journal.accepted(msg_id)
        if holder is None or holder.origin == "hub":
            return
        log.warning("hub ack id %s is held by a packet from %s; issuing the ack under another id",
                    msg_id, holder.sender)
        ack_id, raw = hub.acks.outcome(change.codes[0], change.msg_id, record.receivers[0], change.receiver,
                                       attempt=attempt)
        again = hub.hub_packet(msg_id=ack_id, raw=raw, acknowledged=change.msg_id, to=record.receivers[0])
        [duplicate] = await hub.committer.submit([again])
        if duplicate is None:
            return
        msg_id = ack_id
    log.error("could not find a free id for the hub's ack of %s about %s", change.msg_id, change.receiver)
