"""`smdo edms run KIND ...`: start one emulated EDMS (Rekord-, SMBusiness- or Directum-style)."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import click

from edms_adapters.config import FAULTS, EdmsConfig, RegistrationRules
from edms_adapters.kinds import KIND_NAMES
from edms_adapters.runner import push_url, start_edms
from smdo.datadir import DataDirBusy


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:0")
    return host, int(port)


@click.group()
def edms() -> None:
    """Emulated agency EDMS that exchange documents through the hub."""


@edms.command("run")
@click.argument("kind", type=click.Choice(KIND_NAMES))
@click.option("--code", required=True, help="The agency's SMDO subscriber code.")
@click.option("--name", default="", help="The agency's name (Sender@name).")
@click.option("--hub", "hub_url", required=True, help="Hub base URL, e.g. https://127.0.0.1:8443")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="This EDMS's data folder (SQLite store, exchange folders).")
@click.option("--key", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--cert", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--tls-key", type=click.Path(exists=True, path_type=Path),
              help="TLS key (server, and mailbox client) when not --key: a bign key cannot do TLS.")
@click.option("--tls-cert", type=click.Path(exists=True, path_type=Path), help="TLS certificate, with --tls-key.")
@click.option("--trust", required=True, type=click.Path(exists=True, path_type=Path),
              help="CA certificates (file or folder) for signatures and TLS.")
@click.option("--crl", "crls", multiple=True, type=click.Path(path_type=Path),
              help="CRL file to check signers against (repeatable); re-read whenever it changes.")
@click.option("--hub-code", default="HUB", show_default=True,
              help="Sender@id on the hub's own acknowledgements.")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT (0: any free port).")
@click.option("--http", "plain_http", is_flag=True, help="Serve plain HTTP instead of HTTPS.")
@click.option("--fault", "faults", multiple=True, type=click.Choice(sorted(FAULTS)),
              help="Misbehave on purpose: " + "; ".join(f"{k}: {v}" for k, v in FAULTS.items()))
@click.option("--refuse-kind", multiple=True, help="Refuse to register documents of this kind.")
@click.option("--not-registrable-kind", multiple=True, help="Answer 'not registrable' for this kind.")
@click.option("--number-prefix", default="", help='Incoming number prefix (default e.g. "R-2026/").')
@click.option("--slow-seconds", default=2.0, show_default=True, help="Delay of the 'slow' fault.")
@click.option("--poll-interval", default=0.3, show_default=True, help="Seconds between polls.")
def run(kind: str, code: str, name: str, hub_url: str, hub_code: str, data_dir: Path, key: Path, cert: Path,
        tls_key: Path | None, tls_cert: Path | None, trust: Path, crls: tuple[Path, ...], listen: str,
        plain_http: bool, faults: tuple[str, ...],
        refuse_kind: tuple[str, ...], not_registrable_kind: tuple[str, ...], number_prefix: str,
        slow_seconds: float, poll_interval: float) -> None:
    """Start one emulated EDMS of KIND and run until interrupted.

    Prints one line `READY {json}` (code, kind, url, push_url, data, sys_id) once it listens.
    """
    host, port = _listen(listen)
    config = EdmsConfig(
        kind=kind, code=code, name=name, hub_url=hub_url, hub_code=hub_code, data_dir=data_dir, key=key, cert=cert,
        tls_key=tls_key, tls_cert=tls_cert, trust=trust, crls=tuple(crls), listen_host=host, listen_port=port,
        faults=frozenset(faults),
        rules=RegistrationRules(frozenset(refuse_kind), frozenset(not_registrable_kind)),
        number_prefix=number_prefix, slow_seconds=slow_seconds, poll_interval=poll_interval,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(config, tls=not plain_http))
    except (DataDirBusy, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(config: EdmsConfig, *, tls: bool) -> None:
    running = await start_edms(config, tls=tls)
    ready = {"code": config.code, "kind": config.kind, "url": running.url,
             "push_url": push_url(running), "data": str(config.data_dir),
             "faults": sorted(config.faults), "sys_id": running.service.sender.sys_id}
    click.echo("READY " + json.dumps(ready), nl=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
