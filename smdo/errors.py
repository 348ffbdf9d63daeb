"""Error codes of the SDIP format and the hub, and the exception that carries them."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    """Message-check codes (GOST R 53898 family), signature codes and hub delivery codes."""

    XML_UNPARSABLE = -1
    SIGNATURE_INVALID = -21
    SIGNATURE_MISSING = -22
    CERTIFICATE_NOT_TRUSTED = -23

    WRONG_FORMAT = 1
    WRONG_VERSION = 2
    WRONG_MESSAGE_TYPE = 3
    RECIPIENT_NOT_DEFINED = 10
    RECIPIENT_NOT_THIS_ORGANISATION = 11
    HEADER_ATTRIBUTE_MISSING = 12
    ZONE_MISSING = 20
    WRONG_ZONE_TYPE = 21
    DUPLICATE_ZONE = 22
    INVALID_ELEMENTS = 30
    WRONG_NESTING = 31
    WRONG_ELEMENT_COUNT = 32
    WRONG_ATTRIBUTE_TYPE = 33
    WRONG_ELEMENT_TYPE = 34
    REQUIRED_ATTRIBUTE_MISSING = 35
    CONFLICTS_WITH_EARLIER = 40

    # Codes the hub itself puts on delivery acknowledgements.
    ACCEPTED = 100
    DELIVERED = 101
    # Not in the field notes (they skip 102); the hub uses it for "not delivered in time".
    NOT_DELIVERED = 102
    ACCEPTED_WITH_ERRORS = 103
    ADDRESSEE_BLOCKED = 104
    OBSOLETE_VERSION = 105


class RegistrationResult(IntEnum):
    """Codes of a recipient's registration acknowledgement (ack_type 2)."""

    REGISTERED = 0
    NOT_REGISTRABLE = 1
    REFUSED = 2
    SIGNATURE_NOT_TRUSTED = 3


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a packet: its code, what is wrong, and where."""

    code: int
    message: str
    path: str | None = None

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"code {self.code}: {self.message}{where}"

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "path": self.path}


class PacketRejected(Exception):
    """A packet failed a stage of the check; carries every problem found at that stage."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("PacketRejected needs at least one problem")
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def code(self) -> int:
        """The code of the first problem, the one an acknowledgement leads with."""
        return self.problems[0].code
