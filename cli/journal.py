"""`smdo journal verify|show|list|checkpoints`: read the hub's journal and check it against its
signed checkpoints."""
from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import click

from cli.db import db_options, existing_storage
from cli.when import Since
from router.config import parse_duration
from smdo.journal import DeliveryState, JournalStore, TransactionView, journal_store
from smdo.journal.audit import Progress
from smdo.journal.checkpoints import (
    FILE_NAME, Checkpoint, CheckpointProblem, check_journal, check_signatures, iter_checkpoints, read_checkpoints,
)
from smdo.storage import StorageError

STATES = ["accepted", "rejected", *(s.value for s in DeliveryState if s.value != "accepted")]


_data_option = db_options


async def _with_journal(data: Path, db: str | None, action):
    where = existing_storage(data, db)
    if where.kind == "sqlite" and not where.journal_path.exists():
        raise click.ClickException(f"no journal at {where.journal_path} yet: it is created when `smdo serve "
                                   f"--data {where.folder}` first runs")
    journal = journal_store(where)
    try:
        await journal.open()
    except StorageError as exc:  # unreachable server, unknown schema: one line, no traceback
        raise click.ClickException(str(exc)) from None
    try:
        return await action(journal)
    finally:
        await journal.close()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@click.group("journal")
def command() -> None:
    """Verify and read the hub's journal."""


def _checkpoints_option(fn):
    return click.option("--checkpoints", "checkpoints_file", type=click.Path(dir_okay=False, path_type=Path),
                        help=f"The hub's checkpoint file [DATA/{FILE_NAME}].")(fn)


@command.command("verify")
@_data_option
@_checkpoints_option
@click.option("--hub-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="SMDO_CERT",
              help="The hub's certificate: every checkpoint must be signed by it [SMDO_CERT].")
@click.option("--trust", type=click.Path(exists=True, path_type=Path), envvar="SMDO_TRUST",
              help="CA certificates (and CRLs) the hub's and the TSA's certificates must chain to [SMDO_TRUST].")
@click.option("--since-checkpoint", is_flag=True,
              help="Check only what was written after the last checkpoint that is validly signed and still "
                   "matched by the journal (a daily verify); without one, everything is checked.")
@click.option("--archive", "archive_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The folder packets were archived to: re-hash each archived file against its journal entry.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def verify(data: Path, db: str | None, checkpoints_file: Path | None, hub_cert: Path | None, trust: Path | None,
           since_checkpoint: bool, archive_dir: Path | None, quiet: bool) -> None:
    """Check the hash chain and every row against it, then the chain against the hub's signed
    checkpoints; exit 1 naming each edited or deleted row and the first checkpoint no longer matched.
    Reads the journal in pages (memory stays flat however large it is), printing progress."""
    from signing.keys import load_certificate
    from signing.trust import TrustStore

    path = checkpoints_file or data / FILE_NAME
    try:
        pinned = load_certificate(hub_cert) if hub_cert else None
        store = TrustStore.from_paths(trust) if trust else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if checkpoints_file is not None and not path.exists():
        raise click.ClickException(f"no checkpoint file at {path}")
    shown = _ProgressLine(quiet)
    seen = _Checkpoints()

    async def check(journal: JournalStore):
        if path.exists():
            try:
                await seen.check(journal, iter_checkpoints(path), pinned, store, quiet)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
        start = None
        if since_checkpoint:
            start = seen.last_good
            click.echo(f"starting after checkpoint at entry {start.seq} ({start.at})" if start
                       else "no valid checkpoint to start after: checking everything", err=True)
        return await journal.verify(since=(start.seq, start.head) if start else None, progress=shown,
                                    archive=archive_dir)

    began = time.monotonic()
    problems = asyncio.run(_with_journal(data, db, check))
    shown.done(time.monotonic() - began)
    for problem in problems:
        if problem.table == "archive":
            click.echo(f"archive broken: file {problem.row}: {problem.message}", err=True)
        else:
            click.echo(f"journal broken: {problem}", err=True)
    for problem in seen.signatures:
        click.echo(f"checkpoint not valid: {problem}", err=True)
    if seen.against:
        click.echo(f"journal does not match its checkpoints: first at {seen.against[0]}", err=True)
        for problem in seen.against[1:]:
            click.echo(f"  also {problem}", err=True)
    if problems or seen.signatures or seen.against:
        sys.exit(1)
    click.echo("journal ok: hash chain intact, every transaction and delivery matches it"
               + (f"; every packet archived to {archive_dir} matches its digest" if archive_dir else ""))
    if seen.last is not None:
        who = "the hub's certificate" if pinned else "the certificate each carries (give --hub-cert to pin the hub's)"
        click.echo(f"checkpoints ok: {seen.count} signed by {who}, {seen.stamped} timestamped, "
                   f"the last at entry {seen.last.seq} ({seen.last.at})")
    else:
        click.echo(f"no checkpoints at {path}: a rollback or a full rewrite could not be told")


class _Checkpoints:
    """The checkpoint file checked in batches (years of checkpoints need not fit in memory): what
    was wrong, how many, and the last one both validly signed and still matched by the journal."""

    BATCH = 1000

    def __init__(self) -> None:
        self.count = self.stamped = 0
        self.last: Checkpoint | None = None
        self.last_good: Checkpoint | None = None
        self.signatures: list[CheckpointProblem] = []
        self.against: list[CheckpointProblem] = []

    async def check(self, journal: JournalStore, checkpoints: Iterator[Checkpoint], pinned, trust,
                    quiet: bool) -> None:
        shown = time.monotonic()
        while batch := list(itertools.islice(checkpoints, self.BATCH)):
            if not quiet and time.monotonic() - shown >= 2.0:
                shown = time.monotonic()
                click.echo(f"verify: {self.count} checkpoints checked", err=True)
            first = self.count + 1
            signatures = check_signatures(batch, hub_cert=pinned, trust=trust, first=first)
            against = await check_journal(journal, batch, first=first)
            bad = {p.number for p in signatures} | {p.number for p in against}
            for number, cp in enumerate(batch, first):
                if number not in bad:
                    self.last_good = cp
            self.signatures += signatures
            self.against += against
            self.count += len(batch)
            self.stamped += sum(1 for c in batch if c.timestamp)
            self.last = batch[-1]


class _ProgressLine:
    """Progress of a long verify on stderr, at most every 2 seconds; the rate at the end."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.last_shown, self.checked, self.deliveries = quiet, time.monotonic(), 0, 0

    def __call__(self, progress: Progress) -> None:
        self.checked, self.deliveries = progress.checked, progress.deliveries
        if self.quiet or time.monotonic() - self.last_shown < 2.0:
            return
        self.last_shown = time.monotonic()
        share = f" ({100 * progress.checked / progress.total:.0f}%)" if progress.total else ""
        click.echo(f"verify: {progress.checked}/{progress.total} entries{share}, {progress.deliveries} deliveries,"
                   f" {progress.rate:,.0f} entries/s", err=True)

    def done(self, seconds: float) -> None:
        if not self.quiet:
            click.echo(f"verify: {self.checked} entries and {self.deliveries} deliveries in {seconds:.1f} s"
                       f" ({self.checked / max(seconds, 1e-9):,.0f} entries/s)", err=True)


@command.command("checkpoints")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), envvar="SMDO_DATA", default=Path("var"),
              show_default=True, help="The hub's data folder, holding its checkpoint file [SMDO_DATA].")
@_checkpoints_option
@click.option("--json", "as_json", is_flag=True, help="The checkpoints as they are stored (JSON lines).")
def checkpoints_(data: Path, checkpoints_file: Path | None, as_json: bool) -> None:
    """Export the hub's signed journal checkpoints (to keep elsewhere, or verify on another machine)."""
    path = checkpoints_file or data / FILE_NAME
    if not path.exists():
        raise click.ClickException(f"no checkpoint file at {path}")
    try:
        checkpoints = read_checkpoints(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        for c in checkpoints:
            click.echo(c.to_line(), nl=False)
        return
    click.echo(f"{'#':>4} {'time (UTC)':<20} {'entry':>8} {'head hash':<64} timestamp")
    for number, c in enumerate(checkpoints, 1):
        click.echo(f"{number:>4} {c.at:<20} {c.seq:>8} {c.head:<64} {'yes' if c.timestamp else '-'}")
    click.echo(f"{len(checkpoints)} checkpoint(s)")


@command.command("archive")
@_data_option
@click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the packets and parts are moved to (e.g. an archive volume).")
@click.option("--retention", default="30d", envvar="SMDO_RETENTION", show_default=True,
              help="Keep packets and parts of packets received less than this long ago [SMDO_RETENTION].")
@click.option("--parts-dir", type=click.Path(file_okay=False, path_type=Path), envvar="SMDO_PARTS_DIR",
              help="The hub's parts folder, when not DATA/parts (the hub's parts_dir) [SMDO_PARTS_DIR].")
def archive_(data: Path, db: str | None, to: Path, retention: str, parts_dir: Path | None) -> None:
    """Move finished packets (every receiver delivered, registered, refused or expired) received more
    than --retention ago out of the journal to TO/packets/<msg_id>.xml, and the files carried beside
    them out of DATA/parts (or --parts-dir) to TO. Each packet moved leaves a chain entry with its digest, so
    `smdo journal verify` still passes and `--archive TO` re-checks the files. For a stopped hub:
    a running one archives by itself with its `retention` and `archive_dir` settings."""
    from smdo.datadir import DataDirBusy, lock_data_dir
    from smdo.journal.archive import archive_packets
    from smdo.parts import PartStore, archive

    try:
        keep = parse_duration(retention)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    where = existing_storage(data, db)
    lock = None
    if where.kind == "sqlite":  # the journal's writer is the hub: not while one runs on this folder
        try:
            lock = lock_data_dir(where.folder, "serve.lock", "a hub")
        except DataDirBusy:
            raise click.ClickException(
                f"a hub is running on {where.folder}: it archives by itself when given the settings "
                "retention and archive_dir (smdo serve --retention 30d --archive-dir DIR)") from None
    parts_dir = parts_dir or data / "parts"
    parts = PartStore(parts_dir) if parts_dir.exists() else None

    async def run(journal: JournalStore):
        now = time.time()
        packets = await archive_packets(journal, to, retention=keep, now=now)
        moved = await archive(parts, journal, to, retention=keep, now=now) if parts is not None else []
        return packets, moved

    try:
        packets, moved = asyncio.run(_with_journal(data, db, run))
    finally:
        if lock is not None:
            lock.close()
    click.echo(f"archived {len(packets.archived)} packet(s) ({packets.bytes} bytes) to {to / 'packets'}")
    for problem in packets.problems:
        click.echo(f"not archived: {problem}", err=True)
    click.echo(f"archived {len(moved)} part(s) to {to}")
    for digest in moved:
        click.echo(f"  {digest}")
    if packets.problems:
        sys.exit(1)


@command.command("show")
@_data_option
@click.argument("msg_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(data: Path, db: str | None, msg_id: str, as_json: bool) -> None:
    """Everything the journal holds about MSG_ID."""
    async def read(journal: JournalStore):
        return await journal.transaction(msg_id), await journal.acknowledgements(msg_id)

    views, acks = asyncio.run(_with_journal(data, db, read))
    if not views:
        raise click.ClickException(f"no transaction with msg_id {msg_id}")
    if as_json:
        click.echo(json.dumps({"transactions": [v.as_dict() for v in views],
                               "acknowledgements": [a.as_dict() for a in acks]}, indent=2))
        return
    for v in views:
        click.echo(f"msg_id     {v.msg_id}\noutcome    {v.outcome} (codes {', '.join(map(str, v.codes))})\n"
                   f"sender     {v.sender or '-'}\nreceivers  {', '.join(v.receivers) or '-'}\n"
                   f"type       {v.msg_type}\nreceived   {_when(v.received_at)}\nsize       {v.size} bytes\n"
                   f"digest     {v.digest}")
        if v.archived:
            click.echo("packet     archived (moved out of the journal; its entry keeps the digest)")
        if v.ack_for:
            click.echo(f"acks       {v.ack_for}")
        for d in v.deliveries:
            click.echo(f"  -> {d.receiver:<12} {d.mode:<5} {d.state:<22} attempts {d.attempts}  "
                       f"{_when(d.updated_at)}  {d.detail}")
        click.echo("")
    for a in acks:
        states = ", ".join(f"{d.receiver}:{d.state}" for d in a.deliveries) or "-"
        click.echo(f"ack        {a.msg_id} from {a.sender} to {', '.join(a.receivers)} "
                   f"({_when(a.received_at)}; {states})")


@command.command("list")
@_data_option
@click.option("--since", "since_ts", type=Since(),
              help="Only transactions received since then: 30m, 24h, 2w, 1h30m, today, yesterday or an ISO "
                   "date/time (UTC unless it names its offset).")
@click.option("--sender", help="Only from this subscriber code.")
@click.option("--state", type=click.Choice(STATES),
              help="The transaction's outcome (accepted, rejected) or a receiver's delivery state.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(data: Path, db: str | None, since_ts: float | None, sender: str | None, state: str | None, limit: int,
          as_json: bool) -> None:
    """The latest transactions as a table."""
    views: list[TransactionView] = asyncio.run(_with_journal(
        data, db, lambda j: j.list_transactions(since=since_ts, sender=sender, state=state, limit=limit)))
    if as_json:
        click.echo(json.dumps([v.as_dict() for v in views], indent=2))
        return
    click.echo(f"{'received (UTC)':<20} {'msg_id':<36} {'sender':<10} {'type':>4} {'outcome':<9} {'codes':<8} deliveries")
    for v in views:
        deliveries = ", ".join(f"{d.receiver}:{d.state}" for d in v.deliveries) or "-"
        click.echo(f"{_when(v.received_at):<20} {(v.msg_id or '-'):<36} {(v.sender or '-'):<10} "
                   f"{'-' if v.msg_type is None else v.msg_type:>4} {v.outcome:<9} "
                   f"{','.join(map(str, v.codes)):<8} {deliveries}")
    click.echo(f"{len(views)} transaction(s)")
