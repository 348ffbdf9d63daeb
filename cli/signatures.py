"""`smdo sign` and `smdo verify`: enveloped XML signatures of packet files.

Files are parsed with the hub's hardened parser (no DTD, no entities, no network, bounded).
`verify` exits 0 printing the signer; otherwise 1 with one `code N: message` line per problem.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import click
from cryptography import x509
from lxml import etree

from signing.errors import SignatureError
from signing.keys import Signer, certificate_fingerprint
from signing.pki import PkiLayout
from signing.trust import TrustStore, load_crl
from signing.xmldsig import verify_enveloped, sign_enveloped
from smdo.errors import PacketRejected, Problem
from smdo.xmlparse import parse_xml


def _report(problems: list[Problem], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"valid": False, "problems": [p.as_dict() for p in problems]}, ensure_ascii=False))
    else:
        for problem in problems:
            click.echo(str(problem))
    raise SystemExit(1)


def _read(path: Path, as_json: bool = False) -> etree._Element:
    try:
        return parse_xml(path.read_bytes())
    except PacketRejected as exc:
        _report(exc.problems, as_json)


def _pki_crl(cert_path: Path) -> tuple[Path, ...]:
    """The CAs' CRLs when the certificate lies in an `smdo pki` folder (DIR/subscribers/CODE.pem)."""
    folder = cert_path.resolve().parent
    if folder.name != "subscribers":
        return ()
    return tuple(path for path in PkiLayout(folder.parent).crl_paths if path.exists())


def certificate_warnings(cert: x509.Certificate, crls: Iterable[Path], now: datetime | None = None) -> list[str]:
    """Why receivers would refuse signatures by `cert` now: expired, not yet valid, revoked in one of `crls`."""
    now = now or datetime.now(timezone.utc)
    subject = cert.subject.rfc4514_string()
    warnings = []
    if cert.not_valid_after_utc < now:
        warnings.append(f"the certificate {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
                        f"receivers will refuse this signature: sign with a current certificate")
    if cert.not_valid_before_utc > now:
        warnings.append(f"the certificate {subject} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
                        f"UTC; receivers will refuse this signature until then")
    for path in crls:
        crl = load_crl(path)
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if crl.issuer == cert.issuer and revoked is not None:
            warnings.append(f"the certificate {subject} was revoked on {revoked.revocation_date_utc:%Y-%m-%d %H:%M} "
                            f"UTC ({path}); receivers will refuse this signature: issue a new certificate")
    return warnings


@click.command("sign")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The signer's private key (PEM).")
@click.option("--cert", "cert_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The signer's certificate (PEM; further certificates in the file go into X509Data).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the signed packet (default: stdout).")
@click.option("--c14n", type=click.Choice(["exc", "inclusive"]), default="exc", show_default=True)
@click.option("--digest", type=click.Choice(["sha256", "sha384", "sha512", "belt-hash"]), default=None,
              help="Document digest (default: the key's own: sha256 for RSA/EC, belt-hash for bign).")
@click.option("--crl", "crls", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Warn if the certificate is revoked in this CRL (repeatable; default: the CRL of the "
                   "`smdo pki` folder the certificate was issued in, if any).")
def sign(file: Path, key_path: Path, cert_path: Path, output: Path | None, c14n: str, digest: str | None,
         crls: tuple[Path, ...]) -> None:
    """Sign FILE with an enveloped XML signature (the root's last child).

    RSA keys sign RSA-SHA*, EC P-256 keys ECDSA-SHA256, bign keys bign-with-hbelt with belt-hash.
    Warns (and still signs) when the certificate is expired, not yet valid or revoked: receivers
    would refuse such a signature.
    """
    root = _read(file)
    try:
        signer = Signer.from_files(key_path, cert_path)
        for warning in certificate_warnings(signer.certificate, crls or _pki_crl(cert_path)):
            click.echo(f"warning: {warning}", err=True)
        sign_enveloped(root, signer, c14n=c14n, digest=digest)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1)
    data = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        click.echo(f"signed by {signer.certificate.subject.rfc4514_string()}: {output}", err=True)


@click.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--trust", required=True, type=click.Path(exists=True, path_type=Path),
              help="Trusted CA certificates: a PEM bundle or a folder of *.pem (and *.crl).")
@click.option("--crl", "crls", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CRL to check revocation against (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, for machines.")
def verify(file: Path, trust: Path, crls: tuple[Path, ...], as_json: bool) -> None:
    """Verify FILE's enveloped signature and its signer's certificate path."""
    try:
        store = TrustStore.from_paths(trust, crls)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2)
    root = _read(file, as_json)
    try:
        verified = verify_enveloped(root, trust=store)  # the signer's path before the document digest
    except SignatureError as exc:
        _report([Problem(exc.code, exc.message)], as_json)
    subject = verified.certificate.subject.rfc4514_string()
    if as_json:
        click.echo(json.dumps({
            "valid": True, "signer": subject, "fingerprint": certificate_fingerprint(verified.certificate),
            "signature_method": verified.signature_method, "digest_method": verified.digest_method,
            "c14n_method": verified.c14n_method, "problems": [],
        }, ensure_ascii=False))
    else:
        click.echo(f"valid signature by {subject}")
