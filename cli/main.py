"""The `smdo` command: one click group; each sub-command lives in its own module."""
from __future__ import annotations

import os
from pathlib import Path

import click

from cli.errors import ErrorReportingGroup
from signing.keys import KEY_PASSWORD_FILE_ENV


@click.group(cls=ErrorReportingGroup)
@click.version_option(package_name="smdo-hub")
@click.option("--key-password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help=f"A file holding the passphrase of encrypted private keys [{KEY_PASSWORD_FILE_ENV}; "
                   "or the passphrase itself in SMDO_KEY_PASSWORD]. Never give it on the command line.")
def main(key_password_file: Path | None) -> None:
    """smdo-hub: inter-agency electronic document exchange hub."""
    if key_password_file is not None:  # the environment reaches every key loader and child process
        os.environ[KEY_PASSWORD_FILE_ENV] = str(key_password_file)


# One line per command module: `main.add_command(module.command)`. Keep it sorted.
from cli import conformance, datafolder, db, edms, journal, packets, pki, serve, signatures, stats, subscribers  # noqa: E402

main.add_command(datafolder.backup_command)
main.add_command(conformance.conformance)
main.add_command(db.command)
main.add_command(edms.edms)
main.add_command(datafolder.init_command)

main.add_command(journal.command)
main.add_command(packets.validate_command)
main.add_command(pki.pki)
main.add_command(datafolder.restore_command)
main.add_command(serve.command)
main.add_command(signatures.sign)
main.add_command(stats.command)
main.add_command(subscribers.subscribers)
main.add_command(signatures.verify)


if __name__ == "__main__":
    main()
