"""The journal's records and views: what the hub writes and reads, independent of any database."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class DeliveryState(str, Enum):
    """Where one packet stands for one receiver."""

    ACCEPTED = "accepted"  # journaled, waiting to be delivered (push) or fetched (pull)
    FORWARDING = "forwarding"  # claimed: being pushed, or offered in a mailbox
    DELIVERED = "delivered"  # the receiver answered a valid signed delivery ack (101)
    RETRY_WAIT = "retry-wait"
    EXPIRED = "expired"  # deadline passed: not retried, sender told (102)
    # From the receiver's registration acknowledgement (ack_type 2).
    REGISTERED = "registered"
    REFUSED = "refused"
    NOT_REGISTRABLE = "not-registrable"
    SIGNATURE_NOT_TRUSTED = "signature-not-trusted"


#: States a delivery can still leave by being (re)sent.
PENDING_STATES = (DeliveryState.ACCEPTED, DeliveryState.RETRY_WAIT, DeliveryState.FORWARDING)
#: States set by a registration ack; a later delivery ack does not override them.
REGISTRATION_STATES = (
    DeliveryState.REGISTERED,
    DeliveryState.REFUSED,
    DeliveryState.NOT_REGISTRABLE,
    DeliveryState.SIGNATURE_NOT_TRUSTED,
)


@dataclass(frozen=True)
class RawFile:
    """A packet's bytes left in a file (a large body, spooled as it arrived): a store copies them from
    there in chunks, so the journal never holds a second copy of a large packet in memory."""

    path: Path
    size: int

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        with open(self.path, "rb") as file:
            while chunk := file.read(size):
                yield chunk


@dataclass(frozen=True)
class Accepted:
    """A packet the hub took responsibility for (from a subscriber, or made by the hub itself)."""

    msg_id: str
    sender: str
    receivers: tuple[str, ...]
    msg_type: int
    acknow: int  # msg_acknow: 0 none, 1 on errors, 2 always
    digest: str
    size: int
    received_at: float
    deadline: float
    raw: bytes | RawFile
    answer: bytes  # the hub's signed answer, returned again for a repeated msg_id
    deliveries: tuple[tuple[str, str], ...]  # (receiver, "push" | "pull")
    ack_for: str | None = None  # msg_id this acknowledgement acknowledges (msg_type 0)
    origin: str = "ingress"  # or "hub" for the hub's own 101/102 acknowledgements
    # State changes on other transactions that stand or fall with this one (a registration ack).
    also: tuple["StateChange", ...] = ()
    profile: str = "envelope"  # what authenticated it: "envelope" (its XML signature) or "classic"


@dataclass(frozen=True)
class Carried:
    """What the journal knows of an accepted packet, without its bytes (which may be 30 MB): who sent
    it, to whom and how, and whether the hub made it. For deciding who may act on it."""

    msg_id: str
    sender: str
    receivers: tuple[str, ...]
    origin: str
    deliveries: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Rejected:
    """A packet refused at some stage; journaled without its body."""

    stage: str
    codes: tuple[int, ...]
    digest: str
    size: int
    received_at: float
    msg_id: str | None = None
    sender: str | None = None
    message: str = ""


@dataclass(frozen=True)
class StateChange:
    """One receiver's delivery moved to another state."""

    msg_id: str
    receiver: str
    state: DeliveryState
    at: float
    next_at: float | None = None  # for retry-wait: when to try again
    detail: str = ""
    codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Archived:
    """An accepted packet's bytes moved out of the journal to `file` (relative to the archive folder)
    once every delivery of it was finished and the retention passed (smdo/journal/archive.py). Its
    entry keeps the digest, so the chain and the audit still speak for the packet."""

    msg_id: str
    digest: str
    size: int
    file: str
    at: float


Record = Accepted | Rejected | StateChange | Archived


@dataclass(frozen=True)
class Duplicate:
    """What a write found instead of storing an Accepted: the earlier packet with that msg_id."""

    msg_id: str
    digest: str
    answer: bytes


@dataclass(frozen=True)
class Claimed:
    """A delivery handed to one worker (push) or one mailbox fetch (pull) until `claim_until`."""

    delivery_id: int
    msg_id: str
    receiver: str
    sender: str
    mode: str
    attempts: int
    deadline: float
    acknow: int
    msg_type: int
    raw: bytes


@dataclass(frozen=True)
class DeliveryView:
    receiver: str
    mode: str
    state: str
    attempts: int
    updated_at: float
    next_at: float | None
    detail: str


@dataclass(frozen=True)
class TransactionView:
    msg_id: str | None
    outcome: str  # "accepted" | "rejected"
    sender: str | None
    receivers: tuple[str, ...]
    msg_type: int | None
    digest: str
    size: int
    received_at: float
    codes: tuple[int, ...]
    origin: str
    ack_for: str | None
    deliveries: tuple[DeliveryView, ...] = field(default=())
    archived: bool = False  # the packet's bytes were moved out of the journal (`Archived`)

    def as_dict(self) -> dict[str, object]:
        return {
            "msg_id": self.msg_id,
            "outcome": self.outcome,
            "sender": self.sender,
            "receivers": list(self.receivers),
            "msg_type": self.msg_type,
            "digest": self.digest,
            "size": self.size,
            "received_at": self.received_at,
            "codes": list(self.codes),
            "origin": self.origin,
            "ack_for": self.ack_for,
            "deliveries": [d.__dict__ for d in self.deliveries],
            "archived": self.archived,
        }


@dataclass(frozen=True)
class ReceiverBacklog:
    """Deliveries still waiting for one receiver (operators' overview and metrics)."""

    receiver: str
    mode: str
    waiting: int
    oldest_received_at: float | None
    oldest_deadline: float | None
    failing: int  # pending after a failed attempt: waiting for a retry, or a push retry under way
    max_attempts: int
    last_error: str  # the latest failed attempt's detail
    last_error_at: float | None
    next_try_at: float | None  # None while a retry is under way


@dataclass(frozen=True)
class Lanes:
    """How many more push deliveries each receiver may have in flight (a receiver not named may
    have `size`); a receiver with no room is not claimed at all, so its backlog stays unclaimed
    and does not stand in the way of the others'. With `bytes_room`, the chosen bodies' sizes
    together fit it too (the hub's memory budget: what is not claimed yet waits, it does not fail);
    when the room is the whole budget, one body larger than it may go alone."""

    size: int
    room: Mapping[str, int] = field(default_factory=dict)
    bytes_room: int | None = None
    whole_budget: bool = False  # bytes_room is all the budget there is (nothing else is held)

    def full(self) -> list[str]:
        return [receiver for receiver, room in self.room.items() if room <= 0]

    def admit(self, receivers: Sequence[str], sizes: Sequence[int] | None = None) -> list[int]:
        """Indexes of the candidates (in due order, by receiver, with their bodies' sizes) that fit
        their receivers' lanes and the bytes' room."""
        left = dict(self.room)
        bytes_left = self.bytes_room
        chosen: list[int] = []
        for i, receiver in enumerate(receivers):
            room = left.get(receiver, self.size)
            if room <= 0:
                continue
            if bytes_left is not None and sizes is not None:
                if sizes[i] > bytes_left and not (self.whole_budget and not chosen):
                    continue
                bytes_left -= min(sizes[i], bytes_left)
            left[receiver] = room - 1
            chosen.append(i)
        return chosen

    def lookahead(self, limit: int) -> int:
        """Candidates to look at for `limit` claims: some may not fit their receiver's lane."""
        return limit * 4
