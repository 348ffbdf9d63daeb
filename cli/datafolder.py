"""`smdo init|backup|restore`: create a data folder, copy it while the hub runs, put a copy back."""
from __future__ import annotations

import asyncio
from pathlib import Path

import click

from smdo.backup import backup_data_dir, restore_data_dir
from smdo.datadir import init_data_dir
from smdo.journal import journal_store
from smdo.journal.checkpoints import FILE_NAME as CHECKPOINTS, check_journal, read_checkpoints

_PATH = click.Path(file_okay=False, path_type=Path)


def _data_option(fn):
    return click.option("--data", type=_PATH, envvar="SMDO_DATA", default=Path("var"), show_default=True,
                        help="The hub's data folder [SMDO_DATA].")(fn)


async def _verify_journal(path: Path) -> list[str]:
    """The hash chain's problems, then any checkpoint the copy no longer matches."""
    checkpoints = path.parent / CHECKPOINTS
    journal = journal_store(path.parent)  # the data folder: its SQLite journal.db
    await journal.open()
    try:
        problems = list(await journal.verify())
        if checkpoints.exists():
            problems += [f"checkpoint {p}" for p in await check_journal(journal, read_checkpoints(checkpoints))]
        return problems
    finally:
        await journal.close()


def _check_copy(folder: Path) -> None:
    journal = folder / "journal.db"
    if journal.exists():
        problems = asyncio.run(_verify_journal(journal))
        if problems:
            raise click.ClickException(f"the copy's journal does not verify: {problems[0]}")
        click.echo("journal copy verified: hash chain intact, matches its checkpoints")


@click.command("init")
@click.argument("directory", type=_PATH)
def init_command(directory: Path) -> None:
    """Create the data folder DIRECTORY (registry and journal live there)."""
    if init_data_dir(directory):
        click.echo(f"created the data folder {directory}; use it with --data {directory} or SMDO_DATA={directory}")
    else:
        click.echo(f"{directory} already is a data folder; nothing changed")


@click.command("backup")
@_data_option
@click.argument("target", type=_PATH)
def backup_command(data: Path, target: Path) -> None:
    """Copy the registry and journal into the new folder TARGET; safe while the hub runs."""
    for path in backup_data_dir(data, target):
        click.echo(f"copied {path}")
    _check_copy(target)


@click.command("restore")
@_data_option
@click.argument("backup", type=click.Path(exists=True, file_okay=False, path_type=Path))
def restore_command(data: Path, backup: Path) -> None:
    """Make the new data folder --data from BACKUP (a folder `smdo backup` wrote); then run `smdo serve`."""
    for path in restore_data_dir(backup, data):
        click.echo(f"restored {path}")
    _check_copy(data)
