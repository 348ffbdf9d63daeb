"""The hub's own acknowledgements, signed with the hub's key (loaded once, at start).

Each goes out in the dialect its receiver is registered with (smdo/dialects.py: `hub`, ack_type 1
with the event in errorcode; `router`, ack_type 100-105 with errorcode 0 for success).
"""
from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lxml import etree

from signing.algorithms import private_key_der
from signing.keys import Signer
from signing.xmldsig import sign_enveloped
from smdo.dialects import HUB, Event, refusal_event, system_ack
from smdo.errors import ErrorCode, Problem
from smdo.packet import Sender, to_element
from smdo.receipts import acknowledgement
from smdo.validation import is_obsolete_version

if TYPE_CHECKING:
    from smdo.registry import RegistrySnapshot

NIL_MSG_ID = "00000000-0000-0000-0000-000000000000"  # acknowledging a packet whose msg_id is unreadable
UNKNOWN_RECEIVER = "UNKNOWN"
_HUB_IDS = uuid.UUID("6f1d2c1e-8a57-4b8e-9a43-5d0c6a0f8a11")  # namespace of the hub's sys_id (public)

TEXTS = {
    ErrorCode.ACCEPTED: "accepted by the hub",
    ErrorCode.DELIVERED: "delivered to the addressee",
    ErrorCode.NOT_DELIVERED: "not delivered within the deadline",
    ErrorCode.OBSOLETE_VERSION: "obsolete format version",
}
_OUTCOMES = {ErrorCode.DELIVERED: Event.DELIVERED, ErrorCode.NOT_DELIVERED: Event.NOT_DELIVERED}


def ack_id_key(signer: Signer) -> bytes:
    """The secret behind the hub's ack ids, derived from its private key: every worker and node of
    a hub holds that key, nobody else does, so no new secret file has to be shared or rotated."""
    der = private_key_der(signer.key)
    return hmac.new(b"smdo-hub acknowledgement ids", der, hashlib.sha256).digest()


def ack_msg_id(key: bytes, kind: int, msg_id: str, receiver: str, attempt: int = 0) -> str:
    """The same event always gets the same id, so two workers reporting it make one packet; keyed,
    so no subscriber can compute it in advance. `attempt` > 0: the next id, when a subscriber's
    packet already holds this one (router.receipts.settle)."""
    tag = f"{kind}:{msg_id}:{receiver}" + (f":{attempt}" if attempt else "")
    digest = hmac.new(key, tag.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def dialect_of(snapshot: RegistrySnapshot, code: str | None) -> str:
    """The ack dialect a subscriber is registered with; `hub` for anyone unknown."""
    subscriber = snapshot.get(code) if code else None
    return subscriber.ack_dialect if subscriber is not None else HUB


class HubAcks:
    """Builds and signs the hub's system acknowledgements in each receiver's dialect."""

    def __init__(self, signer: Signer, hub_code: str, hub_name: str) -> None:
        self.signer = signer
        self.id_key = ack_id_key(signer)
        self.sender = Sender(
            id=hub_code,
            sys_id=str(uuid.uuid5(_HUB_IDS, f"hub:{hub_code}")),
            system="smdo-hub",
            system_details="0.1",
            name=hub_name,
        )

    def sign(self, *, acknowledged_msg_id: str, receiver_id: str, results: Sequence[tuple[int, str]],
             msg_id: str | None = None, about_receiver: str | None = None, ack_type: int = 1) -> bytes:
        env = acknowledgement(
            acknowledged_msg_id=acknowledged_msg_id,
            ack_type=ack_type,
            sender=self.sender,
            receiver_id=receiver_id,
            results=list(results),
            msg_id=msg_id,
            about_receiver=about_receiver,
        )
        root = to_element(env)
        sign_enveloped(root, self.signer)  # appends ds:Signature to root
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def accepted(self, msg_id: str, sender_id: str, dialect: str = HUB) -> bytes:
        ack = system_ack(Event.ACCEPTED, dialect)
        return self.sign(acknowledged_msg_id=msg_id, receiver_id=sender_id, ack_type=ack.ack_type,
                         results=[(int(ack.errorcode or 0), TEXTS[ErrorCode.ACCEPTED])])

    def rejected(self, msg_id: str | None, sender_id: str | None, problems: Sequence[Problem],
                 dialect: str = HUB) -> bytes:
        results = [(p.code, str(p)[:1000]) for p in problems]
        if is_obsolete_version(problems):  # an old format (SDIP-1.0): 105 leads, the real router's answer
            results.insert(0, (int(ErrorCode.OBSOLETE_VERSION), TEXTS[ErrorCode.OBSOLETE_VERSION]))
        ack = system_ack(refusal_event([code for code, _ in results]), dialect)
        return self.sign(
            acknowledged_msg_id=msg_id or NIL_MSG_ID,
            receiver_id=sender_id or UNKNOWN_RECEIVER,
            results=results,
            ack_type=ack.ack_type,
        )

    def outcome(self, code: int, msg_id: str, sender_id: str, receiver: str, text: str = "",
                attempt: int = 0, dialect: str = HUB) -> tuple[str, bytes]:
        """A delivered (101) or not delivered (102) ack about one receiver: (its msg_id, signed bytes)."""
        ack_id = ack_msg_id(self.id_key, code, msg_id, receiver, attempt)
        ack = system_ack(_OUTCOMES[ErrorCode(code)], dialect)
        text = text or f"{TEXTS[ErrorCode(code)]} {receiver}"
        errorcode = code if ack.errorcode is None else int(ack.errorcode)
        return ack_id, self.sign(acknowledged_msg_id=msg_id, receiver_id=sender_id, results=[(errorcode, text)],
                                 msg_id=ack_id, about_receiver=receiver, ack_type=ack.ack_type)
