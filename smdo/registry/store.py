"""The registry's store: subscribers, certificates, history and conclusions in SQL.

Small and rarely written (by the administrators' CLI and the conformance suite), read on every
packet by the hub through an immutable `RegistrySnapshot`, reloaded when `data_version()` changes
(a counter bumped in every committing transaction: every hub node sees a change made by any
process within its reload interval). Every change runs in one transaction together with its
history row: an error leaves nothing half-written, and the history says who changed what, when
and why.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signing.keys import certificate_fingerprint as fingerprint  # sha256 of the DER, lowercase hex
from smdo.dialects import ENVELOPE, HUB, check_dialect, check_profile
from smdo.registry.model import (
    TRANSITIONS,
    BoundCertificate,
    Conclusion,
    DuplicateSubscriber,
    HistoryEntry,
    IllegalTransition,
    InvalidField,
    RegistryError,
    Subscriber,
    SubscriberStatus,
    UnknownSubscriber,
    cert_time,
    check_choice,
    check_code,
    check_mail_address,
    check_sys_id,
    check_unp,
    delivery_of,
    iso,
    now_utc,
    parse_time,
)
from smdo.registry.model import SubscriberStatus as S
from smdo.registry.policy import RegistrySnapshot
from smdo.registry.sql import PostgresRegistryDb, RegistryDb, SqliteRegistryDb
from smdo.storage import StorageUrl, parse_storage

_UPDATABLE = ("name", "unp", "push_url", "pull", "edms_product", "edms_version", "sys_id", "contact",
              "ack_dialect", "profile", "mail_address")


# Named, never `SELECT *`: columns added by later schema versions sit in different places in files
# created before and after them, and in PostgreSQL.
_SUBSCRIBER_COLUMNS = ("code, name, unp, status, delivery_mode, push_url, edms_product, edms_version, sys_id, "
                       "contact, ack_dialect, profile, mail_address")
_CERT_COLUMNS = "fingerprint, subject, issuer, serial, not_before, not_after, pem, added_at"


def _bound(row: Sequence[str]) -> BoundCertificate:
    fp, subject, issuer, serial, not_before, not_after, pem, added_at = row
    return BoundCertificate(fp, subject, issuer, serial, parse_time(not_before), parse_time(not_after), pem,
                            parse_time(added_at))



class Registry:
    """The registry's store: the same SQL on SQLite and PostgreSQL, through `RegistryDb` (which
    holds the dialect's few differences). One connection, guarded by a lock, so it is safe from
    threads. `Registry(path)` opens a SQLite file; `registry_store(url)` opens either."""

    def __init__(self, where: Path | str | RegistryDb) -> None:
        self._db: RegistryDb = where if isinstance(where, (SqliteRegistryDb, PostgresRegistryDb)) \
            else SqliteRegistryDb(Path(where))
        self.location = self._db.location
        self._lock = threading.RLock()
        self._changed: set[str] = set()  # subscribers the open write transaction changed (see _log)
        #: Subscriber rows read by snapshots and changes_since, for who wants to see the cost.
        self.rows_read = 0

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
    def _write(self) -> Iterator[RegistryDb]:
        """One transaction, excluding other writers; bumps data_version so readers (every hub
        node) know to reload; rolls back on any error."""
        with self._lock:
            self._db.begin_write()
            self._changed = set()
            try:
                yield self._db
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
                # Each subscriber the change touched carries the version that changed it, so a hub
                # reloads only those rows (changes_since).
                for code in sorted(self._changed):
                    self._db.execute("UPDATE subscribers SET changed_version = (SELECT value FROM meta"
                                     " WHERE key = 'data_version') WHERE code = ?", (code,))
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise

    # -- reading -------------------------------------------------------------------------

    def data_version(self) -> int:
        """A number that changes whenever anyone (any process) commits a change."""
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]

    def get(self, code: str) -> Subscriber | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE code = ?", (code,)).fetchone()
            return None if row is None else self._subscriber(row)

    def require(self, code: str) -> Subscriber:
        subscriber = self.get(code)
        if subscriber is None:
            raise UnknownSubscriber(code)
        return subscriber

    def subscribers(self) -> list[Subscriber]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers ORDER BY code").fetchall()
            return [self._subscriber(row) for row in rows]

    def snapshot(self) -> RegistrySnapshot:
        # One read transaction so the snapshot and its version agree.
        with self._lock:
            self._db.begin_read()
            try:
                version = self._db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]
                certificates: dict[str, list[BoundCertificate]] = {}
                for code, *cert in self._db.execute(
                        f"SELECT code, {_CERT_COLUMNS} FROM certificates ORDER BY added_at, fingerprint"):
                    certificates.setdefault(code, []).append(_bound(cert))
                rows = self._db.execute(f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers").fetchall()
            finally:
                self._db.commit()
        subscribers = {row[0]: self._subscriber(row, {c.fingerprint for c in certificates.get(row[0], ())})
                       for row in rows}
        self.rows_read += len(rows)
        return RegistrySnapshot(subscribers, version, certificates)

    def changes_since(self, snapshot: RegistrySnapshot) -> RegistrySnapshot:
        """`snapshot` brought up to date by reading only the subscribers (and their certificates)
        changed after its version: what a running hub does when data_version moves."""
        with self._lock:
            self._db.begin_read()
            try:
                version = self._db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]
                rows = self._db.execute(f"SELECT {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE changed_version > ?",
                                        (snapshot.version,)).fetchall()
                certificates: dict[str, list[BoundCertificate]] = {row[0]: [] for row in rows}
                for row in rows:
                    for cert in self._db.execute(f"SELECT {_CERT_COLUMNS} FROM certificates WHERE code = ?"
                                                 " ORDER BY added_at, fingerprint", (row[0],)):
                        certificates[row[0]].append(_bound(cert))
            finally:
                self._db.commit()
        self.rows_read += len(rows)
        changed = {row[0]: self._subscriber(row, {c.fingerprint for c in certificates[row[0]]}) for row in rows}
        return snapshot.updated(changed, certificates, version)

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
        return [HistoryEntry(parse_time(at), actor, action, S(fs) if fs else None, S(ts) if ts else None,
                             reason, json.loads(details))
                for at, actor, action, fs, ts, reason, details in rows]

    def conclusions(self, code: str) -> list[Conclusion]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, code, at, suite_version, passed, summary, document FROM conclusions "
                "WHERE code = ? ORDER BY id", (code,)).fetchall()
        return [Conclusion(i, c, parse_time(at), v, bool(p), json.loads(s), bytes(d)) for i, c, at, v, p, s, d in rows]

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
        ack_dialect: str = HUB,
        profile: str = ENVELOPE,
        mail_address: str | None = None,
    ) -> Subscriber:
        check_code(code)
        if not name.strip():
            raise InvalidField("organisation name must not be empty")
        unp = check_unp(unp)
        mode, url = delivery_of(push_url, pull)
        check_sys_id(sys_id)
        ack_dialect = check_choice(check_dialect, ack_dialect)
        profile = check_choice(check_profile, profile)
        mail_address = check_mail_address(mail_address) if mail_address else None
        status = S(status)
        if not certificates:
            raise InvalidField(f"subscriber {code}: at least one certificate must be bound")
        now = iso(now_utc())
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
            columns["unp"] = check_unp(str(changes["unp"]))
        if "push_url" in changes or changes.get("pull"):
            mode, url = delivery_of(changes.get("push_url"), bool(changes.get("pull")))  # type: ignore[arg-type]
            columns["delivery_mode"], columns["push_url"] = mode, url
        if "sys_id" in changes:
            columns["sys_id"] = check_sys_id(str(changes["sys_id"]))
        for key in ("edms_product", "edms_version", "contact"):
            if key in changes:
                columns[key] = str(changes[key])
        if "ack_dialect" in changes:
            columns["ack_dialect"] = check_choice(check_dialect, str(changes["ack_dialect"]))
        if "profile" in changes:
            columns["profile"] = check_choice(check_profile, str(changes["profile"]))
        if "mail_address" in changes:
            columns["mail_address"] = check_mail_address(str(changes["mail_address"])) \
                if changes["mail_address"] else None
        before = current.as_dict()
        diff = {k: {"from": before.get(k), "to": v} for k, v in columns.items() if before.get(k) != v}
        if not diff:
            raise InvalidField(f"subscriber {code}: nothing to change")
        now = iso(now_utc())
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
        now = iso(now_utc())
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
        now = iso(now_utc())
        with self._write() as db:
            self._require_row(db, code)
            fp = self._bind(db, code, cert, now)
            self._log(db, code, now, actor, "cert-add", None, None, reason,
                      {"fingerprint": fp, "subject": cert.subject.rfc4514_string()})
        return fp

    def remove_certificate(self, code: str, fp: str, *, actor: str, reason: str = "") -> None:
        fp = fp.lower().replace(":", "")
        now = iso(now_utc())
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
        moment = iso(at or now_utc())
        with self._write() as db:
            old = self._require_row(db, code)
            (conclusion_id,) = db.execute(
                "INSERT INTO conclusions (code, at, suite_version, passed, summary, document) VALUES (?,?,?,?,?,?)"
                " RETURNING id",
                (code, moment, suite_version, int(passed), json.dumps(dict(summary), sort_keys=True), document)
            ).fetchone()
            outcome = "passed" if passed else "failed"
            self._log(db, code, moment, actor, "conformance", None, None, f"conformance suite {suite_version} {outcome}",
                      {"conclusion_id": conclusion_id, **{k: v for k, v in summary.items() if k in ("passed", "failed", "total", "failed_cases")}})
            if passed and old is S.TESTING:
                self._set_status(db, code, old, S.CERTIFIED, moment, actor,
                                 f"passed conformance suite {suite_version} (conclusion {conclusion_id})")
        return self.conclusions(code)[-1]

    # -- internals -----------------------------------------------------------------------

    def _require_row(self, db: RegistryDb, code: str) -> SubscriberStatus:
        row = db.execute("SELECT status FROM subscribers WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise UnknownSubscriber(code)
        return S(row[0])

    def _set_status(self, db: RegistryDb, code: str, old: SubscriberStatus, new: SubscriberStatus,
                    now: str, actor: str, reason: str) -> None:
        db.execute("UPDATE subscribers SET status = ?, updated_at = ? WHERE code = ?", (new.value, now, code))
        self._log(db, code, now, actor, "status", old, new, reason, {})

    def _bind(self, db: RegistryDb, code: str, cert: x509.Certificate, now: str) -> str:
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
             iso(cert_time(cert, "not_valid_before")), iso(cert_time(cert, "not_valid_after")), pem, now))
        return fp

    def _log(self, db: RegistryDb, code: str, now: str, actor: str, action: str,
             old: SubscriberStatus | None, new: SubscriberStatus | None, reason: str, details: Mapping[str, object]) -> None:
        if not actor:
            raise InvalidField("every change needs an actor (who made it)")
        self._changed.add(code)
        db.execute(
            "INSERT INTO history (code, at, actor, action, from_status, to_status, reason, details) VALUES (?,?,?,?,?,?,?,?)",
            (code, now, actor, action, old.value if old else None, new.value if new else None, reason or "",
             json.dumps(dict(details), sort_keys=True, default=str)))

    def _subscriber(self, row: Sequence[object], fps: set[str] | None = None) -> Subscriber:
        code, name, unp, status, mode, url, product, version, sys_id, contact, dialect, profile, mail_address = row
        if fps is None:
            fps = {fp for (fp,) in self._db.execute("SELECT fingerprint FROM certificates WHERE code = ?", (code,))}
        return Subscriber(str(code), str(name), str(unp), S(status), str(mode), url,  # type: ignore[arg-type]
                          str(product), str(version), str(sys_id), str(contact), frozenset(fps),
                          str(dialect), str(profile), mail_address)  # type: ignore[arg-type]


def registry_store(url: str | Path | StorageUrl | None) -> Registry:
    """The registry at the storage URL (`smdo.storage`): the one way the hub and the CLI open it."""
    where = parse_storage(url)
    if where.kind == "postgresql":
        assert where.dsn is not None
        return Registry(PostgresRegistryDb(where.dsn))
    return Registry(SqliteRegistryDb(where.registry_path))
