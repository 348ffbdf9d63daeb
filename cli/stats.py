"""`smdo stats`: exchange statistics per period and subscriber, from the hub's journal."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import click

from cli.db import db_options, existing_storage
from cli.tables import table
from cli.when import Since
from smdo.journal import journal_store
from smdo.storage import StorageError, StorageUrl
from smdo.stats import COLUMNS, PERIODS, StatsRow, compute, period_start, to_csv

_HEADERS = ("period", "subscriber", "sent", "received", "delivered", "registered", "reg. refused", "102",
            "hub refused", "deliv. p50 s", "deliv. p95 s", "reg. p50 s", "reg. p95 s", "no reg. ack")


@click.command("stats")
@db_options
@click.option("--period", type=click.Choice(PERIODS), default="month", show_default=True, help="Bucket size (UTC).")
@click.option("--since", "start", type=Since(), help="From then: a date (YYYY-MM-DD, UTC), an ISO time, 2w, "
              "yesterday... [start of the period three periods ago].")
@click.option("--until", "until", type=Since(), help="Up to (not including) then, same forms [now].")
@click.option("--subscriber", help="Only this subscriber's rows (without it: '*' for everyone, then each).")
@click.option("--json", "as_json", is_flag=True, help="JSON: a list of rows.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
def command(data: Path, db: str | None, period: str, start: float | None, until: float | None,
            subscriber: str | None,
            as_json: bool, as_csv: bool) -> None:
    """Documents sent, received, delivered, registered, refused and not delivered (102), with the
    median and p95 time to delivery and to registration, per period and subscriber."""
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    now = time.time()
    end = until or now
    if start is None:
        start = period_start(end, period)
        for _ in range(3):
            start = period_start(start - 1, period)
    where = existing_storage(data, db)
    if where.kind == "sqlite" and not where.journal_path.exists():
        raise click.ClickException(f"no journal at {where.journal_path} yet: it is created when `smdo serve "
                                   f"--data {where.folder}` first runs")
    try:
        rows = asyncio.run(_compute(where, start, end, period, subscriber))
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=1))
    elif as_csv:
        click.echo(to_csv(rows), nl=False)
    elif not rows:
        click.echo("no documents in this period")
    else:
        click.echo(table(_HEADERS, [_cells(r) for r in rows]))


async def _compute(where: StorageUrl, since: float, until: float, period: str, subscriber: str | None) -> list[StatsRow]:
    journal = journal_store(where)
    await journal.open()
    try:
        return await compute(journal, since=since, until=until, period=period, subscriber=subscriber)
    finally:
        await journal.close()


def _cells(row: StatsRow) -> list[object]:
    values = [getattr(row, c) for c in COLUMNS]
    share = row.missing_registration_share
    values[-1] = None if share is None else f"{share:.0%}"
    return values
