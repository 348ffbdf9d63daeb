"""The subscriber registry: who may exchange packets through the hub, with which certificates.

Stored in `<data>/registry.db` (stdlib sqlite3, WAL). It is small and rarely written (by the
administrators' CLI and the conformance suite) and read on every packet by the hub, so the hub
works from an immutable `RegistrySnapshot` and reloads it when `Registry.data_version()` changes.

Every change runs in one transaction together with its history row: an error leaves nothing
half-written, and the history says who changed what, when and why.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signing.keys import certificate_fingerprint as fingerprint  # sha256 of the DER, lowercase hex
from smdo.dialects import ENVELOPE as ENVELOPE_PROFILE
from smdo.dialects import HUB as HUB_DIALECT
from smdo.dialects import check_dialect, check_profile
from smdo.errors import ErrorCode, Problem
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


class RegistrySnapshot:
    """An immutable view of the registry for the hot path: lookups are dict reads."""

    def __init__(self, subscribers: Mapping[str, Subscriber], version: int,
                 certificates: Mapping[str, Sequence[BoundCertificate]] | None = None) -> None:
        self._subscribers = dict(subscribers)
        self._certificates = {code: tuple(certs) for code, certs in (certificates or {}).items()}
        self.version = version

    def get(self, code: str) -> Subscriber | None:
        return self._subscribers.get(code)

    def certificates(self, code: str) -> tuple[BoundCertificate, ...]:
        """The certificates bound to a subscriber, oldest first (for the directory)."""
        return self._certificates.get(code, ())

    def subscribers(self) -> list[Subscriber]:
        return sorted(self._subscribers.values(), key=lambda s: s.code)

    def active(self) -> list[Subscriber]:
        return [s for s in self.subscribers() if s.status is S.ACTIVE]

    def authorise(self, *, sender_id: str, signer_fingerprint: str, receiver_ids: Sequence[str]) -> list[Problem]:
        """Every reason this sender may not send this packet to these receivers; empty when it may.

        -23: the signing certificate is not one bound to the sender; 104: the sender or a receiver
        is blocked (not active, or under test and talking to someone other than the test
        counterpart); 10: a receiver is not a known subscriber.
        """
        problems: list[Problem] = []
        sender = self._subscribers.get(sender_id)
        if sender is None:
            return [Problem(ErrorCode.CERTIFICATE_NOT_TRUSTED,
                            f"sender {sender_id!r} is not a registered subscriber, so no certificate is bound to it",
                            "Header/Sender@id")]
        if signer_fingerprint not in sender.cert_fingerprints:
            problems.append(Problem(ErrorCode.CERTIFICATE_NOT_TRUSTED,
                                    f"the signing certificate (sha256 {signer_fingerprint[:16]}...) is not bound to "
                                    f"sender {sender_id}", "Header/Sender@id"))
        if sender.status is not S.ACTIVE:
            if sender.status in UNDER_TEST:
                others = [r for r in receiver_ids if r != TEST_COUNTERPART_CODE]
                if others:
                    problems.append(Problem(ErrorCode.ADDRESSEE_BLOCKED,
                                            f"sender {sender_id} is {sender.status.value}: it may exchange packets only "
                                            f"with the test counterpart {TEST_COUNTERPART_CODE}, not {', '.join(others)}",
                                            "Header/Sender@id"))
            else:
                problems.append(Problem(ErrorCode.ADDRESSEE_BLOCKED,
                                        f"sender {sender_id} is {sender.status.value}, not active: access is blocked",
                                        "Header/Sender@id"))
        for receiver_id in receiver_ids:
            receiver = self._subscribers.get(receiver_id)
            if receiver is None:
                problems.append(Problem(ErrorCode.RECIPIENT_NOT_DEFINED,
                                        f"receiver {receiver_id!r} is not a registered subscriber", "Header/Receiver@id"))
            elif receiver.status is S.ACTIVE:
                continue
            elif receiver.status in UNDER_TEST and sender_id == TEST_COUNTERPART_CODE:
                continue
            else:
                why = (f"it may receive only from the test counterpart {TEST_COUNTERPART_CODE}"
                       if receiver.status in UNDER_TEST else "access is blocked")
                problems.append(Problem(ErrorCode.ADDRESSEE_BLOCKED,
                                        f"receiver {receiver_id} is {receiver.status.value}, not active: {why}",
                                        "Header/Receiver@id"))
        return problems


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('data_version', 0);
CREATE TABLE IF NOT EXISTS subscribers (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    unp TEXT NOT NULL,
    status TEXT NOT NULL,
    delivery_mode TEXT NOT NULL CHECK (delivery_mode IN ('push', 'pull')),
    push_url TEXT,
    edms_product TEXT NOT NULL DEFAULT '',
    edms_version TEXT NOT NULL DEFAULT '',
    sys_id TEXT NOT NULL DEFAULT '',
    contact TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    fingerprint TEXT PRIMARY KEY,          -- one certificate speaks for one subscriber only
    code TEXT NOT NULL REFERENCES subscribers(code),
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    pem TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_code ON certificates(code);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    reason TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS history_code ON history(code, id);
CREATE TABLE IF NOT EXISTS conclusions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL,
    at TEXT NOT NULL,
    suite_version TEXT NOT NULL,
    passed INTEGER NOT NULL,
    summary TEXT NOT NULL,
    document BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS conclusions_code ON conclusions(code, id);
"""

# Columns added after the first release: (name, definition). Added to an existing registry.db at
# open; every existing subscriber gets the default (today's behaviour).
_ADDED_COLUMNS = (
    ("ack_dialect", "TEXT NOT NULL DEFAULT 'hub'"),
    ("profile", "TEXT NOT NULL DEFAULT 'envelope'"),
    ("mail_address", "TEXT"),
)

_UPDATABLE = ("name", "unp", "push_url", "pull", "edms_product", "edms_version", "sys_id", "contact",
              "ack_dialect", "profile", "mail_address")


def _check_mail_address(address: str) -> str:
    address = address.strip().lower()
    if not re.fullmatch(r"[a-z0-9._%+\-]{1,64}@[a-z0-9.\-]{1,190}\.[a-z]{2,24}", address):
        raise InvalidField(f"mail address {address!r} is not an address like edms@agency.by")
    return address


def _check_choice(check, value: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidField(str(exc)) from None


_CERT_COLUMNS = "fingerprint, subject, issuer, serial, not_before, not_after, pem, added_at"


def _bound(row: Sequence[str]) -> BoundCertificate:
    fp, subject, issuer, serial, not_before, not_after, pem, added_at = row
    return BoundCertificate(fp, subject, issuer, serial, _parse_time(not_before), _parse_time(not_after), pem,
                            _parse_time(added_at))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _check_code(code: str) -> str:
    if not CODE_PATTERN.fullmatch(code or ""):
        raise InvalidField(f"subscriber code {code!r} must be 1-64 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    return code


def _check_unp(unp: str) -> str:
    try:
        return validate_unp(unp)
    except InvalidUnp as exc:
        raise InvalidField(str(exc)) from None


def _check_push_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidField(f"push URL {url!r} must be an absolute http:// or https:// URL with a host")
    try:
        parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        raise InvalidField(f"push URL {url!r} has an invalid port") from None
    return url


def _check_sys_id(sys_id: str) -> str:
    if sys_id:
        try:
            uuid.UUID(sys_id)
        except ValueError:
            raise InvalidField(f"EDMS system id {sys_id!r} must be a GUID, e.g. {uuid.uuid4()}") from None
    return sys_id


def _delivery(push_url: str | None, pull: bool) -> tuple[str, str | None]:
    if push_url and pull:
        raise InvalidField("choose one delivery mode: a push URL or pull, not both")
    if push_url:
        return "push", _check_push_url(push_url)
    if pull:
        return "pull", None
    raise InvalidField("a delivery mode is required: a push URL or pull")


def _time_attr(cert: x509.Certificate, name: str) -> datetime:
    # cryptography >= 42 has the *_utc variants; naive datetimes are UTC by definition.
    value = getattr(cert, f"{name}_utc", None)
    return value if value is not None else getattr(cert, name).replace(tzinfo=timezone.utc)


class Registry:
    """The registry database. One connection, guarded by a lock, so it is safe from threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) in _write().
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # rare writes: make each one durable
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            # executescript commits any open transaction first, so the script carries its own.
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            self._add_columns()

    def _add_columns(self) -> None:
        """Migrate a registry.db made before _ADDED_COLUMNS existed (additive, idempotent)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(subscribers)")}
        missing = [(name, ddl) for name, ddl in _ADDED_COLUMNS if name not in present]
        if missing:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                present = {row[1] for row in self._db.execute("PRAGMA table_info(subscribers)")}
                for name, ddl in missing:
                    if name not in present:  # another process may have just added it
                        self._db.execute(f"ALTER TABLE subscribers ADD COLUMN {name} {ddl}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @classmethod
    def in_data_dir(cls, data_dir: Path | str) -> Registry:
        return cls(Path(data_dir) / "registry.db")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; bumps data_version so readers know to reload; rolls back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- reading -------------------------------------------------------------------------

    def data_version(self) -> int:
        """A number that changes whenever anyone (any process) commits a change."""
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]

    def get(self, code: str) -> Subscriber | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM subscribers WHERE code = ?", (code,)).fetchone()
            return None if row is None else self._subscriber(row)

    def require(self, code: str) -> Subscriber:
        subscriber = self.get(code)
        if subscriber is None:
            raise UnknownSubscriber(code)
        return subscriber

    def subscribers(self) -> list[Subscriber]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM subscribers ORDER BY code").fetchall()
            return [self._subscriber(row) for row in rows]

    def snapshot(self) -> RegistrySnapshot:
        # One read transaction so the snapshot and its version agree.
        with self._lock:
            self._db.execute("BEGIN")
            try:
                version = self._db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]
                certificates: dict[str, list[BoundCertificate]] = {}
                for code, *cert in self._db.execute(
                        f"SELECT code, {_CERT_COLUMNS} FROM certificates ORDER BY added_at, fingerprint"):
                    certificates.setdefault(code, []).append(_bound(cert))
                rows = self._db.execute("SELECT * FROM subscribers").fetchall()
            finally:
                self._db.execute("COMMIT")
        subscribers = {row[0]: self._subscriber(row, {c.fingerprint for c in certificates.get(row[0], ())})
                       for row in rows}
        return RegistrySnapshot(subscribers, version, certificates)

    def certificates(self, code: str) -> list[BoundCertificate]:
        self.require(code)
        with self._lock:
            rows = self._db.execute(f"SELECT {_CERT_COLUMNS} FROM certificates WHERE code = ? "
                                    "ORDER BY added_at, fingerprint", (code,)).fetchall()
        return [_bound(row) for row in rows]

    def history(self, code: str) -> list[HistoryEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, actor, action, from_status, to_status, reason, details FROM history "
                "WHERE code = ? ORDER BY id", (code,)).fetchall()
        if not rows:
            self.require(code)
        return [HistoryEntry(_parse_time(at), actor, action, S(fs) if fs else None, S(ts) if ts else None,
                             reason, json.loads(details))
                for at, actor, action, fs, ts, reason, details in rows]

    def conclusions(self, code: str) -> list[Conclusion]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, code, at, suite_version, passed, summary, document FROM conclusions "
                "WHERE code = ? ORDER BY id", (code,)).fetchall()
        return [Conclusion(i, c, _parse_time(at), v, bool(p), json.loads(s), bytes(d)) for i, c, at, v, p, s, d in rows]

    def latest_conclusion(self, code: str) -> Conclusion | None:
        found = self.conclusions(code)
        return found[-1] if found else None

    # -- writing -------------------------------------------------------------------------

    def add_subscriber(
        self,
        code: str,
        *,
        name: str,
        unp: str,
        certificates: Sequence[x509.Certificate],
        push_url: str | None = None,
        pull: bool = False,
        edms_product: str = "",
        edms_version: str = "",
        sys_id: str = "",
        contact: str = "",
        status: SubscriberStatus = SubscriberStatus.REGISTERED,
        actor: str = "admin",
        reason: str = "",
        ack_dialect: str = HUB_DIALECT,
        profile: str = ENVELOPE_PROFILE,
        mail_address: str | None = None,
    ) -> Subscriber:
        _check_code(code)
        if not name.strip():
            raise InvalidField("organisation name must not be empty")
        unp = _check_unp(unp)
        mode, url = _delivery(push_url, pull)
        _check_sys_id(sys_id)
        ack_dialect = _check_choice(check_dialect, ack_dialect)
        profile = _check_choice(check_profile, profile)
        mail_address = _check_mail_address(mail_address) if mail_address else None
        status = S(status)
        if not certificates:
            raise InvalidField(f"subscriber {code}: at least one certificate must be bound")
        now = _iso(_now())
        with self._write() as db:
            if db.execute("SELECT 1 FROM subscribers WHERE code = ?", (code,)).fetchone():
                raise DuplicateSubscriber(code)
            db.execute(
                "INSERT INTO subscribers (code, name, unp, status, delivery_mode, push_url, edms_product, "
                "edms_version, sys_id, contact, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (code, name.strip(), unp, status.value, mode, url, edms_product, edms_version, sys_id, contact, now, now))
            db.execute("UPDATE subscribers SET ack_dialect = ?, profile = ?, mail_address = ? WHERE code = ?",
                       (ack_dialect, profile, mail_address, code))
            fps = [self._bind(db, code, cert, now) for cert in certificates]
            self._log(db, code, now, actor, "add", None, status, reason,
                      {"name": name.strip(), "unp": unp, "delivery_mode": mode, "push_url": url,
                       "certificates": fps, "ack_dialect": ack_dialect, "profile": profile,
                       "mail_address": mail_address})
        return self.require(code)

    def update_subscriber(self, code: str, *, actor: str, reason: str = "", **changes: object) -> Subscriber:
        """Change descriptive fields: name, unp, push_url / pull, edms_product, edms_version, sys_id, contact."""
        unknown = set(changes) - set(_UPDATABLE)
        if unknown:
            raise InvalidField(f"cannot update {', '.join(sorted(unknown))}; updatable: {', '.join(_UPDATABLE)}")
        changes = {k: v for k, v in changes.items() if v is not None}
        current = self.require(code)
        columns: dict[str, object] = {}
        if "name" in changes:
            if not str(changes["name"]).strip():
                raise InvalidField("organisation name must not be empty")
            columns["name"] = str(changes["name"]).strip()
        if "unp" in changes:
            columns["unp"] = _check_unp(str(changes["unp"]))
        if "push_url" in changes or changes.get("pull"):
            mode, url = _delivery(changes.get("push_url"), bool(changes.get("pull")))  # type: ignore[arg-type]
            columns["delivery_mode"], columns["push_url"] = mode, url
        if "sys_id" in changes:
            columns["sys_id"] = _check_sys_id(str(changes["sys_id"]))
        for key in ("edms_product", "edms_version", "contact"):
            if key in changes:
                columns[key] = str(changes[key])
        if "ack_dialect" in changes:
            columns["ack_dialect"] = _check_choice(check_dialect, str(changes["ack_dialect"]))
        if "profile" in changes:
            columns["profile"] = _check_choice(check_profile, str(changes["profile"]))
        if "mail_address" in changes:
            columns["mail_address"] = _check_mail_address(str(changes["mail_address"])) \
                if changes["mail_address"] else None
        before = current.as_dict()
        diff = {k: {"from": before.get(k), "to": v} for k, v in columns.items() if before.get(k) != v}
        if not diff:
            raise InvalidField(f"subscriber {code}: nothing to change")
        now = _iso(_now())
        with self._write() as db:
            self._require_row(db, code)
            assignments = ", ".join(f"{k} = ?" for k in columns)
            db.execute(f"UPDATE subscribers SET {assignments}, updated_at = ? WHERE code = ?",
                       (*columns.values(), now, code))
            self._log(db, code, now, actor, "update", None, None, reason, diff)
        return self.require(code)

    def set_status(self, code: str, status: SubscriberStatus, *, actor: str, reason: str) -> Subscriber:
        """Move along the lifecycle; refuses transitions not in TRANSITIONS, naming from and to.

        Activating a certified subscriber needs its latest conformance conclusion to be a pass;
        becoming certified happens only through `record_conclusion`.
        """
        status = S(status)
        now = _iso(_now())
        with self._write() as db:
            old = self._require_row(db, code)
            if status not in TRANSITIONS[old]:
                raise IllegalTransition(code, old, status)
            if status is S.CERTIFIED:
                raise RegistryError(f"subscriber {code}: only a passing conformance run certifies a subscriber "
                                    "(smdo conformance run --subscriber CODE)")
            if old is S.CERTIFIED and status is S.ACTIVE:
                latest = db.execute("SELECT passed FROM conclusions WHERE code = ? ORDER BY id DESC LIMIT 1",
                                    (code,)).fetchone()
                if latest is None or not latest[0]:
                    raise RegistryError(f"subscriber {code}: cannot activate without a passing conformance conclusion "
                                        f"(run `smdo conformance run --subscriber {code}`)")
            self._set_status(db, code, old, status, now, actor, reason)
        return self.require(code)

    def add_certificate(self, code: str, cert: x509.Certificate, *, actor: str, reason: str = "") -> str:
        now = _iso(_now())
        with self._write() as db:
            self._require_row(db, code)
            fp = self._bind(db, code, cert, now)
            self._log(db, code, now, actor, "cert-add", None, None, reason,
                      {"fingerprint": fp, "subject": cert.subject.rfc4514_string()})
        return fp

    def remove_certificate(self, code: str, fp: str, *, actor: str, reason: str = "") -> None:
        fp = fp.lower().replace(":", "")
        now = _iso(_now())
        with self._write() as db:
            self._require_row(db, code)
            if not db.execute("SELECT 1 FROM certificates WHERE code = ? AND fingerprint = ?", (code, fp)).fetchone():
                raise RegistryError(f"subscriber {code} has no certificate with fingerprint {fp}")
            (count,) = db.execute("SELECT count(*) FROM certificates WHERE code = ?", (code,)).fetchone()
            if count <= 1:
                raise RegistryError(f"subscriber {code}: cannot remove its only certificate; add the new one first")
            db.execute("DELETE FROM certificates WHERE fingerprint = ?", (fp,))
            self._log(db, code, now, actor, "cert-remove", None, None, reason, {"fingerprint": fp})

    def record_conclusion(self, code: str, *, suite_version: str, passed: bool, summary: Mapping[str, object],
                          document: bytes, actor: str, at: datetime | None = None) -> Conclusion:
        """Store a signed conformance conclusion; a pass moves a subscriber in testing to certified."""
        moment = _iso(at or _now())
        with self._write() as db:
            old = self._require_row(db, code)
            cursor = db.execute(
                "INSERT INTO conclusions (code, at, suite_version, passed, summary, document) VALUES (?,?,?,?,?,?)",
                (code, moment, suite_version, int(passed), json.dumps(dict(summary), sort_keys=True), document))
            conclusion_id = cursor.lastrowid
            outcome = "passed" if passed else "failed"
            self._log(db, code, moment, actor, "conformance", None, None, f"conformance suite {suite_version} {outcome}",
                      {"conclusion_id": conclusion_id, **{k: v for k, v in summary.items() if k in ("passed", "failed", "total", "failed_cases")}})
            if passed and old is S.TESTING:
                self._set_status(db, code, old, S.CERTIFIED, moment, actor,
                                 f"passed conformance suite {suite_version} (conclusion {conclusion_id})")
        return self.conclusions(code)[-1]

    # -- internals -----------------------------------------------------------------------

    def _require_row(self, db: sqlite3.Connection, code: str) -> SubscriberStatus:
        row = db.execute("SELECT status FROM subscribers WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise UnknownSubscriber(code)
        return S(row[0])

    def _set_status(self, db: sqlite3.Connection, code: str, old: SubscriberStatus, new: SubscriberStatus,
                    now: str, actor: str, reason: str) -> None:
        db.execute("UPDATE subscribers SET status = ?, updated_at = ? WHERE code = ?", (new.value, now, code))
        self._log(db, code, now, actor, "status", old, new, reason, {})

    def _bind(self, db: sqlite3.Connection, code: str, cert: x509.Certificate, now: str) -> str:
        fp = fingerprint(cert)
        owner = db.execute("SELECT code FROM certificates WHERE fingerprint = ?", (fp,)).fetchone()
        if owner is not None:
            whose = "this subscriber" if owner[0] == code else f"subscriber {owner[0]}"
            raise InvalidField(f"certificate {fp[:16]}... ({cert.subject.rfc4514_string()}) is already bound to {whose}")
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        db.execute(
            "INSERT INTO certificates (fingerprint, code, subject, issuer, serial, not_before, not_after, pem, added_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (fp, code, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), format(cert.serial_number, "x"),
             _iso(_time_attr(cert, "not_valid_before")), _iso(_time_attr(cert, "not_valid_after")), pem, now))
        return fp

    def _log(self, db: sqlite3.Connection, code: str, now: str, actor: str, action: str,
             old: SubscriberStatus | None, new: SubscriberStatus | None, reason: str, details: Mapping[str, object]) -> None:
        if not actor:
            raise InvalidField("every change needs an actor (who made it)")
        db.execute(
            "INSERT INTO history (code, at, actor, action, from_status, to_status, reason, details) VALUES (?,?,?,?,?,?,?,?)",
            (code, now, actor, action, old.value if old else None, new.value if new else None, reason or "",
             json.dumps(dict(details), sort_keys=True, default=str)))

    def _subscriber(self, row: Sequence[object], fps: set[str] | None = None) -> Subscriber:
        code, name, unp, status, mode, url, product, version, sys_id, contact = row[:10]
        # The added columns come after created_at, updated_at (row[10:12]), in _ADDED_COLUMNS order.
        dialect, profile, mail_address = row[12:15]
        if fps is None:
            fps = {fp for (fp,) in self._db.execute("SELECT fingerprint FROM certificates WHERE code = ?", (code,))}
        return Subscriber(str(code), str(name), str(unp), S(status), str(mode), url,  # type: ignore[arg-type]
                          str(product), str(version), str(sys_id), str(contact), frozenset(fps),
                          str(dialect), str(profile), mail_address)  # type: ignore[arg-type]
