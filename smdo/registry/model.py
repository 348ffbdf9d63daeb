"""The registry's model: subscribers, their lifecycle, certificates, history, conclusions, and the
rules a field value must follow. No storage here (see `smdo.registry.store`)."""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from urllib.parse import urlsplit

from cryptography import x509

from smdo.dialects import ENVELOPE as ENVELOPE_PROFILE
from smdo.dialects import HUB as HUB_DIALECT
from smdo.unp import InvalidUnp, validate_unp

# The hub's own test counterpart: the conformance suite exchanges packets with an EDMS under
# test under this code, and a subscriber in testing may exchange packets with nobody else.
TEST_COUNTERPART_CODE = "SMDO-TEST"


class SubscriberStatus(str, Enum):
    REGISTERED = "registered"
    TESTING = "testing"
    CERTIFIED = "certified"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


S = SubscriberStatus
# The lifecycle, explicitly. Anything not listed is refused. Revoked is final: a revoked
# subscriber comes back only as a new registration.
TRANSITIONS: Mapping[SubscriberStatus, frozenset[SubscriberStatus]] = {
    S.REGISTERED: frozenset({S.TESTING, S.REVOKED}),
    S.TESTING: frozenset({S.CERTIFIED, S.REVOKED}),
    # A certified subscriber may be tested again (say, after an EDMS upgrade) before activation.
    S.CERTIFIED: frozenset({S.ACTIVE, S.TESTING, S.REVOKED}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.REVOKED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.REVOKED}),
    S.REVOKED: frozenset(),
}
# Statuses that may exchange packets with the test counterpart (and only with it).
UNDER_TEST = frozenset({S.TESTING, S.CERTIFIED})

CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class RegistryError(Exception):
    """A registry change that was refused; the message says what is wrong. Nothing was written."""


class UnknownSubscriber(RegistryError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown subscriber code {code!r}")
        self.code = code


class DuplicateSubscriber(RegistryError):
    def __init__(self, code: str) -> None:
        super().__init__(f"subscriber code {code!r} is already registered")
        self.code = code


class IllegalTransition(RegistryError):
    def __init__(self, code: str, old: SubscriberStatus, new: SubscriberStatus) -> None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[old])) or "none (final status)"
        super().__init__(
            f"subscriber {code}: status cannot go from {old.value} to {new.value} (allowed from {old.value}: {allowed})"
        )
        self.old, self.new = old, new


class InvalidField(RegistryError):
    """A field value that breaks a rule (code format, UNP, URL, GUID, delivery mode, certificates)."""


@dataclass(frozen=True)
class Subscriber:
    code: str
    name: str
    unp: str
    status: SubscriberStatus
    delivery_mode: str  # "push" | "pull"
    push_url: str | None
    edms_product: str
    edms_version: str
    sys_id: str
    contact: str
    cert_fingerprints: frozenset[str]
    # Which system acknowledgements its EDMS understands, and how its packets are authenticated
    # (smdo/dialects.py); its sending/receiving mail address for the classic mail route.
    ack_dialect: str = HUB_DIALECT
    profile: str = ENVELOPE_PROFILE
    mail_address: str | None = None

    @property
    def receives_by_mail(self) -> bool:
        """Its mailbox is mailed to it (router/mail_out.py): a pull subscriber with a mail address."""
        return bool(self.mail_address) and self.delivery_mode == "pull"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "unp": self.unp,
            "status": self.status.value,
            "delivery_mode": self.delivery_mode,
            "push_url": self.push_url,
            "edms_product": self.edms_product,
            "edms_version": self.edms_version,
            "sys_id": self.sys_id,
            "contact": self.contact,
            "cert_fingerprints": sorted(self.cert_fingerprints),
            "ack_dialect": self.ack_dialect,
            "profile": self.profile,
            "mail_address": self.mail_address,
        }


@dataclass(frozen=True)
class BoundCertificate:
    """A certificate bound to a subscriber: packets it signs count as that subscriber's."""

    fingerprint: str
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    pem: str
    added_at: datetime

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem.encode("ascii"))


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    from_status: SubscriberStatus | None
    to_status: SubscriberStatus | None
    reason: str
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Conclusion:
    """A conformance conclusion as stored: the signed document plus what the registry needs from it."""

    id: int
    code: str
    at: datetime
    suite_version: str
    passed: bool
    summary: dict[str, object]
    document: bytes  # the conclusion XML, signed by the hub



def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def check_code(code: str) -> str:
    if not CODE_PATTERN.fullmatch(code or ""):
        raise InvalidField(f"subscriber code {code!r} must be 1-64 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    return code


def check_unp(unp: str) -> str:
    try:
        return validate_unp(unp)
    except InvalidUnp as exc:
        raise InvalidField(str(exc)) from None


def check_push_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidField(f"push URL {url!r} must be an absolute http:// or https:// URL with a host")
    try:
        parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        raise InvalidField(f"push URL {url!r} has an invalid port") from None
    return url


def check_sys_id(sys_id: str) -> str:
    if sys_id:
        try:
            uuid.UUID(sys_id)
        except ValueError:
            raise InvalidField(f"EDMS system id {sys_id!r} must be a GUID, e.g. {uuid.uuid4()}") from None
    return sys_id


def check_mail_address(address: str) -> str:
    address = address.strip().lower()
    if not re.fullmatch(r"[a-z0-9._%+\-]{1,64}@[a-z0-9.\-]{1,190}\.[a-z]{2,24}", address):
        raise InvalidField(f"mail address {address!r} is not an address like edms@agency.by")
    return address


def check_choice(check: Callable[[str], str], value: str) -> str:
    """An ack dialect or a profile (smdo.dialects.check_dialect / check_profile) as InvalidField."""
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidField(str(exc)) from None


def delivery_of(push_url: str | None, pull: bool) -> tuple[str, str | None]:
    if push_url and pull:
        raise InvalidField("choose one delivery mode: a push URL or pull, not both")
    if push_url:
        return "push", check_push_url(push_url)
    if pull:
        return "pull", None
    raise InvalidField("a delivery mode is required: a push URL or pull")


def cert_time(cert: x509.Certificate, name: str) -> datetime:
    # cryptography >= 42 has the *_utc variants; naive datetimes are UTC by definition.
    value = getattr(cert, f"{name}_utc", None)
    return value if value is not None else getattr(cert, name).replace(tzinfo=timezone.utc)
