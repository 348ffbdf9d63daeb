"""Acknowledgement builders (msg_type 0) used by the hub and the EDMS emulations.

`acknowledgement` is the general builder; `delivery_ack`, `registration_ack` and
`notification` are the three kinds the exchange needs, with their codes and texts.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from smdo.errors import ErrorCode, RegistrationResult
from smdo.packet import (
    ACK_DELIVERY,
    ACK_NOTIFICATION,
    ACK_REGISTRATION,
    ACKNOWLEDGEMENT,
    AckResult,
    Acknowledgement,
    Envelope,
    Header,
    Notification,
    Receiver,
    RegNumber,
    Sender,
    new_msg_id,
)

# Texts of the codes an acknowledgement carries.
DELIVERY_TEXTS: dict[int, str] = {
    ErrorCode.ACCEPTED: "accepted by the hub",
    ErrorCode.DELIVERED: "delivered to the addressee",
    ErrorCode.NOT_DELIVERED: "not delivered within the deadline",
    ErrorCode.ACCEPTED_WITH_ERRORS: "accepted with errors",
    ErrorCode.ADDRESSEE_BLOCKED: "the addressee's access is blocked",
    ErrorCode.OBSOLETE_VERSION: "obsolete format version",
}

REGISTRATION_TEXTS: dict[int, str] = {
    RegistrationResult.REGISTERED: "registered",
    RegistrationResult.NOT_REGISTRABLE: "not subject to registration",
    RegistrationResult.REFUSED: "registration refused",
    RegistrationResult.SIGNATURE_NOT_TRUSTED: "signature not trusted",
}

# The closed list of reasons to refuse registration (the XSD's RefusalReason).
REFUSAL_REASONS: dict[str, str] = {
    "not_registrable": "not subject to registration",
    "addressing_error": "addressing error",
    "no_text": "no text",
    "no_signature": "no signature",
    "attachment_missing": "an attachment is missing or the page count is wrong",
    "no_number_date": "no number or date",
    "illegible": "illegible",
    "restricted_access": "restricted-access marking",
    "received_on_paper": "already received on paper",
}

# Notification events (the XSD's NotificationEvent).
EVENTS: dict[str, str] = {
    "registered": "registered",
    "refused": "refused",
    "executor_assigned": "executor assigned",
    "report_prepared": "report prepared",
    "report_sent": "report sent",
    "execution_changed": "course of execution changed",
    "published": "published",
}


def acknowledgement(
    *,
    acknowledged_msg_id: str,
    ack_type: int,
    sender: Sender,
    receiver_id: str,
    results: Sequence[tuple[int, str]],
    reg_number: RegNumber | None = None,
    inc_number: RegNumber | None = None,
    event: Notification | None = None,
    msg_id: str | None = None,
    dtstamp: datetime | None = None,
    about_receiver: str | None = None,
) -> Envelope:
    """An acknowledgement (msg_type 0) of `acknowledged_msg_id`, from `sender` to `receiver_id`."""
    if not results:
        raise ValueError("an acknowledgement needs at least one result")
    return Envelope(
        msg_id=msg_id or new_msg_id(),
        dtstamp=dtstamp or datetime.now(timezone.utc),
        # Acknowledgements are not themselves acknowledged (msg_acknow 0).
        header=Header(msg_type=ACKNOWLEDGEMENT, sender=sender, receivers=(Receiver(id=receiver_id),), msg_acknow=0),
        body=Acknowledgement(
            msg_id=acknowledged_msg_id,
            ack_type=ack_type,
            results=tuple(AckResult(int(code), text) for code, text in results),
            reg_number=reg_number,
            inc_number=inc_number,
            notification=event,
            receiver=about_receiver,
        ),
    )


def delivery_ack(
    *,
    acknowledged_msg_id: str,
    sender: Sender,
    receiver_id: str,
    code: int = ErrorCode.DELIVERED,
    text: str | None = None,
    extra: Sequence[tuple[int, str]] = (),
    msg_id: str | None = None,
    about_receiver: str | None = None,
) -> Envelope:
    """A delivery acknowledgement (ack_type 1): 100 accepted, 101 delivered, 102 not delivered, ...

    `extra` adds further results, e.g. the format codes of a refused packet; `about_receiver` names
    the receiver of the acknowledged message it is about (the hub's 101/102).
    """
    return acknowledgement(
        acknowledged_msg_id=acknowledged_msg_id,
        ack_type=ACK_DELIVERY,
        sender=sender,
        receiver_id=receiver_id,
        results=[(int(code), text or DELIVERY_TEXTS.get(int(code), "")), *extra],
        msg_id=msg_id,
        about_receiver=about_receiver,
    )


def registration_ack(
    *,
    acknowledged_msg_id: str,
    sender: Sender,
    receiver_id: str,
    result: RegistrationResult,
    inc_number: RegNumber | None = None,
    reg_number: RegNumber | None = None,
    reason: str | None = None,
    text: str | None = None,
    msg_id: str | None = None,
) -> Envelope:
    """A registration acknowledgement (ack_type 2) from the recipient.

    Registered needs `inc_number` (the recipient's incoming number and date); refused needs a
    `reason` from REFUSAL_REASONS, carried as a "refused" Notification beside the result.
    """
    result = RegistrationResult(result)
    event = None
    if result is RegistrationResult.REGISTERED and inc_number is None:
        raise ValueError("a 'registered' acknowledgement needs inc_number")
    if result is RegistrationResult.REFUSED:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"refusal reason must be one of {sorted(REFUSAL_REASONS)}, not {reason!r}")
        event = Notification(event="refused", reason=reason)
    if text is None:
        text = REGISTRATION_TEXTS[result]
        if reason is not None:
            text += f": {REFUSAL_REASONS[reason]}"
    return acknowledgement(
        acknowledged_msg_id=acknowledged_msg_id,
        ack_type=ACK_REGISTRATION,
        sender=sender,
        receiver_id=receiver_id,
        results=[(int(result), text)],
        reg_number=reg_number,
        inc_number=inc_number,
        event=event,
        msg_id=msg_id,
    )


def notification(
    *,
    acknowledged_msg_id: str,
    sender: Sender,
    receiver_id: str,
    event: str,
    reason: str | None = None,
    inc_number: RegNumber | None = None,
    comment: str | None = None,
    date: datetime | None = None,
    msg_id: str | None = None,
) -> Envelope:
    """An event notification (ack_type 4) about a document: registered, refused, executor assigned, ..."""
    if event not in EVENTS:
        raise ValueError(f"event must be one of {sorted(EVENTS)}, not {event!r}")
    if event == "refused" and reason not in REFUSAL_REASONS:
        raise ValueError(f"a refusal needs a reason from {sorted(REFUSAL_REASONS)}")
    if event == "registered" and inc_number is None:
        raise ValueError("a 'registered' notification needs inc_number")
    text = EVENTS[event] + (f": {REFUSAL_REASONS[reason]}" if reason else "")
    return acknowledgement(
        acknowledged_msg_id=acknowledged_msg_id,
        ack_type=ACK_NOTIFICATION,
        sender=sender,
        receiver_id=receiver_id,
        results=[(0, text)],
        inc_number=inc_number,
        event=Notification(event=event, reason=reason, date=date or datetime.now(timezone.utc), comment=comment),
        msg_id=msg_id,
    )
