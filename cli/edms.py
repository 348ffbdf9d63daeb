"""`smdo edms run KIND ...`: start one emulated EDMS (Rekord-, SMBusiness- or Directum-style)."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
from pathlib import Path

import click
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from edms_adapters.config import FAULTS, EdmsConfig, RegistrationRules
from edms_adapters.kinds import KIND_NAMES
from edms_adapters.runner import push_url, start_edms
from signing.keys import load_certificate
from smdo.datadir import DataDirBusy


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:0")
    return host, int(port)


def tls_problem(cert_path: Path, host: str) -> str | None:
    """Why the certificate cannot serve HTTPS on `host` (the hub checks both), or None."""
    cert = load_certificate(cert_path)
    try:
        if not isinstance(cert.public_key(), (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            return None  # e.g. bign: loading it for TLS fails with its own message (give --tls-key/--tls-cert)
    except (ValueError, UnsupportedAlgorithm):  # a key type cryptography does not know (bign)
        return None
    try:
        purposes = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is not None and ExtendedKeyUsageOID.SERVER_AUTH not in purposes:
        return "its extended key usage does not include TLS server authentication"
    if host in ("0.0.0.0", "::", ""):
        return None  # any address: the name the hub uses is not known here
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return f"it names no host (no subject alternative name), so not {host}"
    try:
        listed = host in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] \
            if ipaddress.ip_address(host) else False
    except ValueError:  # a DNS name
        listed = host.lower() in [n.lower() for n in names.get_values_for_type(x509.DNSName)]
    return None if listed else f"it does not name {host}"


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
@click.option("--mail-address", default="", help="Mail transport (kind laiss): this EDMS's address.")
@click.option("--mail-port", default=0, show_default=True, help="Mail transport: our SMTP port (0: free).")
@click.option("--hub-mail", default="", help="Mail transport: the hub's mail address.")
@click.option("--hub-smtp", default="", help="Mail transport: HOST:PORT of the hub's SMTP server.")
def run(kind: str, code: str, name: str, hub_url: str, hub_code: str, data_dir: Path, key: Path, cert: Path,
        tls_key: Path | None, tls_cert: Path | None, trust: Path, crls: tuple[Path, ...], listen: str,
        plain_http: bool, faults: tuple[str, ...],
        refuse_kind: tuple[str, ...], not_registrable_kind: tuple[str, ...], number_prefix: str,
        slow_seconds: float, poll_interval: float, mail_address: str, mail_port: int, hub_mail: str,
        hub_smtp: str) -> None:
    """Start one emulated EDMS of KIND and run until interrupted.

    Prints one line `READY {json}` (code, kind, url, push_url, data, sys_id) once it listens.
    """
    host, port = _listen(listen)
    if not plain_http:
        problem = tls_problem(tls_cert or cert, host)
        if problem:
            raise click.ClickException(f"{tls_cert or cert} cannot serve TLS to the hub: {problem}; issue it with "
                                       f"`smdo pki issue --dir DIR {code} --tls-host {host} --force` (or use --http)")
    config = EdmsConfig(
        kind=kind, code=code, name=name, hub_url=hub_url, hub_code=hub_code, data_dir=data_dir, key=key, cert=cert,
        tls_key=tls_key, tls_cert=tls_cert, trust=trust, crls=tuple(crls), listen_host=host, listen_port=port,
        faults=frozenset(faults),
        rules=RegistrationRules(frozenset(refuse_kind), frozenset(not_registrable_kind)),
        number_prefix=number_prefix, slow_seconds=slow_seconds, poll_interval=poll_interval,
        mail_address=mail_address, mail_port=mail_port, hub_mail=hub_mail, hub_smtp=hub_smtp,
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
             "faults": sorted(config.faults), "sys_id": running.service.sender.sys_id,
             "mail_port": running.mail.port if running.mail else None}
    click.echo("READY " + json.dumps(ready), nl=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
