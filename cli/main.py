"""The `smdo` command: one click group; each sub-command lives in its own module."""
from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="smdo-hub")
def main() -> None:
    """smdo-hub: inter-agency electronic document exchange hub."""


# One line per command module: `main.add_command(module.command)`. Keep it sorted.
from cli import conformance, db, edms, journal, packets, pki, serve, signatures, stats, subscribers  # noqa: E402

main.add_command(conformance.conformance)
main.add_command(db.command)
main.add_command(edms.edms)

main.add_command(journal.command)
main.add_command(packets.validate_command)
main.add_command(pki.pki)
main.add_command(serve.command)
main.add_command(signatures.sign)
main.add_command(stats.command)
main.add_command(subscribers.subscribers)
main.add_command(signatures.verify)


if __name__ == "__main__":
    main()
