"""The adapter interface: an EDMS's registration card, and what a new EDMS kind implements.

Every EDMS keeps documents as its own kind of record. The hub only understands SDIP packets. An
adapter translates between the two through one neutral form, the `RegistrationCard`:

    native record  <-- adapter -->  RegistrationCard  <-- edms_adapters.sdip -->  SDIP Envelope

so a new EDMS kind writes only `to_card` and `from_card` (one new module); the SDIP side, the
signatures and the registration acknowledgements are shared.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Generic, TypeVar

# SDIP msg_type values (field notes: Header).
MAIN_DOCUMENT = 1
SUPPLEMENT = 2
REPLY = 3
REPLY_SUPPLEMENT = 4


@dataclass(frozen=True)
class Party:
    """An organisation, optionally with an official person: author, signer or addressee."""

    organisation: str
    code: str = ""  # the organisation's SMDO subscriber code, when it is one
    person: str = ""
    post: str = ""


@dataclass(frozen=True)
class Attachment:
    """One file of the document, with the detached signatures of whoever signed it."""

    name: str
    content: bytes
    media_type: str = "application/octet-stream"
    description: str = ""
    signatures: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class ParentRef:
    """What a reply answers (SDIP DocParent): the original's ids and registration number."""

    msg_id: str
    idnumber: str
    organisation_code: str
    reg_number: str
    reg_date: date


@dataclass(frozen=True)
class TaskInfo:
    """An instruction (SDIP Task zone) carried instead of a plain document."""

    number: str
    date: date
    text: str
    deadline: date | None = None
    executor: Party | None = None


@dataclass(frozen=True)
class SupplementRef:
    """What a supplement adds to (SDIP AddDocuments/Folder/Referred)."""

    idnumber: str
    reg_number: str
    reg_date: date
    refers_to_task: bool = False
    add_type: int = 0  # 0 attachment, 1 information material, 2 reference
    note: str = ""


@dataclass(frozen=True)
class RegistrationCard:
    """The registration card every EDMS keeps, in neutral form.

    `number`/`date` are the sender's own registration; `idnumber` is the sender's own record id.
    At most one of `parent` (a reply), `task` (an instruction) or `supplement` is set.
    """

    idnumber: str
    number: str
    date: date
    title: str
    kind: str
    author: Party
    signer: Party
    addressees: tuple[Party, ...]
    files: tuple[Attachment, ...] = ()
    annotation: str = ""
    pages: int = 1
    parent: ParentRef | None = None
    task: TaskInfo | None = None
    supplement: SupplementRef | None = None

    @property
    def msg_type(self) -> int:
        """The SDIP msg_type this card travels as."""
        if self.supplement is not None:
            return SUPPLEMENT
        if self.parent is not None:
            return REPLY
        return MAIN_DOCUMENT

    @property
    def receiver_codes(self) -> tuple[str, ...]:
        """The SMDO codes the packet goes to, in addressee order, without repeats."""
        return tuple(dict.fromkeys(a.code for a in self.addressees if a.code))

    def with_changes(self, **changes: object) -> RegistrationCard:
        return replace(self, **changes)


@dataclass(frozen=True)
class Registration:
    """How a recipient answered a document: smdo.errors.RegistrationResult plus its details.

    `number`/`date` are the recipient's incoming registration (when registered); `reason` says
    why not; `refusal` is the closed-list code of a refusal (smdo.receipts.REFUSAL_REASONS).
    """

    result: int
    number: str = ""
    date: date | None = None
    reason: str = ""
    refusal: str = ""


Native = TypeVar("Native")


class EdmsAdapter(ABC, Generic[Native]):
    """What one EDMS kind implements: its native record <-> the registration card.

    The SDIP side is shared: `to_envelope`/`from_envelope` go through the card, so an adapter that
    gets `to_card`/`from_card` right gets SDIP right.
    """

    #: the name used on the command line (`smdo edms run NAME`) and in the registry
    name: str = ""
    #: product name and version put into Sender@system / system_details
    product: str = ""
    version: str = "1.0"
    #: how packets arrive: "push" (the hub POSTs to our endpoint) or "pull" (we poll the mailbox)
    inbound: str = "push"
    #: how packets leave: "direct" (sent as soon as created) or "folder" (files in an outbox folder)
    outbound: str = "direct"
    #: first letter of this EDMS's incoming registration numbers ("R" -> "R-2026/0001")
    number_letter: str = "R"
    #: how its packets are authenticated (smdo/dialects.py): "envelope" (signed packets) or
    #: "classic" (unsigned envelope, signed files); "mail" inbound/outbound is the classic transport
    profile: str = "envelope"
    #: which system acknowledgements it understands: "hub" or "router" (smdo/dialects.py)
    ack_dialect: str = "hub"

    def client_form(self, root) -> None:  # type: ignore[no-untyped-def]
        """Rewrite an outgoing packet tree into this EDMS's own way of writing SDIP (default: as is)."""
        return None

    @abstractmethod
    def to_card(self, record: Native) -> RegistrationCard:
        """The native record as a registration card."""

    @abstractmethod
    def from_card(self, card: RegistrationCard) -> Native:
        """A registration card as the native record."""

    @abstractmethod
    def dump(self, record: Native) -> bytes:
        """The native record as the bytes the EDMS stores or exchanges (file, JSON body)."""

    @abstractmethod
    def load(self, data: bytes) -> Native:
        """Native bytes back to a record; raises ValueError naming what is wrong."""

    def to_envelope(self, record: Native, *, sender: SenderInfo, msg_id: str | None = None):
        """The native record as an unsigned SDIP Envelope from `sender`."""
        from edms_adapters.sdip import card_to_envelope

        return card_to_envelope(self.to_card(record), sender=sender, msg_id=msg_id)

    def from_envelope(self, envelope) -> Native:
        """An SDIP Envelope (document, task, supplement or reply) as the native record."""
        from edms_adapters.sdip import envelope_to_card

        return self.from_card(envelope_to_card(envelope))


@dataclass(frozen=True)
class SenderInfo:
    """Who sends: the agency's code and name, and its EDMS (Sender@sys_id/system/system_details)."""

    code: str
    name: str
    sys_id: str
    system: str
    system_details: str = "1.0"
    extra: dict[str, str] = field(default_factory=dict)
