"""The receiving side of the test counterpart: every packet that reaches the suite, checked and kept.

Through the hub, the counterpart is a push-mode subscriber: the hub POSTs packets to it and it
answers with its signed delivery acknowledgement (101). Facing an EDMS directly (--endpoint), it
plays the hub: the EDMS POSTs its packets to it and gets the hub-style answer (100). Either way
each packet is checked (parse, schema, signature) and kept with what was found, so a case can
say exactly what was wrong with what the EDMS sent.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from signing.keys import Signer, certificate_fingerprint
from signing.trust import TrustStore
from smdo import packet as p
from smdo.check import read_packet, validate_packet, verify_files, verify_packet
from smdo.conformance.packets import COUNTERPART, sign
from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.receipts import delivery_ack


@dataclass(frozen=True)
class Received:
    """One packet that reached the suite, and what its checks found."""

    raw: bytes
    at: float  # time.monotonic() when it arrived
    header: p.PacketHeader | None
    envelope: p.Envelope | None
    problems: tuple[Problem, ...] = ()  # format and signature problems; empty when it passed every check
    signer_fingerprint: str | None = None

    @property
    def acknowledgement(self) -> p.Acknowledgement | None:
        body = self.envelope.body if self.envelope else None
        return body if isinstance(body, p.Acknowledgement) else None

    def acknowledges(self, msg_id: str, ack_type: int) -> bool:
        ack = self.acknowledgement
        return ack is not None and ack.msg_id == msg_id and ack.ack_type == ack_type


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/xml"


@dataclass
class Counterpart:
    """The suite's own subscriber: signs what it sends and answers, keeps what it receives."""

    signer: Signer
    trust: TrustStore
    received: list[Received] = field(default_factory=list)
    _arrived: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._arrived is None:  # created lazily, inside the running loop
            self._arrived = asyncio.Condition()
        return self._arrived

    def check(self, raw: bytes) -> Received:
        """Parse, validate and verify one packet, keeping every finding instead of stopping."""
        now = time.monotonic()
        try:
            root = read_packet(raw)
        except PacketRejected as exc:
            return Received(raw, now, None, None, tuple(exc.problems))
        problems: list[Problem] = []
        try:
            header = p.read_header(root)
        except (AttributeError, TypeError, ValueError) as exc:
            return Received(raw, now, None, None, (Problem(ErrorCode.HEADER_ATTRIBUTE_MISSING, str(exc)),))
        try:
            validate_packet(root)
        except PacketRejected as exc:
            problems.extend(exc.problems)
        fingerprint = None
        try:
            if root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None:
                # The classic profile: the envelope unsigned, each file signed (smdo/dialects.py).
                verify_files(root, self.trust)
            else:
                fingerprint = certificate_fingerprint(verify_packet(root, self.trust).certificate)
        except PacketRejected as exc:
            problems.extend(exc.problems)
        envelope = None
        try:
            envelope = p.from_element(root)
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            if not problems:
                problems.append(Problem(ErrorCode.INVALID_ELEMENTS, f"cannot read the packet: {exc}"))
        return Received(raw, now, header, envelope, tuple(problems), fingerprint)

    async def take(self, raw: bytes, *, as_hub: bool) -> Answer:
        """Keep a packet that arrived and answer it: as the hub (100) or as a subscriber (101)."""
        received = self.check(raw)
        async with self._condition():
            self.received.append(received)
            self._condition().notify_all()
        header = received.header
        if header is None:
            return Answer(400, "; ".join(str(pr) for pr in received.problems).encode(), "text/plain")
        if as_hub and received.problems:
            status = 403 if any(pr.code in (-21, -22, -23) for pr in received.problems) else 400
            return Answer(status, "; ".join(str(pr) for pr in received.problems).encode(), "text/plain")
        code = ErrorCode.ACCEPTED if as_hub else ErrorCode.DELIVERED
        ack = delivery_ack(acknowledged_msg_id=header.msg_id, sender=COUNTERPART, receiver_id=header.sender_id,
                           code=code)
        return Answer(200, sign(p.to_element(ack), self.signer))

    def find(self, match: Callable[[Received], bool]) -> list[Received]:
        return [r for r in self.received if match(r)]

    async def wait_for(self, match: Callable[[Received], bool], timeout: float) -> Received | None:
        """The first packet (already here, or arriving within `timeout` s) that matches."""
        deadline = time.monotonic() + timeout
        async with self._condition():
            while True:
                found = self.find(match)
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._condition().wait(), remaining)
                except TimeoutError:
                    return None


def registration_of(msg_id: str, sender: str) -> Callable[[Received], bool]:
    """Matches a registration acknowledgement of `msg_id` from `sender`."""
    return lambda r: r.header is not None and r.header.sender_id == sender and r.acknowledges(msg_id, p.ACK_REGISTRATION)


def describe(problems: tuple[Problem, ...] | list[Problem]) -> str:
    return "; ".join(str(pr) for pr in problems)

