"""Receipts: checking a receiver's signed delivery ack, and what a delivery outcome journals.

A delivery counts only when the receiver answers an Acknowledgement (ack_type 1, errorcode 101 in the
hub dialect or 0 in the router dialect: smdo/dialects.py) for that very msg_id, signed with a
certificate bound to that receiver (or, from a classic-profile receiver, unsigned over its own
channel). The sender then gets the hub's "delivered" (if it asked for acks), in its own dialect;
when the deadline passes first, "not delivered". The hub's own 101/102 are
packets like any other: journaled, and delivered to the sender by its delivery mode.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from signing.keys import certificate_fingerprint
from signing.trust import TrustStore
from smdo.check import read_packet, verify_packet
from smdo.dialects import CLASSIC, is_delivery_confirmation
from smdo.errors import ErrorCode, PacketRejected
from smdo.journal import Accepted, Claimed, DeliveryState, GroupCommitter, JournalStore, Record, StateChange
from smdo.packet import ACK_DELIVERY, ACKNOWLEDGEMENT, read_header
from smdo.xmlparse import Limits

from router.acks import HubAcks, dialect_of
from router.registry_view import RegistryView

log = logging.getLogger(__name__)

#: How many other ids a hub ack tries when a subscriber's packet holds its id (keyed ids make even
#: one collision a matter of a leaked key; the bound only keeps a broken store from looping).
MAX_ACK_ID_ATTEMPTS = 8

_DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


class BadReceipt(Exception):
    """The receiver's answer is not a valid delivery ack for this packet."""


class Receipts:
    def __init__(self, *, limits: Limits, trust: TrustStore, registry: RegistryView, acks: HubAcks,
                 store: JournalStore, committer: GroupCommitter, hub_code: str, delivery_deadline: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.limits, self.trust, self.registry, self.acks = limits, trust, registry, acks
        self.store, self.committer = store, committer
        self.hub_code, self.delivery_deadline, self.clock = hub_code, delivery_deadline, clock

    def check(self, body: bytes, delivery: Claimed, channel: str | None = None) -> None:
        """Raise BadReceipt unless `body` is `delivery.receiver`'s signed 101 for `delivery.msg_id`.

        `channel`: the subscriber the transport authenticated (mailbox mTLS, the mail route). A receiver
        registered in the classic profile sends its acks unsigned; they count only over such a channel.
        """
        receiver = self.registry.snapshot.get(delivery.receiver)
        classic = receiver is not None and receiver.profile == CLASSIC
        # Parse (hardened) and verify the signature and its certificate path; no XSD pass: the hub
        # forwards nothing from this ack, it only reads five header fields, each checked below.
        try:
            root = read_packet(body, self.limits)
            if classic and root.find(_DS_SIGNATURE) is None:
                if channel != delivery.receiver:
                    raise BadReceipt(f"an unsigned delivery ack counts only from {delivery.receiver}'s own channel")
                verified = None
            else:
                verified = verify_packet(root, self.trust)
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
        if verified is not None:
            bound = self.registry.by_fingerprint(certificate_fingerprint(verified.certificate))
            if bound is None or bound.code != delivery.receiver:
                raise BadReceipt(f"the ack is not signed with a certificate bound to {delivery.receiver}")
        if not is_delivery_confirmation(h.ack_type, h.ack_codes):
            raise BadReceipt(f"the receiver answered codes {list(h.ack_codes)}, not 101 (or 0 in the router dialect)")

    def delivered(self, delivery: Claimed, detail: str = "") -> list[Record]:
        records: list[Record] = [StateChange(delivery.msg_id, delivery.receiver, DeliveryState.DELIVERED,
                                             at=self.clock(), detail=detail, codes=(ErrorCode.DELIVERED,))]
        if delivery.msg_type != ACKNOWLEDGEMENT and delivery.acknow >= 2:
            records.append(self._hub_ack(ErrorCode.DELIVERED, delivery))
        return records

    def expired(self, delivery: Claimed) -> list[Record]:
        records: list[Record] = [StateChange(delivery.msg_id, delivery.receiver, DeliveryState.EXPIRED,
                                             at=self.clock(), detail="not delivered within the deadline",
                                             codes=(ErrorCode.NOT_DELIVERED,))]
        if delivery.msg_type != ACKNOWLEDGEMENT and delivery.acknow >= 1:
            records.append(self._hub_ack(ErrorCode.NOT_DELIVERED, delivery))
        return records

    async def settle(self, records: list[Record]) -> None:
        """Commit a delivery outcome (`delivered` / `expired` / a retry). The hub's ack in it is never
        lost: if its msg_id is already journaled as someone else's packet, it is made again under the
        next keyed id. Found as the hub's own, it is the same event reported by another worker: one
        packet is enough."""
        results = await self.committer.submit(records)
        change = next((r for r in records if isinstance(r, StateChange)), None)
        for record, duplicate in zip(records, results):
            if duplicate is None or not isinstance(record, Accepted) or record.origin != "hub" or change is None:
                continue
            await self._reissue(record, change)

    async def _reissue(self, record: Accepted, change: StateChange) -> None:
        """`record`'s id is taken: by the hub itself (same event, done) or by a subscriber (next id)."""
        msg_id = record.msg_id
        for attempt in range(1, MAX_ACK_ID_ATTEMPTS + 1):
            holder = await self.store.carried(msg_id)
            if holder is None or holder.origin == "hub":
                return
            log.warning("hub ack id %s is held by a packet from %s; issuing the ack under another id",
                        msg_id, holder.sender)
            ack_id, raw = self.acks.outcome(change.codes[0], change.msg_id, record.receivers[0], change.receiver,
                                            attempt=attempt,
                                            dialect=dialect_of(self.registry.snapshot, record.receivers[0]))
            again = self._ack_packet(ack_id, raw, acknowledged=change.msg_id, to=record.receivers[0])
            [duplicate] = await self.committer.submit([again])
            if duplicate is None:
                return
            msg_id = ack_id
        log.error("could not find a free id for the hub's ack of %s about %s", change.msg_id, change.receiver)

    def _hub_ack(self, code: int, delivery: Claimed) -> Accepted:
        """The hub's 101/102 to the sender, journaled and delivered like any other packet."""
        ack_id, raw = self.acks.outcome(code, delivery.msg_id, delivery.sender, delivery.receiver,
                                        dialect=dialect_of(self.registry.snapshot, delivery.sender))
        return self._ack_packet(ack_id, raw, acknowledged=delivery.msg_id, to=delivery.sender)

    def _ack_packet(self, ack_id: str, raw: bytes, *, acknowledged: str, to: str) -> Accepted:
        now = self.clock()
        return Accepted(
            msg_id=ack_id, sender=self.hub_code, receivers=(to,), msg_type=0, acknow=0,
            digest=hashlib.sha256(raw).hexdigest(), size=len(raw), received_at=now,
            deadline=now + self.delivery_deadline, raw=raw, answer=b"",
            deliveries=self.registry.deliveries_for([to]), ack_for=acknowledged, origin="hub",
        )
