"""The hub's own acknowledgements, signed with the hub's key (loaded once, at start)."""
from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence

from lxml import etree

from signing.algorithms import private_key_der
from signing.keys import Signer
from signing.xmldsig import sign_enveloped
from smdo.errors import ErrorCode, Problem
from smdo.packet import Sender, to_element
from smdo.receipts import acknowledgement

NIL_MSG_ID = "00000000-0000-0000-0000-000000000000"  # acknowledging a packet whose msg_id is unreadable
UNKNOWN_RECEIVER = "UNKNOWN"
_HUB_IDS = uuid.UUID("6f1d2c1e-8a57-4b8e-9a43-5d0c6a0f8a11")  # namespace of the hub's sys_id (public)

TEXTS = {
    ErrorCode.ACCEPTED: "accepted by the hub",
    ErrorCode.DELIVERED: "delivered to the addressee",
    ErrorCode.NOT_DELIVERED: "not delivered within the deadline",
}


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


class HubAcks:
    """Builds and signs delivery acknowledgements (ack_type 1) from the hub."""

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
             msg_id: str | None = None, about_receiver: str | None = None) -> bytes:
        env = acknowledgement(
            acknowledged_msg_id=acknowledged_msg_id,
            ack_type=1,
            sender=self.sender,
            receiver_id=receiver_id,
            results=list(results),
            msg_id=msg_id,
            about_receiver=about_receiver,
        )
        root = to_element(env)
        sign_enveloped(root, self.signer)  # appends ds:Signature to root
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def accepted(self, msg_id: str, sender_id: str) -> bytes:
        return self.sign(acknowledged_msg_id=msg_id, receiver_id=sender_id,
                         results=[(ErrorCode.ACCEPTED, TEXTS[ErrorCode.ACCEPTED])])

    def rejected(self, msg_id: str | None, sender_id: str | None, problems: Sequence[Problem]) -> bytes:
        return self.sign(
            acknowledged_msg_id=msg_id or NIL_MSG_ID,
            receiver_id=sender_id or UNKNOWN_RECEIVER,
            results=[(p.code, str(p)[:1000]) for p in problems],
        )

    def outcome(self, code: int, msg_id: str, sender_id: str, receiver: str, text: str = "",
                attempt: int = 0) -> tuple[str, bytes]:
        """A 101 (delivered) or 102 (not delivered) ack about one receiver: (its msg_id, signed bytes)."""
        ack_id = ack_msg_id(self.id_key, code, msg_id, receiver, attempt)
        text = text or f"{TEXTS[ErrorCode(code)]} {receiver}"
        return ack_id, self.sign(acknowledged_msg_id=msg_id, receiver_id=sender_id,
                                 results=[(code, text)], msg_id=ack_id, about_receiver=receiver)
