"""The hub's own acknowledgements, signed with the hub's key (loaded once, at start).

Each goes out in the dialect its receiver is registered with (smdo/dialects.py: `hub`, ack_type 1
with the event in errorcode; `router`, ack_type 100-105 with errorcode 0 for success).
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from lxml import etree

from signing.algorithms import private_key_der
from signing.keys import Signer
from signing.xmldsig import sign_enveloped
from smdo.dialects import HUB, Event, refusal_event, system_ack
from smdo.errors import ErrorCode, Problem
from smdo.packet import Sender, new_msg_id, to_element
from smdo.receipts import acknowledgement
from smdo.validation import is_obsolete_version

from router.ack_bytes import SignedTemplate, proven

if TYPE_CHECKING:
    from smdo.registry import RegistrySnapshot

log = logging.getLogger(__name__)

NIL_MSG_ID = "00000000-0000-0000-0000-000000000000"  # acknowledging a packet whose msg_id is unreadable
UNKNOWN_RECEIVER = "UNKNOWN"
_HUB_IDS = uuid.UUID("6f1d2c1e-8a57-4b8e-9a43-5d0c6a0f8a11")  # namespace of the hub's sys_id (public)

TEXTS = {
    ErrorCode.ACCEPTED: "accepted by the hub",
    ErrorCode.DELIVERED: "delivered to the addressee",
    ErrorCode.NOT_DELIVERED: "not delivered within the deadline",
    ErrorCode.ACCEPTED_WITH_ERRORS: "accepted by the hub with errors: a file's official signature does not verify",
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


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AckTemplates:
    """Unsigned hub acks made by copying a tree built once per shape (ack_type, with or without the
    receiver it is about) through the packet model, then filling in only ids, time, codes and texts.

    The copy is the model's own output with its values replaced, so the XML is the same as
    `to_element(acknowledgement(...))` would build (tests/test_ack_templates.py holds it to that).
    """

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._shapes: dict[tuple[int, bool], etree._Element] = {}

    def _shape(self, ack_type: int, about: bool) -> etree._Element:
        key = (ack_type, about)
        shape = self._shapes.get(key)
        if shape is None:  # a bounded set: the dialects' ack types times two
            shape = to_element(acknowledgement(
                acknowledged_msg_id=NIL_MSG_ID, ack_type=ack_type, sender=self.sender, receiver_id="-",
                results=[(0, "-")], msg_id=NIL_MSG_ID, about_receiver="-" if about else None,
                dtstamp=datetime(2000, 1, 1, tzinfo=timezone.utc)))
            self._shapes[key] = shape
        return shape

    def fill(self, *, acknowledged_msg_id: str, receiver_id: str, results: Sequence[tuple[int, str]],
             msg_id: str, dtstamp: datetime, about_receiver: str | None, ack_type: int) -> etree._Element:
        if not results:
            raise ValueError("an acknowledgement needs at least one result")
        root = copy.deepcopy(self._shape(ack_type, about_receiver is not None))
        root.set("msg_id", msg_id)
        root.set("dtstamp", dtstamp.isoformat())
        root.find("Header/Receiver").set("id", receiver_id)
        ack = root.find("Body/Acknowledgement")
        ack.set("msg_id", acknowledged_msg_id)
        if about_receiver is not None:
            ack.set("receiver", about_receiver)
        first = ack.find("AckResult")
        for index, (code, text) in enumerate(results):
            result = first if index == 0 else copy.deepcopy(first)
            result.set("errorcode", str(int(code)))
            result.text = text or None
            if index:
                ack.append(result)
        return root


_VALUE_NAMES = ("msg_id", "dtstamp", "to", "acknowledged", "about", "code", "text")


def _values(msg_id: str, dtstamp: datetime, to: str, acknowledged: str, about: str | None,
            result: tuple[int, str]) -> dict[str, str]:
    """An ack's values as its template's text (as AckTemplates.fill writes them into the tree)."""
    values = {"msg_id": msg_id, "dtstamp": dtstamp.isoformat(), "to": to, "acknowledged": acknowledged,
              "code": str(int(result[0])), "text": result[1]}
    if about is not None:
        values["about"] = about
    return values


class HubAcks:
    """Builds and signs the hub's system acknowledgements in each receiver's dialect."""

    def __init__(self, signer: Signer, hub_code: str, hub_name: str,
                 now: Callable[[], datetime] = _utc_now, new_id: Callable[[], str] = new_msg_id) -> None:
        self.signer = signer
        self.id_key = ack_id_key(signer)
        self.now, self.new_id = now, new_id
        self.sender = Sender(
            id=hub_code,
            sys_id=str(uuid.uuid5(_HUB_IDS, f"hub:{hub_code}")),
            system="smdo-hub",
            system_details="0.1",
            name=hub_name,
        )
        self.templates = AckTemplates(self.sender)
        # Signed bytes templates for one-result acks (100, 101, 102: one per delivered packet), by
        # (ack_type, about a receiver); None where a template did not prove itself (router/ack_bytes.py).
        self._signed: dict[tuple[int, bool], SignedTemplate | None] = {}

    def unsigned(self, *, acknowledged_msg_id: str, receiver_id: str, results: Sequence[tuple[int, str]],
                 msg_id: str | None = None, about_receiver: str | None = None, ack_type: int = 1) -> etree._Element:
        """The ack's tree before its signature (the template filled in)."""
        return self.templates.fill(acknowledged_msg_id=acknowledged_msg_id, receiver_id=receiver_id,
                                   results=results, msg_id=msg_id or self.new_id(), dtstamp=self.now(),
                                   about_receiver=about_receiver, ack_type=ack_type)

    def sign(self, *, acknowledged_msg_id: str, receiver_id: str, results: Sequence[tuple[int, str]],
             msg_id: str | None = None, about_receiver: str | None = None, ack_type: int = 1) -> bytes:
        msg_id, dtstamp = msg_id or self.new_id(), self.now()
        if len(results) == 1:
            template = self._signed_template(ack_type, about_receiver is not None)
            if template is not None:
                made = template.fill(_values(msg_id, dtstamp, receiver_id, acknowledged_msg_id, about_receiver,
                                             results[0]))
                if made is not None:
                    return made
        return self._sign_tree(acknowledged_msg_id=acknowledged_msg_id, receiver_id=receiver_id, results=results,
                               msg_id=msg_id, dtstamp=dtstamp, about_receiver=about_receiver, ack_type=ack_type)

    def _sign_tree(self, *, acknowledged_msg_id: str, receiver_id: str, results: Sequence[tuple[int, str]],
                   msg_id: str, dtstamp: datetime, about_receiver: str | None, ack_type: int) -> bytes:
        root = self.templates.fill(acknowledged_msg_id=acknowledged_msg_id, receiver_id=receiver_id,
                                   results=results, msg_id=msg_id, dtstamp=dtstamp,
                                   about_receiver=about_receiver, ack_type=ack_type)
        sign_enveloped(root, self.signer)  # appends ds:Signature to root
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _signed_template(self, ack_type: int, about: bool) -> SignedTemplate | None:
        key = (ack_type, about)
        if key not in self._signed:  # a bounded set: the dialects' ack types times two
            self._signed[key] = self._prove(ack_type, about)
        return self._signed[key]

    def _prove(self, ack_type: int, about: bool) -> SignedTemplate | None:
        names = _VALUE_NAMES if about else tuple(n for n in _VALUE_NAMES if n != "about")

        def unsigned(values: Mapping[str, str]) -> etree._Element:
            root = self.templates.fill(acknowledged_msg_id=NIL_MSG_ID, receiver_id="-", results=[(0, "-")],
                                       msg_id=NIL_MSG_ID, dtstamp=_utc_now(), about_receiver="-" if about else None,
                                       ack_type=ack_type)
            root.set("msg_id", values["msg_id"])
            root.set("dtstamp", values["dtstamp"])
            root.find("Header/Receiver").set("id", values["to"])
            ack = root.find("Body/Acknowledgement")
            ack.set("msg_id", values["acknowledged"])
            if about:
                ack.set("receiver", values["about"])
            result = ack.find("AckResult")
            result.set("errorcode", values["code"])
            result.text = values["text"]
            return root

        try:
            template = SignedTemplate.build(self.signer, names, unsigned)
        except (ValueError, KeyError) as exc:
            log.warning("no signed template for hub acks of type %d: %s", ack_type, exc)
            return None
        sample = dict(msg_id=new_msg_id(), dtstamp=_utc_now(), to="ORG-SAMPLE", acknowledged=new_msg_id(),
                      about="ORG-OTHER" if about else None, result=(101, "a sample text: 1, 2 (3)"))
        by_tree = self._sign_tree(acknowledged_msg_id=sample["acknowledged"], receiver_id=sample["to"],
                                  results=[sample["result"]], msg_id=sample["msg_id"], dtstamp=sample["dtstamp"],
                                  about_receiver=sample["about"], ack_type=ack_type)
        values = _values(sample["msg_id"], sample["dtstamp"], sample["to"], sample["acknowledged"], sample["about"],
                         sample["result"])
        return template if proven(template, values, by_tree) else None

    def accepted(self, msg_id: str, sender_id: str, dialect: str = HUB) -> bytes:
        ack = system_ack(Event.ACCEPTED, dialect)
        return self.sign(acknowledged_msg_id=msg_id, receiver_id=sender_id, ack_type=ack.ack_type,
                         results=[(int(ack.errorcode or 0), TEXTS[ErrorCode.ACCEPTED])])

    def accepted_with_errors(self, msg_id: str, sender_id: str, problems: Sequence[Problem]) -> bytes:
        """103 (hub dialect): accepted and carried on, with what is wrong (an official's file
        signature that fails)."""
        return self.sign(acknowledged_msg_id=msg_id, receiver_id=sender_id,
                         results=[(ErrorCode.ACCEPTED_WITH_ERRORS, TEXTS[ErrorCode.ACCEPTED_WITH_ERRORS]),
                                  *((p.code, str(p)[:1000]) for p in problems)])

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
