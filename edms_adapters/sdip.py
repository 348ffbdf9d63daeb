"""Registration card <-> SDIP Envelope (smdo.packet model): the half every EDMS kind shares.

Where the card's fields go:

    Document zone (msg_type 1, reply 3)  every field: number/date -> RegNumber, signer -> Author
        (with signdate), author -> Writer, addressees -> Addressee, files -> DocTransfer, title ->
        Document@title and Envelop@subject, parent -> DocParent.
    Task zone (msg_type 1)               task -> TaskNumber/task_text/deadline/Executor; the card's
        own number/date -> Referred (retype 1); author, signer -> AuthorOrganization (in that
        order); addressees -> Receiver; title -> Envelop@subject. The zone has no place for
        `pages` or `annotation`: they do not travel with a task.
    AddDocuments zone (msg_type 2)        supplement -> Folder (add_type, Note, Referred); files;
        addressees -> Receiver; title -> subject. The card's own number/date, kind, author and
        signer do not travel: the receiver sees the sending organisation as both.

Participants: Party.organisation/code -> Organization@name/@id; person/post -> OfficialPerson
@name/@position (a post without a person has no place in SDIP).
"""
from __future__ import annotations

from datetime import datetime, timezone

from edms_adapters.adapter import (
    Attachment,
    ParentRef,
    Party,
    Registration,
    RegistrationCard,
    SenderInfo,
    SupplementRef,
    TaskInfo,
)
from smdo import packet as p
from smdo.errors import RegistrationResult
from smdo.receipts import REFUSAL_REASONS, registration_ack


def _participant(party: Party) -> p.Participant:
    return p.Participant(
        organization=p.Organization(name=party.organisation, id=party.code or None),
        official_person=p.OfficialPerson(name=party.person, position=party.post or None)
        if party.person else None,
    )


def _party(organization: p.Organization | None, person: p.OfficialPerson | None, code: str = "") -> Party:
    return Party(
        organisation=organization.name if organization is not None else code,
        code=(organization.id if organization is not None else None) or code,
        person=person.name if person is not None else "",
        post=(person.position or "") if person is not None else "",
    )


def _file(f: Attachment) -> p.DocTransfer:
    return p.DocTransfer(name=f.name, type=f.media_type, data=f.content,
                         signatures=f.signatures, description=f.description or None)


def _attachment(f: p.DocTransfer) -> Attachment:
    return Attachment(name=f.name, content=f.data or b"", media_type=f.type,
                      description=f.description or "", signatures=f.signatures)


def _receivers(card: RegistrationCard) -> tuple[p.Receiver, ...]:
    seen: dict[str, p.Receiver] = {}
    for a in card.addressees:
        if a.code and a.code not in seen:
            part = _participant(a)
            seen[a.code] = p.Receiver(id=a.code, organization=part.organization,
                                      official_person=part.official_person)
    return tuple(seen.values())


def _doc_parent(parent: ParentRef) -> p.DocParent:
    return p.DocParent(
        delivery_type=1, idnumber=parent.idnumber, parorg_id=parent.organisation_code,
        reg_number=p.RegNumber(parent.reg_number, parent.reg_date),
        parmsg_id=parent.msg_id or None,
    )


def _parent_ref(d: p.DocParent) -> ParentRef:
    return ParentRef(msg_id=d.parmsg_id or "", idnumber=d.idnumber, organisation_code=d.parorg_id,
                     reg_number=d.reg_number.number, reg_date=d.reg_number.regdate)


def sdip_sender(sender: SenderInfo) -> p.Sender:
    return p.Sender(id=sender.code, sys_id=sender.sys_id, system=sender.system,
                    system_details=sender.system_details, name=sender.name or None)


def card_to_envelope(card: RegistrationCard, *, sender: SenderInfo, msg_id: str | None = None,
                     dtstamp: datetime | None = None) -> p.Envelope:
    """The card as an unsigned SDIP envelope from `sender` to every addressee with a code."""
    receivers = _receivers(card)
    if not receivers:
        raise ValueError("the card has no addressee with an SMDO code: nobody to send it to")
    zone: p.Zone
    if card.supplement is not None:
        s = card.supplement
        number: p.RegNumber | p.TaskNumber = (
            p.TaskNumber(s.reg_number, s.reg_date) if s.refers_to_task
            else p.RegNumber(s.reg_number, s.reg_date)
        )
        zone = p.AddDocuments(folders=(p.Folder(
            add_type=s.add_type,
            referred=(p.Referred(s.idnumber, 2 if s.refers_to_task else 1, number),),
            note=s.note or None,
            files=tuple(_file(f) for f in card.files),
        ),))
    elif card.task is not None:
        t = card.task
        zone = p.Task(
            idnumber=card.idnumber, task_reg=True, task_copy=False, task_text=t.text,
            task_number=p.TaskNumber(t.number, t.date),
            referred=(p.Referred(card.idnumber, 1, p.RegNumber(card.number, card.date)),),
            author_organizations=(_participant(card.author), _participant(card.signer)),
            kind=card.kind or None, deadline=t.deadline,
            doc_parent=_doc_parent(card.parent) if card.parent is not None else None,
            files=tuple(_file(f) for f in card.files),
            executors=(p.Executor(organization=_participant(t.executor).organization,
                                  responsible=True,
                                  official_person=_participant(t.executor).official_person),)
            if t.executor is not None else (),
        )
    else:
        signer = _participant(card.signer)
        zone = p.Document(
            idnumber=card.idnumber, type=0, kind=card.kind, pages=card.pages,
            reg_number=p.RegNumber(card.number, card.date),
            authors=(p.Author(organization=signer.organization,
                              official_person=signer.official_person, signdate=card.date),),
            title=card.title or None, annotation=card.annotation or None,
            doc_parent=_doc_parent(card.parent) if card.parent is not None else None,
            addressees=tuple(_participant(a) for a in card.addressees),
            files=tuple(_file(f) for f in card.files),
            writer=_participant(card.author),
        )
    msg_type = card.msg_type
    if card.supplement is None and card.task is not None:
        msg_type = p.DOCUMENT  # a task travels as a main message with a Task zone
    return p.Envelope(
        msg_id=msg_id or p.new_msg_id(),
        dtstamp=dtstamp or datetime.now(timezone.utc).replace(microsecond=0),
        header=p.Header(
            msg_type=msg_type,
            sender=sdip_sender(sender),
            receivers=receivers,
        ),
        body=zone,
        subject=card.title or None,
    )


def _addressees_from_receivers(env: p.Envelope) -> tuple[Party, ...]:
    return tuple(_party(r.organization, r.official_person, r.id) for r in env.header.receivers)


def envelope_to_card(env: p.Envelope) -> RegistrationCard:
    """The registration card of a document, task or supplement envelope."""
    zone = env.body
    title = env.subject or ""
    if isinstance(zone, p.Document):
        signer = zone.authors[0]
        writer = zone.writer
        return RegistrationCard(
            idnumber=zone.idnumber, number=zone.reg_number.number, date=zone.reg_number.regdate,
            title=zone.title or title, kind=zone.kind,
            author=_party(writer.organization, writer.official_person) if writer is not None
            else _party(signer.organization, signer.official_person),
            signer=_party(signer.organization, signer.official_person),
            addressees=tuple(_party(a.organization, a.official_person) for a in zone.addressees)
            or _addressees_from_receivers(env),
            files=tuple(_attachment(f) for f in zone.files),
            annotation=zone.annotation or "", pages=zone.pages,
            parent=_parent_ref(zone.doc_parent) if zone.doc_parent is not None else None,
        )
    if isinstance(zone, p.Task):
        own = next((r for r in zone.referred if isinstance(r.number, p.RegNumber)), None)
        orgs = zone.author_organizations
        executor = zone.executors[0] if zone.executors else None
        return RegistrationCard(
            idnumber=zone.idnumber,
            number=own.number.number if own is not None else zone.task_number.number,
            date=own.number.regdate if own is not None else zone.task_number.taskdate,
            title=title, kind=zone.kind or "",
            author=_party(orgs[0].organization, orgs[0].official_person),
            signer=_party(orgs[-1].organization, orgs[-1].official_person),
            addressees=_addressees_from_receivers(env),
            files=tuple(_attachment(f) for f in zone.files),
            parent=_parent_ref(zone.doc_parent) if zone.doc_parent is not None else None,
            task=TaskInfo(
                number=zone.task_number.number, date=zone.task_number.taskdate,
                text=zone.task_text, deadline=zone.deadline,
                executor=_party(executor.organization, executor.official_person)
                if executor is not None else None,
            ),
        )
    if isinstance(zone, p.AddDocuments):
        folder = zone.folders[0]
        ref = folder.referred[0]
        ref_date = ref.number.regdate if isinstance(ref.number, p.RegNumber) else ref.number.taskdate
        sender = Party(env.header.sender.name or env.header.sender.id, env.header.sender.id)
        return RegistrationCard(
            idnumber="", number="", date=env.dtstamp.date(), title=title, kind="",
            author=sender, signer=sender, addressees=_addressees_from_receivers(env),
            files=tuple(_attachment(f) for f in folder.files),
            supplement=SupplementRef(
                idnumber=ref.idnumber, reg_number=ref.number.number, reg_date=ref_date,
                refers_to_task=ref.retype == 2, add_type=folder.add_type, note=folder.note or "",
            ),
        )
    raise ValueError(f"an envelope with a {type(zone).__name__} zone is not a document")


# -- registration acknowledgements (smdo.receipts) ------------------------------------------

def registration_text(registration: Registration) -> str:
    """The AckResult text: what happened, in words a clerk at the sender can act on."""
    r = RegistrationResult(registration.result)
    if r is RegistrationResult.REGISTERED:
        return f"registered as {registration.number}"
    if r is RegistrationResult.REFUSED:
        return (f"registration refused: {REFUSAL_REASONS.get(registration.refusal, registration.refusal)}"
                f" ({registration.reason})")
    if r is RegistrationResult.NOT_REGISTRABLE:
        return f"not subject to registration: {registration.reason}"
    return f"signature not trusted: {registration.reason}"


def registration_envelope(registration: Registration, *, acknowledged_msg_id: str,
                          sender: SenderInfo, receiver_id: str, card: RegistrationCard | None,
                          msg_id: str | None = None) -> p.Envelope:
    """The registration acknowledgement (ack_type 2) answering a document, unsigned."""
    registered = registration.result == RegistrationResult.REGISTERED
    return registration_ack(
        acknowledged_msg_id=acknowledged_msg_id, sender=sdip_sender(sender),
        receiver_id=receiver_id, result=RegistrationResult(registration.result),
        text=registration_text(registration)[:2000], msg_id=msg_id,
        reason=registration.refusal or None
        if registration.result == RegistrationResult.REFUSED else None,
        inc_number=p.RegNumber(registration.number, registration.date)
        if registered and registration.date is not None else None,
        reg_number=p.RegNumber(card.number, card.date) if card is not None and card.number else None,
    )


def registration_of(ack: p.Acknowledgement) -> Registration:
    """What a registration acknowledgement says (its first result)."""
    result = ack.results[0]
    refusal = ack.notification.reason if ack.notification is not None else None
    return Registration(
        result=result.errorcode,
        number=ack.inc_number.number if ack.inc_number is not None else "",
        date=ack.inc_number.regdate if ack.inc_number is not None else None,
        reason=result.text, refusal=refusal or "",
    )
