"""Rekord-style EDMS: speaks SDIP natively.

Its native record *is* the SDIP envelope (unsigned XML); it pushes packets to the hub and
receives the hub's pushes at its own HTTPS endpoint.
"""
from __future__ import annotations

import uuid

from edms_adapters.adapter import EdmsAdapter, RegistrationCard, SenderInfo
from edms_adapters.sdip import card_to_envelope, envelope_to_card
from smdo import packet as p
from smdo.errors import PacketRejected
from smdo.xmlparse import Limits, parse_xml

# Its own stored record, not a packet from outside: a file that came beside the envelope (a part of
# hundreds of MB) is inline here, so the hub's 30 MB packet bound would make the record unreadable.
OWN_RECORD = Limits(max_bytes=8 * 1024 ** 3)


class RekordAdapter(EdmsAdapter[p.Envelope]):
    """SDIP envelope <-> registration card (the identity on the wire)."""

    name = "rekord"
    product = "Rekord-emulated"
    inbound = "push"
    outbound = "direct"
    number_letter = "R"

    def to_card(self, record: p.Envelope) -> RegistrationCard:
        return envelope_to_card(record)

    def from_card(self, card: RegistrationCard) -> p.Envelope:
        # A stored record needs a sender; the card's signing organisation is the natural one.
        code = card.signer.code or card.author.code or "UNKNOWN"
        sender = SenderInfo(code=code, name=card.signer.organisation,
                            sys_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"rekord:{code}")),
                            system=self.product, system_details=self.version)
        return card_to_envelope(card, sender=sender)

    def dump(self, record: p.Envelope) -> bytes:
        return p.build(record)

    def load(self, data: bytes) -> p.Envelope:
        try:
            return p.from_element(parse_xml(data, OWN_RECORD))
        except PacketRejected as exc:
            raise ValueError(f"SDIP envelope: {exc}") from None
        except (AttributeError, TypeError, IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"SDIP envelope: not a complete envelope ({exc!r})") from None
