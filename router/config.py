"""The hub's settings: one dataclass, filled from a TOML file, then the environment, then flags."""
from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from smdo.parts import Limits as PartLimits
from smdo.storage import StorageUrl, parse_storage

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def parse_duration(value: str | float | int) -> float:
    """Seconds from `2s`, `5m`, `72h`, `1.5d`, `250ms` or a bare number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 2s, 5m, 72h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class HubConfig:
    data: Path = Path("var")
    # Where the journal and registry live (smdo.storage): sqlite:///folder or postgresql://...;
    # unset: SQLite files in `data`.
    db: str | None = None
    node: str = ""  # this node's name in a cluster (leases, logs); default: host name + pid
    host: str = "127.0.0.1"
    port: int = 8443
    hub_code: str = "HUB"
    hub_name: str = "SMDO hub"
    key: Path | None = None  # the hub's private key (signs its acknowledgements; TLS too, by default)
    cert: Path | None = None
    tls_key: Path | None = None  # TLS key and certificate when not the signing ones (a bign key
    tls_cert: Path | None = None  # cannot do TLS: on a bign PKI these come from its EC TLS CA)
    trust: Path | None = None  # trust anchors + intermediates: file or directory
    crl: tuple[Path, ...] = ()
    operator_certs: tuple[Path, ...] = ()  # operators' TLS client certificates (router/auth.py)
    checkpoint_interval: float = 60.0  # a signed journal checkpoint this often, and at shutdown
    tsa: str | None = None  # RFC 3161 time-stamping authority URL for each checkpoint
    # Archiving (router/archiving.py): finished packets and their parts older than `retention` are
    # moved from the journal and <data>/parts to `archive_dir`, every `archive_interval`. Unset: kept forever.
    retention: float | None = None
    archive_dir: Path | None = None
    archive_interval: float = 3600.0
    client_auth: str = "optional"  # none | optional | required (mTLS)
    http: bool = False  # plain HTTP, loopback only
    workers: int = 1
    max_packet_bytes: int = 30 * 1024 * 1024
    delivery_deadline: float = 72 * 3600.0
    retry_base: float = 1.0  # first retry after ~this, doubling each attempt (with jitter)
    retry_max: float = 600.0
    push_timeout: float = 30.0  # must cover the receiver's download of the packet's parts
    # Files beside the envelope (smdo/parts.py), per sending subscriber:
    part_max_bytes: int = 4 * 1024 ** 3  # one part
    part_quota_bytes: int = 16 * 1024 ** 3  # uploaded parts waiting for their envelope
    part_quota_count: int = 1000
    part_ttl: float = 24 * 3600.0  # an uploaded part no envelope named is deleted after this
    # Where parts are kept; unset: <data>/parts. Nodes of a cluster must all name one shared folder.
    parts_dir: Path | None = None
    push_concurrency: int = 8  # in flight per receiver
    breaker_failures: int = 5  # consecutive failures that open an endpoint's breaker
    breaker_cooldown: float = 30.0
    mailbox_visibility: float = 60.0  # an unconfirmed pull delivery is offered again after this
    poll_interval: float = 0.05  # delivery engine idle poll; new packets wake it at once
    claim_lease: float = 120.0
    # The classic clients' mail route (router/mail_in.py, router/mail_out.py): off unless mail_port is set.
    mail_host: str = "127.0.0.1"
    mail_port: int | None = None  # the hub's SMTP server (STARTTLS required); 0 picks a free port
    mail_address: str = ""  # the hub's own address: packets are sent to it, and come from it
    smtp_relay: str = ""  # host:port of the mail server the hub hands outgoing mail to (STARTTLS)
    mail_resend: float = 600.0  # a mailed packet not confirmed by the receiver's delivery ack is mailed again
    mail_timeout: float = 30.0  # an idle SMTP session is closed; an outgoing hand-over gives up
    mail_sessions: int = 32  # SMTP sessions at once; more are answered 421 and closed
    # Bounds on what a client may cost (router/body.py, router/connections.py; README "Limits").
    memory_budget: int = 256 * 1024 * 1024  # bytes of packets held in memory at once, per worker
    spool_threshold: int = 1024 * 1024  # larger bodies are spooled to <data>/spool as they arrive
    spool_max_bytes: int = 4 * 1024 * 1024 * 1024  # the spool's cap on disk
    budget_wait: float = 5.0  # a body waits this long for room in the budget, then 503
    uploads_per_client: int = 4  # spooled uploads at once per client certificate / address
    large_reads: int = 16  # spooled bodies read at once per worker; the rest wait unread (budget_wait)
    body_grace: float = 10.0  # then a body must average body_min_rate bytes/s, or it is cut
    body_min_rate: int = 10_000
    head_timeout: float = 10.0  # a request's head must be complete this long after its first byte
    idle_timeout: float = 30.0  # a keep-alive connection with no request is closed after this
    max_connections: int = 2000  # per worker; above it the oldest idle connection is closed
    log_level: str = "warning"  # debug | info | warning | error
    log_format: str = "text"  # text | json (one JSON object per line, for log pipelines)
    # uvloop: the event loop (and its TLS) in C, measured ~7% less hub CPU per delivered packet and
    # ~20% more packets/s than the standard library's loop; "asyncio" runs the standard one.
    event_loop: str = "uvloop"
    access_log: bool = False  # one line per HTTP request (logger aiohttp.access, level info)

    def check(self) -> HubConfig:
        if self.http and self.host not in LOOPBACK:
            raise ValueError(
                f"--http serves plain HTTP and is allowed only on loopback (127.0.0.1, ::1, localhost), "
                f"not on {self.host!r}: use HTTPS (--key/--cert) for any other address"
            )
        if self.client_auth not in ("none", "optional", "required"):
            raise ValueError(f"client_auth must be none, optional or required, not {self.client_auth!r}")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError(f"log_level must be debug, info, warning or error, not {self.log_level!r}")
        if self.event_loop not in ("uvloop", "asyncio"):
            raise ValueError(f"event_loop must be uvloop or asyncio, not {self.event_loop!r}")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format must be text or json, not {self.log_format!r}")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.large_reads < 1:
            raise ValueError("large_reads must be at least 1")
        if not self.http and (self.key is None or self.cert is None):
            raise ValueError("HTTPS needs the hub's --key and --cert (or use --http on loopback)")
        if self.key is None or self.cert is None:
            raise ValueError("the hub signs its acknowledgements: give --key and --cert")
        if self.trust is None:
            raise ValueError("give --trust: the CA certificates packets' signatures must chain to")
        if (self.mail_port is not None or self.smtp_relay) and "@" not in self.mail_address:
            raise ValueError("the mail route needs the hub's own mail_address (e.g. smdo@hub.example.by)")
        if (self.mail_port is not None or self.smtp_relay) and self.workers > 1:
            raise ValueError("the mail route runs in one worker: use --workers 1 with --mail-port/--smtp-relay")
        if self.smtp_relay and not re.fullmatch(r"[^:\s]+:\d{1,5}", self.smtp_relay):
            raise ValueError(f"smtp_relay must be HOST:PORT, not {self.smtp_relay!r}")
        if self.checkpoint_interval <= 0:
            raise ValueError("checkpoint_interval must be positive")
        if (self.retention is None) != (self.archive_dir is None):
            raise ValueError("give both retention and archive_dir (finished packets older than retention are moved "
                             "there), or neither (everything is kept)")
        if self.retention is not None and self.retention < 0:
            raise ValueError("retention must not be negative")
        if self.archive_interval <= 0:
            raise ValueError("archive_interval must be positive")
        if self.tsa is not None and not self.tsa.startswith(("http://", "https://")):
            raise ValueError(f"--tsa must be an http:// or https:// URL, not {self.tsa!r}")
        if (self.tls_key is None) != (self.tls_cert is None):
            raise ValueError("give both --tls-key and --tls-cert, or neither (TLS then uses --key/--cert)")
        self.storage  # noqa: B018 - raises ValueError naming a bad --db
        return self

    @property
    def tls_key_path(self) -> Path | None:
        return self.tls_key or self.key

    @property
    def tls_cert_path(self) -> Path | None:
        return self.tls_cert or self.cert

    @property
    def node_name(self) -> str:
        return self.node or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def storage(self) -> StorageUrl:
        return parse_storage(self.db, self.data)

    @property
    def clustered(self) -> bool:
        """Shared storage: other nodes may hold leases, so none is released at start."""
        return self.storage.kind == "postgresql"

    @property
    def part_limits(self) -> PartLimits:
        return PartLimits(self.part_max_bytes, self.part_quota_bytes, self.part_quota_count, self.part_ttl)

    @property
    def parts_path(self) -> Path:
        return self.parts_dir or self.data / "parts"

    @property
    def spool_path(self) -> Path:
        return self.data / "spool"

    @property
    def checkpoints_path(self) -> Path:
        """This node's signed checkpoints of the (shared) chain: a local file."""
        return self.data / "checkpoints.jsonl"


_DURATIONS = {
    "delivery_deadline", "retry_base", "retry_max", "push_timeout", "breaker_cooldown",
    "mailbox_visibility", "poll_interval", "claim_lease", "mail_resend", "mail_timeout", "checkpoint_interval",
    "budget_wait", "body_grace", "head_timeout", "idle_timeout", "part_ttl", "retention", "archive_interval",
}


def _coerce(name: str, value: Any) -> Any:
    """`value` as setting `name` needs it; ValueError naming the setting and what it takes."""
    try:
        return _convert(name, value)
    except (TypeError, ValueError) as exc:
        wanted = "a duration like 500ms, 2s, 5m or 72h" if name in _DURATIONS else "a whole number" \
            if name in _INTEGERS else "a path or text"
        raise ValueError(f"setting {name}: {value!r} is not valid: give {wanted}") from exc


_INTEGERS = ("port", "workers", "max_packet_bytes", "push_concurrency", "breaker_failures", "memory_budget",
             "spool_threshold", "spool_max_bytes", "uploads_per_client", "large_reads", "body_min_rate",
             "max_connections", "mail_port", "mail_sessions", "part_max_bytes", "part_quota_bytes",
             "part_quota_count")


def _convert(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _DURATIONS:
        return parse_duration(value)
    if name in ("data", "key", "cert", "tls_key", "tls_cert", "trust", "archive_dir", "parts_dir"):
        return Path(value)
    if name in ("crl", "operator_certs"):
        items = value.split(",") if isinstance(value, str) else value
        return tuple(Path(v) for v in items if v)
    if name in _INTEGERS:
        if isinstance(value, float) or isinstance(value, bool):
            raise ValueError(value)
        return int(value)
    if name in ("http", "access_log"):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    return value


def load_config(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> HubConfig:
    """Defaults < TOML file (a [hub] table or top-level keys) < SMDO_* environment < flags."""
    names = {f.name for f in fields(HubConfig)}
    values: dict[str, Any] = {}
    if file is not None:
        try:
            doc = tomllib.loads(Path(file).read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{file} is not valid TOML: {exc}") from exc
        table = doc.get("hub", doc)
        unknown = set(table) - names
        if unknown:
            raise ValueError(f"{file}: unknown setting(s) {', '.join(sorted(unknown))}")
        try:
            values.update({k: _coerce(k, v) for k, v in table.items()})
        except ValueError as exc:
            raise ValueError(f"{file}: {exc}") from None
    env = os.environ if env is None else env
    for name in names:
        if f"SMDO_{name.upper()}" in env:
            values[name] = _coerce(name, env[f"SMDO_{name.upper()}"])
    for name, value in (flags or {}).items():
        if value is not None and name in names:
            values[name] = _coerce(name, value)
    return replace(HubConfig(), **values)
