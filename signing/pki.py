"""A test PKI shaped like the national one: root CA -> republican issuing CA -> subscribers.

Everything lives in one directory (see the README's "Test PKI" section for the file list):
private keys are written 0600, `index.json` records every issued certificate, and
`revoke_certificate` re-issues the issuing CA's CRL.

Key types: "rsa", "ec" (P-256) and "bign" (bign-curve256v1, signed bign-with-hbelt, as GosSUOK
issues them). OpenSSL has no bign, so TLS cannot use a bign chain: a bign PKI also holds an EC
"TLS CA" (self-signed, beside the bign root) that issues every certificate with TLS host names.
All certificates and CRLs are built by `signing.certificates`, whatever the algorithm.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing import algorithms
from signing.certificates import authority_key_identifier, build_certificate, build_crl, subject_key_identifier
from signing.keys import (
    PrivateKey, Signer, certificate_fingerprint, load_certificate, load_private_key, pem_encode,
)

ROOT_NAME = "root-ca"
CA_NAME = "issuing-ca"
TLS_CA_NAME = "tls-ca"  # only in a bign PKI: TLS needs a chain OpenSSL can verify
KEY_TYPES = ("rsa", "ec", "bign")
INDEX = "index.json"
CRL_DAYS = 30
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _new_key(key_type: str) -> PrivateKey:
    if key_type not in KEY_TYPES:
        raise ValueError(f"unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")
    return algorithms.generate_key(key_type)


def _write_private(path: Path, key: PrivateKey) -> None:
    # Create with 0600 from the start so the key is never readable by others, even briefly.
    data = pem_encode(algorithms.private_key_der(key), "PRIVATE KEY")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "BY"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smdo-hub test PKI"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def _ca_certificate(subject: x509.Name, key: PrivateKey, issuer: x509.Certificate | None,
                    issuer_key: PrivateKey, path_length: int | None, days: int) -> x509.Certificate:
    now = _now()
    extensions = [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (_ca_key_usage(), True),
        (subject_key_identifier(key.public_key()), False),
    ]
    if issuer is not None:
        extensions.append((authority_key_identifier(issuer), False))
    return build_certificate(subject=subject, issuer=issuer.subject if issuer else subject,
                             public_key=key.public_key(), issuer_key=issuer_key,
                             serial=x509.random_serial_number(), not_before=now - dt.timedelta(minutes=5),
                             not_after=now + dt.timedelta(days=days), extensions=extensions)


@dataclass(frozen=True)
class IssuedCertificate:
    """A subscriber's key and certificate as written by `issue_certificate`."""

    code: str
    key_path: Path
    cert_path: Path
    chain_path: Path  # the certificate followed by the issuing CA's, for TLS
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)

    def signer(self) -> Signer:
        return Signer(key=load_private_key(self.key_path), certificate=self.certificate)


@dataclass(frozen=True)
class PkiLayout:
    """Where a test PKI keeps its files; open an existing one with `PkiLayout(directory)`."""

    directory: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))

    @property
    def root_cert_path(self) -> Path:
        return self.directory / f"{ROOT_NAME}.pem"

    @property
    def root_key_path(self) -> Path:
        return self.directory / f"{ROOT_NAME}.key"

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / f"{CA_NAME}.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / f"{CA_NAME}.key"

    @property
    def tls_ca_cert_path(self) -> Path:
        return self.directory / f"{TLS_CA_NAME}.pem"

    @property
    def tls_ca_key_path(self) -> Path:
        return self.directory / f"{TLS_CA_NAME}.key"

    @property
    def tls_crl_path(self) -> Path:
        return self.trust_dir / f"{TLS_CA_NAME}.crl"

    @property
    def has_tls_ca(self) -> bool:
        """A bign PKI has a separate EC CA for TLS certificates."""
        return self.tls_ca_cert_path.exists()

    @property
    def root_cert(self) -> x509.Certificate:
        return load_certificate(self.root_cert_path)

    @property
    def ca_cert(self) -> x509.Certificate:
        return load_certificate(self.ca_cert_path)

    @property
    def trust_dir(self) -> Path:
        """The root (anchor) and the issuing CA (intermediate): what `TrustStore.from_paths` takes."""
        return self.directory / "trust"

    @property
    def ca_bundle_path(self) -> Path:
        """Root and issuing CA in one PEM: what an ssl context's `cafile` takes."""
        return self.directory / "ca-bundle.pem"

    @property
    def crl_path(self) -> Path:
        """The issuing CA's CRL, re-issued on every revocation. In the trust folder, where
        `TrustStore.from_paths(trust_dir)` (the hub's and the CLI's --trust) finds it unasked."""
        return self.trust_dir / f"{CA_NAME}.crl"

    @property
    def root_crl_path(self) -> Path:
        return self.trust_dir / f"{ROOT_NAME}.crl"

    @property
    def crl_paths(self) -> list[Path]:
        return [self.root_crl_path, self.crl_path] + ([self.tls_crl_path] if self.has_tls_ca else [])

    @property
    def index_path(self) -> Path:
        return self.directory / INDEX

    def key_path(self, code: str) -> Path:
        return self.directory / "subscribers" / f"{_checked_code(code)}.key"

    def cert_path(self, code: str) -> Path:
        return self.directory / "subscribers" / f"{_checked_code(code)}.pem"

    def chain_path(self, code: str) -> Path:
        return self.directory / "subscribers" / f"{_checked_code(code)}-chain.pem"

    def certificate(self, code: str) -> x509.Certificate:
        return load_certificate(self.cert_path(code))

    def signer(self, code: str) -> Signer:
        return Signer.from_files(self.key_path(code), self.cert_path(code))

    def index(self) -> dict:
        return json.loads(self.index_path.read_text())

    def trust_store(self, *, with_crls: bool = True):
        """A TrustStore of this PKI (root anchor, issuing CA, and its CRLs)."""
        from signing.trust import TrustStore  # trust does not need pki; keep the import one-way at load time

        return TrustStore.from_paths(self.trust_dir, self.crl_paths if with_crls else ())


def default_key_type(layout: PkiLayout, *, tls: bool) -> str:
    """The PKI's own key type (as `init_pki` recorded it); in a bign PKI, "ec" for TLS certificates."""
    key_type = layout.index().get("key_type", "rsa")
    return "ec" if tls and key_type == "bign" else key_type


def _checked_code(code: str) -> str:
    if not _CODE.match(code):
        raise ValueError(f"subscriber code {code!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    return code


def _write_index(layout: PkiLayout, index: dict) -> None:
    _write_atomic(layout.index_path, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())


def _write_crl(layout: PkiLayout, issuer_cert: x509.Certificate, issuer_key: PrivateKey,
               revoked: Sequence[tuple[int, dt.datetime]], path: Path) -> Path:
    now = _now()
    crl = build_crl(issuer=issuer_cert.subject, issuer_key=issuer_key, last_update=now - dt.timedelta(minutes=5),
                    next_update=now + dt.timedelta(days=CRL_DAYS), revoked=revoked,
                    extensions=[(x509.CRLNumber(int(now.timestamp())), False)])
    _write_atomic(path, crl.public_bytes(serialization.Encoding.PEM))
    return path


def init_pki(directory: Path, *, key_type: str = "rsa") -> PkiLayout:
    """Create the root CA and the republican issuing CA, their (empty) CRLs, the trust dir and index.json."""
    layout = PkiLayout(Path(directory))
    if layout.index_path.exists():
        raise FileExistsError(f"{layout.directory} already holds a PKI ({INDEX} exists)")
    layout.directory.mkdir(parents=True, exist_ok=True)
    (layout.directory / "subscribers").mkdir(exist_ok=True)
    layout.trust_dir.mkdir(exist_ok=True)

    root_key = _new_key(key_type)
    root = _ca_certificate(_ca_name("smdo-hub Test Root CA"), root_key, None, root_key, path_length=1, days=3650)
    ca_key = _new_key(key_type)
    ca = _ca_certificate(_ca_name("smdo-hub Test Republican CA"), ca_key, root, root_key, path_length=0,
                         days=1825)

    _write_private(layout.root_key_path, root_key)
    _write_private(layout.ca_key_path, ca_key)
    _write_atomic(layout.root_cert_path, _pem(root))
    _write_atomic(layout.ca_cert_path, _pem(ca))
    _write_atomic(layout.trust_dir / f"{ROOT_NAME}.pem", _pem(root))
    _write_atomic(layout.trust_dir / f"{CA_NAME}.pem", _pem(ca))
    bundle = _pem(root) + _pem(ca)
    if key_type == "bign":
        tls_key = _new_key("ec")
        tls_ca = _ca_certificate(_ca_name("smdo-hub Test TLS CA"), tls_key, None, tls_key, path_length=0,
                                 days=1825)
        _write_private(layout.tls_ca_key_path, tls_key)
        _write_atomic(layout.tls_ca_cert_path, _pem(tls_ca))
        _write_atomic(layout.trust_dir / f"{TLS_CA_NAME}.pem", _pem(tls_ca))
        _write_crl(layout, tls_ca, tls_key, [], layout.tls_crl_path)
        bundle += _pem(tls_ca)
    _write_atomic(layout.ca_bundle_path, bundle)
    _write_crl(layout, root, root_key, [], layout.root_crl_path)
    _write_crl(layout, ca, ca_key, [], layout.crl_path)
    _write_index(layout, {
        "key_type": key_type,
        "root": {"subject": root.subject.rfc4514_string(), "fingerprint": certificate_fingerprint(root)},
        "ca": {"subject": ca.subject.rfc4514_string(), "fingerprint": certificate_fingerprint(ca)},
        "certificates": {},
    })
    return layout


def issue_certificate(directory: Path, code: str, name: str | None = None, *, key_type: str = "rsa",
                      tls_hostnames: Sequence[str] = (), days: int = 365,
                      not_before: dt.datetime | None = None,
                      wrong_key_usage: bool = False, timestamping: bool = False) -> IssuedCertificate:
    """Issue (or re-issue) subscriber `code`'s key and certificate from the issuing CA.

    For tests: `not_before` in the past with a short `days` gives an expired certificate;
    `wrong_key_usage` gives one allowed only key encipherment, not signing. `timestamping`: a
    time-stamping authority's certificate (extendedKeyUsage timeStamping only, critical; RFC 3161).
    """
    layout = PkiLayout(Path(directory))
    _checked_code(code)
    index = layout.index()
    if tls_hostnames and layout.has_tls_ca:
        # TLS peers verify with OpenSSL, which has no bign: the EC TLS CA issues TLS certificates.
        if key_type == "bign":
            raise ValueError("a bign key cannot serve TLS (OpenSSL has no bign): issue certificates with "
                             "TLS host names with key type 'ec'")
        ca, ca_key = load_certificate(layout.tls_ca_cert_path), load_private_key(layout.tls_ca_key_path)
    else:
        ca, ca_key = layout.ca_cert, load_private_key(layout.ca_key_path)
    key = _new_key(key_type)
    start = not_before or (_now() - dt.timedelta(minutes=5))
    display = name or code

    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "BY"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, display),
        x509.NameAttribute(NameOID.USER_ID, code),
        x509.NameAttribute(NameOID.COMMON_NAME, display),
    ])
    if wrong_key_usage:
        usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=True,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False)
    else:
        usage = x509.KeyUsage(digital_signature=True, content_commitment=True,
                              key_encipherment=isinstance(key, rsa.RSAPrivateKey) and bool(tls_hostnames),
                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False)
    # Every subscriber may be a TLS client (pull mode uses mutual TLS); hosts also serve TLS.
    purposes = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if tls_hostnames:
        purposes.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    if timestamping:
        purposes = [ExtendedKeyUsageOID.TIME_STAMPING]
    extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (usage, True),
        (x509.ExtendedKeyUsage(purposes), timestamping),  # a TSA's: critical (RFC 3161)
        (subject_key_identifier(key.public_key()), False),
        (authority_key_identifier(ca), False),
    ]
    if tls_hostnames:
        names: list[x509.GeneralName] = []
        for host in tls_hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        extensions.append((x509.SubjectAlternativeName(names), False))
    cert = build_certificate(subject=subject, issuer=ca.subject, public_key=key.public_key(), issuer_key=ca_key,
                             serial=x509.random_serial_number(), not_before=start,
                             not_after=start + dt.timedelta(days=days), extensions=extensions)

    layout.key_path(code).parent.mkdir(exist_ok=True)
    _write_private(layout.key_path(code), key)
    _write_atomic(layout.cert_path(code), _pem(cert))
    _write_atomic(layout.chain_path(code), _pem(cert) + _pem(ca))
    index["certificates"][code] = {
        "name": display,
        "serial": format(cert.serial_number, "x"),
        "fingerprint": certificate_fingerprint(cert),
        "subject": cert.subject.rfc4514_string(),
        "key_type": key_type,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "tls_hostnames": list(tls_hostnames),
        "key": str(layout.key_path(code).relative_to(layout.directory)),
        "cert": str(layout.cert_path(code).relative_to(layout.directory)),
        "revoked_at": None,
    }
    _write_index(layout, index)
    return IssuedCertificate(code=code, key_path=layout.key_path(code), cert_path=layout.cert_path(code),
                             chain_path=layout.chain_path(code), certificate=cert)


def refresh_crl(directory: Path) -> Path:
    """Re-issue the issuing CA's CRL with the same revocations and a new next_update (CRLs go stale)."""
    layout = PkiLayout(Path(directory))
    revoked = layout.index().get("revoked", {})
    pairs = [(int(serial, 16), dt.datetime.fromisoformat(at)) for serial, at in sorted(revoked.items())]
    if layout.has_tls_ca:  # serials are random 159-bit numbers: listing the other CA's is harmless
        _write_crl(layout, load_certificate(layout.tls_ca_cert_path), load_private_key(layout.tls_ca_key_path),
                   pairs, layout.tls_crl_path)
    return _write_crl(layout, layout.ca_cert, load_private_key(layout.ca_key_path), pairs, layout.crl_path)


def revoke_certificate(directory: Path, code: str, *, when: dt.datetime | None = None) -> Path:
    """Revoke `code`'s current certificate and re-issue the issuing CA's CRL; returns the CRL path."""
    layout = PkiLayout(Path(directory))
    index = layout.index()
    entry = index["certificates"].get(code)
    if entry is None:
        raise KeyError(f"no certificate issued for {code!r} in {layout.directory}")
    if entry["revoked_at"] is None:
        entry["revoked_at"] = (when or _now()).isoformat()
    # Revocations survive re-issue: keep a list of every revoked serial, not only current entries.
    revoked = index.setdefault("revoked", {})
    revoked[entry["serial"]] = entry["revoked_at"]
    _write_index(layout, index)
    return refresh_crl(layout.directory)
