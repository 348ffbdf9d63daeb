"""`smdo pki init|issue|revoke`: the test PKI (root CA -> republican CA -> subscribers).

The README's "Test PKI" section lists the files these commands write.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from signing.pki import KEY_TYPES, PkiLayout, default_key_type, init_pki, issue_certificate, refresh_crl, revoke_certificate

TSA_CODE = "TSA"  # the test TSA's certificate in subscribers/TSA.pem

_DIR = click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
                    help="The PKI's folder.")
_KEY_TYPE_HELP = ("RSA-2048, EC P-256, or bign (bign-curve256v1, the national algorithm; its PKI also gets "
                  "an EC TLS CA, since TLS cannot use bign).")


DEFAULT_TLS_HOSTS = ("localhost", "127.0.0.1")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def _set_aside(path: Path) -> Path:
    """Move `path` to replaced/NAME.YYYYmmddTHHMMSS (never overwriting an earlier one)."""
    folder = path.parent / "replaced"
    folder.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    target, n = folder / f"{path.name}.{stamp}", 1
    while target.exists():
        target, n = folder / f"{path.name}.{stamp}-{n}", n + 1
    path.rename(target)
    click.echo(f"kept the old {path.name} as {target}")
    return target


@click.group("pki")
def pki() -> None:
    """A test PKI shaped like the national one: root CA, republican issuing CA, subscribers, CRL."""


@pki.command("init")
@_DIR
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="rsa", show_default=True, help=_KEY_TYPE_HELP)
def init(directory: Path, key_type: str) -> None:
    """Create the root CA and the republican issuing CA in DIR."""
    try:
        layout = init_pki(directory, key_type=key_type)
    except FileExistsError as exc:
        _fail(str(exc))
    click.echo(f"root CA:    {layout.root_cert_path}")
    click.echo(f"issuing CA: {layout.ca_cert_path}")
    click.echo(f"trust dir:  {layout.trust_dir}  (use with: smdo verify --trust)")
    click.echo(f"CRL:        {layout.crl_path}")
    if layout.has_tls_ca:
        click.echo(f"TLS CA:     {layout.tls_ca_cert_path}  (EC: issues the certificates with --tls-host)")


@pki.command("issue")
@_DIR
@click.argument("code")
@click.option("--name", default=None, help="Organisation name (default: the code).")
@click.option("--tls-host", "tls_hosts", multiple=True,
              help="A DNS name or IP the certificate serves TLS for (repeatable) [localhost, 127.0.0.1 for an "
                   "RSA or EC key: an emulated EDMS or a hub on this machine serves TLS with it].")
@click.option("--no-tls", is_flag=True, help="A signing and client certificate only: it serves no TLS.")
@click.option("--key-type", type=click.Choice(KEY_TYPES), default=None,
              help=_KEY_TYPE_HELP + " Default: the PKI's; ec for --tls-host in a bign PKI.")
@click.option("--days", type=int, default=365, show_default=True, help="Validity in days.")
@click.option("--valid-from", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Start of validity, UTC (default now); with a short --days, gives an expired certificate.")
@click.option("--force", is_flag=True,
              help="Re-issue a CODE that already has a key: the old files move to subscribers/replaced/.")
def issue(directory: Path, code: str, name: str | None, tls_hosts: tuple[str, ...], key_type: str | None, days: int,
          valid_from: dt.datetime | None, force: bool, no_tls: bool) -> None:
    """Issue subscriber CODE's key and certificate from the issuing CA."""
    if no_tls and tls_hosts:
        _fail("--no-tls and --tls-host contradict each other: give one")
    layout = PkiLayout(directory)
    if not layout.index_path.exists():
        _fail(f"{directory} holds no PKI: run `smdo pki init --dir {directory}` first")
    key_type = key_type or default_key_type(layout, tls=bool(tls_hosts))
    if not tls_hosts and not no_tls and key_type != "bign":  # TLS cannot use bign keys
        tls_hosts = DEFAULT_TLS_HOSTS
    try:
        existing = [p for p in (layout.key_path(code), layout.cert_path(code), layout.chain_path(code)) if p.exists()]
    except ValueError as exc:
        _fail(str(exc))
    if existing and not force:
        _fail(f"{code} already has a key and certificate in {directory}/subscribers: give --force to re-issue "
              f"(the old files are kept in {directory}/subscribers/replaced/)")
    for path in existing:
        _set_aside(path)
    start = valid_from.replace(tzinfo=dt.timezone.utc) if valid_from else None
    try:
        issued = issue_certificate(directory, code, name, key_type=key_type, tls_hostnames=tls_hosts, days=days,
                                   not_before=start)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"key:         {issued.key_path}")
    click.echo(f"certificate: {issued.cert_path}")
    click.echo(f"chain:       {issued.chain_path}")
    click.echo(f"fingerprint: {issued.fingerprint}")


@pki.command("revoke")
@_DIR
@click.argument("code")
def revoke(directory: Path, code: str) -> None:
    """Revoke CODE's certificate and re-issue the issuing CA's CRL."""
    if not PkiLayout(directory).index_path.exists():
        _fail(f"{directory} holds no PKI")
    try:
        crl = revoke_certificate(directory, code)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    click.echo(f"revoked {code}; CRL: {crl}")


@pki.command("crl")
@_DIR
def crl(directory: Path) -> None:
    """Re-issue the issuing CA's CRL (same revocations, next update in 30 days)."""
    if not PkiLayout(directory).index_path.exists():
        _fail(f"{directory} holds no PKI")
    click.echo(f"CRL: {refresh_crl(directory)}")


@pki.group("tsa")
def tsa() -> None:
    """The PKI's test time-stamping authority (RFC 3161), for `smdo serve --tsa`."""


@tsa.command("serve")
@_DIR
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT; port 0 picks a free one.")
def tsa_serve(directory: Path, listen: str) -> None:
    """Answer time-stamp requests over HTTP with the PKI's TSA certificate (issued on first use,
    extendedKeyUsage timeStamping). Prints `READY http://HOST:PORT/` once it listens."""
    import asyncio

    from cli.tsa_server import serve_tsa

    layout = PkiLayout(directory)
    if not layout.index_path.exists():
        _fail(f"{directory} holds no PKI")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        _fail(f"--listen must be HOST:PORT, not {listen!r}")
    if not layout.cert_path(TSA_CODE).exists():
        issue_certificate(directory, TSA_CODE, "smdo-hub Test TSA", timestamping=True)
    signer = layout.signer(TSA_CODE)
    try:
        asyncio.run(serve_tsa(signer, host, int(port), lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _fail(f"cannot listen on {listen}: {exc}")
