"""Hypothesis strategies for SDIP packets, and the sample-packet script, for the format tests.

`envelopes()` draws any valid packet: every message type with its zone, optional parts
present or absent, texts in the whole XML character range, file content as bytes.
"""
from __future__ import annotations

import importlib.util
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

from hypothesis import strategies as st

from smdo.kinds import document_kinds
from smdo.packet import (
    AckResult,
    Acknowledgement,
    AddDocuments,
    Author,
    Confident,
    DocParent,
    Document,
    DocTransfer,
    Envelope,
    Executor,
    Folder,
    Header,
    Notification,
    OfficialPerson,
    Organization,
    Participant,
    Receiver,
    Referred,
    RegNumber,
    Sender,
    Task,
    TaskNumber,
    Validator,
)
from smdo.receipts import EVENTS, REFUSAL_REASONS

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_packets"


def load_regenerate() -> ModuleType:
    """sample_packets/regenerate.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("sample_packets_regenerate", SAMPLES / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Any character XML 1.0 can carry, except C0/C1 controls and surrogates; plus tab and newline.
_chars = st.characters(blacklist_categories=("Cs", "Cc"), max_codepoint=0xFFFD) | st.sampled_from("\t\n")
text = st.text(_chars, min_size=1, max_size=12)
opt_text = st.none() | text
guid = st.uuids().map(str)
code = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
opt_date = st.none() | dates
datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31),
    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=3)), timezone(timedelta(hours=-5, minutes=-30))]),
)

reg_numbers = st.builds(RegNumber, number=text, regdate=dates)
task_numbers = st.builds(TaskNumber, number=text, taskdate=dates)
organizations = st.builds(Organization, name=text, id=st.none() | code,
                          unp=st.none() | st.from_regex(r"[0-9A-Z]{9}", fullmatch=True))
persons = st.builds(OfficialPerson, name=text, position=opt_text, department=opt_text)
opt_person = st.none() | persons
# An organisation with or without one of its officials, or a person alone.
parties = st.one_of(st.tuples(organizations, opt_person), st.tuples(st.none(), persons))
participants = parties.map(lambda p: Participant(*p))
authors = st.builds(lambda p, n, d: Author(p[0], p[1], out_number=n, signdate=d),
                    parties, st.none() | reg_numbers, opt_date)
validators = st.builds(lambda p, a, d: Validator(p[0], a, official_person=p[1], date=d),
                       parties, st.integers(1, 4), opt_date)
executors = st.builds(lambda p, r: Executor(p[0], r, official_person=p[1]), parties, st.booleans())
confidents = st.builds(Confident, flag=st.booleans(), numcopy=st.none() | st.integers(1, 1000))
referreds = st.one_of(
    st.builds(Referred, idnumber=text, retype=st.just(1), number=reg_numbers),
    st.builds(Referred, idnumber=text, retype=st.just(2), number=task_numbers),
)
doc_parents = st.builds(DocParent, delivery_type=st.integers(0, 1), idnumber=text, parorg_id=code,
                        reg_number=reg_numbers, lastmsg_id=st.none() | guid, parmsg_id=st.none() | guid)
files = st.one_of(
    st.builds(DocTransfer, name=text, type=text, data=st.binary(max_size=48), reference_id=st.none(),
              signatures=st.lists(st.binary(min_size=1, max_size=24), max_size=2).map(tuple),
              description=opt_text, os=opt_text, char_set=opt_text),
    st.builds(DocTransfer, name=text, type=text, data=st.none(),
              reference_id=st.from_regex(r"[A-Za-z0-9_.@\-]{1,20}", fullmatch=True)),
)


def tuples(strategy: st.SearchStrategy, min_size: int = 0, max_size: int = 2) -> st.SearchStrategy:
    return st.lists(strategy, min_size=min_size, max_size=max_size).map(tuple)


def documents(reply: bool) -> st.SearchStrategy[Document]:
    return st.builds(
        Document, idnumber=text, type=st.integers(0, 2), kind=st.sampled_from(sorted(document_kinds())),
        pages=st.integers(0, 10**6), reg_number=reg_numbers, authors=tuples(authors, 1),
        title=opt_text, annotation=opt_text, confident=st.none() | confidents,
        doc_parent=doc_parents if reply else st.none() | doc_parents,
        referred=tuples(referreds), addressees=tuples(participants), files=tuples(files),
        validators=tuples(validators), writer=st.none() | participants,
    )


def tasks(reply: bool) -> st.SearchStrategy[Task]:
    return st.builds(
        Task, idnumber=text, task_reg=st.booleans(), task_copy=st.booleans(), task_text=text,
        task_number=task_numbers, referred=tuples(referreds, 1), author_organizations=tuples(participants, 1),
        kind=opt_text, deadline=opt_date, confident=st.none() | confidents,
        doc_parent=doc_parents if reply else st.none() | doc_parents,
        files=tuples(files), executors=tuples(executors),
    )


add_documents = st.builds(AddDocuments, folders=tuples(
    st.builds(Folder, add_type=st.integers(0, 2), referred=tuples(referreds, 1),
              note=st.none() | st.text(_chars, max_size=12), files=tuples(files)), 1))


@st.composite
def acknowledgements(draw: st.DrawFn) -> Acknowledgement:
    ack_type = draw(st.sampled_from([1, 2, 4]))
    results = draw(tuples(st.builds(AckResult, errorcode=st.integers(-2**31, 2**31 - 1),
                                    text=st.text(_chars, max_size=12)), 1, 3))
    inc_number = draw(st.none() | reg_numbers)
    notification = None
    if ack_type == 4 or draw(st.booleans()):
        event = draw(st.sampled_from(sorted(EVENTS)))
        reason = draw(st.sampled_from(sorted(REFUSAL_REASONS))) if event == "refused" else \
            draw(st.none() | st.sampled_from(sorted(REFUSAL_REASONS)))
        if event == "registered" and inc_number is None:
            inc_number = draw(reg_numbers)
        notification = Notification(event=event, reason=reason, date=draw(st.none() | datetimes),
                                     comment=draw(opt_text))
    if ack_type == 2 and any(r.errorcode == 0 for r in results) and inc_number is None:
        inc_number = draw(reg_numbers)
    return Acknowledgement(msg_id=draw(guid), ack_type=ack_type, results=results,
                           reg_number=draw(st.none() | reg_numbers), inc_number=inc_number,
                           notification=notification, receiver=draw(st.none() | code))


senders = st.builds(Sender, id=code, sys_id=guid, system=text, system_details=text, name=opt_text)
receivers = st.builds(Receiver, id=code, organization=st.none() | organizations, official_person=opt_person,
                      referred=tuples(referreds))


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    """Any valid packet, of any message type."""
    msg_type = draw(st.integers(0, 4))
    if msg_type == 0:
        body = draw(acknowledgements())
    elif msg_type in (2, 4):
        body = draw(add_documents)
    else:
        body = draw(documents(msg_type == 3) | tasks(msg_type == 3))
    return Envelope(
        msg_id=draw(guid), dtstamp=draw(datetimes), subject=draw(opt_text),
        format_type=draw(st.sampled_from(["SDIP-2.1", "SDIP-2.1.1"])),
        header=Header(msg_type=msg_type, sender=draw(senders), receivers=draw(tuples(receivers, 1, 3)),
                      msg_acknow=draw(st.integers(0, 2))),
        body=body,
    )
