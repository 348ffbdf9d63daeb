"""The PostgreSQL schema as numbered migrations, applied in order by `smdo db upgrade`.

A database records the version it is at in `smdo_schema`. A hub checks it at start and refuses to
run on any other version than the one it was built for (older: upgrade first; newer: this hub is
too old), so two nodes of different releases never write one journal in two formats.
"""
from __future__ import annotations

from dataclasses import dataclass

import psycopg

from smdo.journal.chain import GENESIS
from smdo.storage import StorageError


@dataclass(frozen=True)
class Migration:
    version: int
    what: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "journal: hash chain, transactions, deliveries with leases", f"""
CREATE TABLE entries (
    seq bigint PRIMARY KEY,
    body text NOT NULL,          -- canonical JSON of the entry, including its seq
    hash text NOT NULL,
    msg_id text                  -- the entry's msg_id, for a transaction's history
);
CREATE INDEX entries_msg_id ON entries (msg_id) WHERE msg_id IS NOT NULL;
-- One row; every journal transaction locks it first (SELECT ... FOR UPDATE), which orders the
-- entries of all nodes into one chain and all writers into one lock order.
CREATE TABLE chain_head (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS}');
CREATE TABLE transactions (
    id bigserial PRIMARY KEY,
    entry_seq bigint NOT NULL,
    outcome text NOT NULL,
    msg_id text,
    sender text,
    receivers text NOT NULL,
    msg_type integer,
    acknow integer,
    ack_for text,
    origin text NOT NULL,
    digest text NOT NULL,
    size bigint NOT NULL,
    received_at double precision NOT NULL,
    deadline double precision,
    codes text NOT NULL,
    stage text,
    raw bytea,
    answer bytea
);
CREATE UNIQUE INDEX transactions_accepted_msg_id ON transactions (msg_id) WHERE outcome = 'accepted';
CREATE INDEX transactions_msg_id ON transactions (msg_id);
CREATE INDEX transactions_received_at ON transactions (received_at);
CREATE INDEX transactions_ack_for ON transactions (ack_for) WHERE ack_for IS NOT NULL;
CREATE INDEX transactions_period ON transactions (received_at, outcome, origin, msg_type, sender, msg_id);
CREATE TABLE deliveries (
    id bigserial PRIMARY KEY,
    msg_id text NOT NULL,
    receiver text NOT NULL,
    mode text NOT NULL,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_at double precision,
    deadline double precision NOT NULL,
    updated_at double precision NOT NULL,
    detail text NOT NULL DEFAULT '',
    entry_seq bigint NOT NULL,
    claimed_by text,
    claim_until double precision,
    delivered_at double precision,   -- statistics: time to delivery
    registered_at double precision,  -- time to registration
    UNIQUE (msg_id, receiver)
);
CREATE INDEX deliveries_delivered_at ON deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX deliveries_due ON deliveries (mode, next_at) WHERE state IN ('accepted', 'retry-wait', 'forwarding');
CREATE INDEX deliveries_deadline ON deliveries (deadline) WHERE state IN ('accepted', 'retry-wait', 'forwarding');
CREATE INDEX deliveries_mailbox ON deliveries (receiver, next_at)
    WHERE mode = 'pull' AND state IN ('accepted', 'retry-wait', 'forwarding');
"""),
    Migration(2, "registry: subscribers, certificates, history, conclusions, data_version", """
CREATE TABLE meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO meta (key, value) VALUES ('data_version', 0);
CREATE TABLE subscribers (
    code text PRIMARY KEY,
    name text NOT NULL,
    unp text NOT NULL,
    status text NOT NULL,
    delivery_mode text NOT NULL CHECK (delivery_mode IN ('push', 'pull')),
    push_url text,
    edms_product text NOT NULL DEFAULT '',
    edms_version text NOT NULL DEFAULT '',
    sys_id text NOT NULL DEFAULT '',
    contact text NOT NULL DEFAULT '',
    created_at text NOT NULL,
    updated_at text NOT NULL
);
CREATE TABLE certificates (
    fingerprint text PRIMARY KEY,
    code text NOT NULL REFERENCES subscribers(code),
    subject text NOT NULL,
    issuer text NOT NULL,
    serial text NOT NULL,
    not_before text NOT NULL,
    not_after text NOT NULL,
    pem text NOT NULL,
    added_at text NOT NULL
);
CREATE INDEX certificates_code ON certificates(code);
CREATE TABLE history (
    id bigserial PRIMARY KEY,
    code text NOT NULL,
    at text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    from_status text,
    to_status text,
    reason text NOT NULL DEFAULT '',
    details text NOT NULL DEFAULT '{}'
);
CREATE INDEX history_code ON history(code, id);
CREATE TABLE conclusions (
    id bigserial PRIMARY KEY,
    code text NOT NULL,
    at text NOT NULL,
    suite_version text NOT NULL,
    passed integer NOT NULL,
    summary text NOT NULL,
    document bytea NOT NULL
);
CREATE INDEX conclusions_code ON conclusions(code, id);
"""),
    Migration(3, "registry: each subscriber's ack dialect, profile and mail address (issue 16)", """
ALTER TABLE subscribers ADD COLUMN ack_dialect text NOT NULL DEFAULT 'hub';
ALTER TABLE subscribers ADD COLUMN profile text NOT NULL DEFAULT 'envelope';
ALTER TABLE subscribers ADD COLUMN mail_address text;
"""),
    Migration(4, "costs that stay flat: audit indexes, kept delivery counts, lease index, registry row versions", """
CREATE INDEX transactions_entry_seq ON transactions (entry_seq);
CREATE INDEX deliveries_entry_seq ON deliveries (entry_seq, id);
CREATE INDEX deliveries_forwarding ON deliveries (claimed_by) WHERE state = 'forwarding';
-- Deliveries per state, kept in the transaction that changes a state, for metrics and health.
CREATE TABLE delivery_counts (state text PRIMARY KEY, n bigint NOT NULL);
INSERT INTO delivery_counts (state, n) SELECT state, count(*) FROM deliveries GROUP BY state;
CREATE FUNCTION smdo_count_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE delivery_counts SET n = n - 1 WHERE state = OLD.state;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO delivery_counts (state, n) VALUES (NEW.state, 1)
            ON CONFLICT (state) DO UPDATE SET n = delivery_counts.n + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_counted AFTER INSERT OR DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION smdo_count_deliveries();
CREATE TRIGGER deliveries_state_counted AFTER UPDATE OF state ON deliveries
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION smdo_count_deliveries();
-- The registry version that last changed a subscriber (or its certificates): a hub reloads only those.
ALTER TABLE subscribers ADD COLUMN changed_version bigint NOT NULL DEFAULT 0;
CREATE INDEX subscribers_changed_version ON subscribers (changed_version);
"""),
    Migration(5, "journal: packets written to a last column, `packet` (`raw` keeps the older ones)", """
ALTER TABLE transactions ADD COLUMN packet bytea;
"""),
    Migration(6, "operators' searches newest first without a scan: by receiver, delivery state, outcome, sender", """
CREATE INDEX deliveries_receiver ON deliveries (receiver, id);
CREATE INDEX deliveries_state ON deliveries (state, id);
-- (refusals only: an index on every outcome would tempt the planner to walk all accepted rows,
-- bodies and all, for the write path's "outcome = 'accepted' AND msg_id IN (...)")
CREATE INDEX transactions_rejected ON transactions (id) WHERE outcome = 'rejected';
CREATE INDEX transactions_sender ON transactions (sender, id);
"""),
    Migration(7, "registry: a change notifies listening hubs (NOTIFY smdo_registry, at commit)", """
-- Every registry write bumps data_version in its transaction; NOTIFY is delivered at commit, so a
-- hub LISTENing reloads at once instead of polling the counter (which stays the fallback).
CREATE FUNCTION smdo_registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smdo_registry', NEW.value::text);
    RETURN NULL;
END $$;
CREATE TRIGGER meta_data_version_notifies AFTER UPDATE ON meta
    FOR EACH ROW WHEN (NEW.key = 'data_version') EXECUTE FUNCTION smdo_registry_changed();
"""),
    Migration(8, "journal: archiving walks only the rows still holding a packet", """
CREATE INDEX transactions_unarchived ON transactions (received_at, id)
    WHERE outcome = 'accepted' AND coalesce(packet, raw) IS NOT NULL;
"""),
)

#: The version this code reads and writes.
LATEST = MIGRATIONS[-1].version

_LOCK_KEY = 0x5344_4F00  # pg_advisory_xact_lock key: one upgrade at a time


class SchemaMismatch(StorageError):
    """The database is not at the schema version this hub knows."""


def _version_sql() -> str:
    return "SELECT version FROM smdo_schema"


def check_version(version: int | None, where: str) -> None:
    if version is None:
        raise SchemaMismatch(f"{where} has no smdo-hub schema: run `smdo db upgrade --db URL` first")
    if version < LATEST:
        raise SchemaMismatch(f"{where} is at schema version {version}, this hub needs {LATEST}: "
                             "run `smdo db upgrade --db URL`")
    if version > LATEST:
        raise SchemaMismatch(f"{where} is at schema version {version}, newer than this hub knows ({LATEST}): "
                             "run the newer smdo-hub release")


async def check(conn: psycopg.AsyncConnection, where: str) -> None:
    """Raise SchemaMismatch unless the database is at LATEST."""
    try:
        async with conn.cursor() as cur:
            await cur.execute(_version_sql())
            row = await cur.fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    check_version(row[0] if row else None, where)


def check_sync(conn: psycopg.Connection, where: str) -> None:
    try:
        row = conn.execute(_version_sql()).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        row = None
    check_version(row[0] if row else None, where)


def upgrade(dsn: str) -> tuple[int, int]:
    """Apply every migration the database lacks, in one transaction (PostgreSQL DDL is
    transactional: all or nothing), one upgrade at a time; returns (from, to)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute("CREATE TABLE IF NOT EXISTS smdo_schema (one integer PRIMARY KEY DEFAULT 1 CHECK (one = 1),"
                         " version integer NOT NULL)")
            conn.execute("INSERT INTO smdo_schema (one, version) VALUES (1, 0) ON CONFLICT DO NOTHING")
            (start,) = conn.execute("SELECT version FROM smdo_schema FOR UPDATE").fetchone()
            if start > LATEST:
                check_version(start, "the database")
            for m in MIGRATIONS:
                if m.version > start:
                    conn.execute(m.sql)
                    conn.execute("UPDATE smdo_schema SET version = %s", (m.version,))
        return start, LATEST
