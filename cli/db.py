"""`smdo db upgrade|status`: the schema of the hub's storage (journal and registry)."""
from __future__ import annotations

from pathlib import Path

import click

from smdo.datadir import DataDirMissing, require_data_dir
from smdo.storage import StorageError, StorageUrl, parse_storage


def db_options(fn):
    """`--db` and `--data`, as every command that reads or writes the journal or registry takes them."""
    fn = click.option("--db", envvar="SMDO_DB", default=None,
                      help="Storage: sqlite:///folder or postgresql://user@host/db [SMDO_DB; default: --data].")(fn)
    return click.option("--data", type=click.Path(file_okay=False, path_type=Path), envvar="SMDO_DATA",
                        default=Path("var"), show_default=True, help="The hub's data folder [SMDO_DATA].")(fn)


def storage_of(data: Path, db: str | None) -> StorageUrl:
    try:
        return parse_storage(db, data)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def existing_storage(data: Path, db: str | None) -> StorageUrl:
    """storage_of, refusing a data folder never initialised (`smdo init`, or the first `smdo serve`):
    a typo in --data must be an error, not a new empty registry or journal."""
    where = storage_of(data, db)
    if where.kind == "sqlite":
        try:
            require_data_dir(where.folder)
        except DataDirMissing as exc:
            raise click.ClickException(str(exc)) from None
    return where


@click.group("db")
def command() -> None:
    """The schema of the hub's storage."""


@command.command("upgrade")
@db_options
def upgrade(data: Path, db: str | None) -> None:
    """Bring the storage's schema to this release's version (safe to repeat; nodes may keep running
    an older release only until they restart: a hub refuses a schema it does not know)."""
    where = storage_of(data, db)
    if where.kind == "sqlite":
        # The embedded files upgrade themselves when opened; opening them is the upgrade.
        import asyncio

        from smdo.journal import journal_store
        from smdo.registry import registry_store

        async def touch() -> None:
            journal = journal_store(where)
            await journal.open()
            await journal.close()

        try:
            asyncio.run(touch())
            registry_store(where).close()
        except StorageError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{where.shown}: SQLite journal and registry are at this release's schema")
        return
    import psycopg

    from smdo.postgres.migrations import upgrade as apply

    try:
        start, end = apply(where.dsn or "")
    except (psycopg.Error, StorageError) as exc:
        raise click.ClickException(f"{where.shown}: {str(exc).strip().splitlines()[0]}") from None
    click.echo(f"{where.shown}: schema version {start} -> {end}" if start != end
               else f"{where.shown}: schema already at version {end}")
