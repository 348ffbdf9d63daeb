"""Loading keys and certificates, and the `Signer` that holds them.

Parsing a PEM RSA key costs ~40 ms, so keys are parsed once per file version and the
parsed key object is what signing code holds on to. Keys are of any kind a suite in
`signing.algorithms` registers (RSA, EC, bign); all are PKCS#8 "PRIVATE KEY" PEM files.
"""
from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signing import algorithms
from signing.bign import BignPrivateKey

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, BignPrivateKey]

_key_cache: dict[tuple[str, int], PrivateKey] = {}
_key_cache_lock = threading.Lock()


# Encrypted private keys: the passphrase comes from a file or the environment, never from argv
# (visible to every user in `ps`). `smdo --key-password-file FILE` sets the first.
KEY_PASSWORD_FILE_ENV = "SMDO_KEY_PASSWORD_FILE"
KEY_PASSWORD_ENV = "SMDO_KEY_PASSWORD"


def key_password() -> bytes | None:
    """The configured passphrase for encrypted private keys, or None."""
    file = os.environ.get(KEY_PASSWORD_FILE_ENV)
    if file:
        return Path(file).read_bytes().rstrip(b"\r\n")
    value = os.environ.get(KEY_PASSWORD_ENV)
    return value.encode() if value else None


def ssl_key_password() -> bytes:
    """For ssl.SSLContext.load_cert_chain(password=...): called only when the key is encrypted."""
    password = key_password()
    if password is None:
        raise ValueError(f"the TLS private key is encrypted: give --key-password-file FILE (or set {KEY_PASSWORD_ENV})")
    return password


def _parse_private_key(data: bytes, path: str | Path, password: bytes | None) -> PrivateKey:
    """TypeError when the key is encrypted and no password is given (cryptography's convention)."""
    try:
        if b"-----BEGIN PRIVATE KEY-----" in data:
            return algorithms.load_private_key_der(pem_decode(data, path), password)
        if b"-----BEGIN" in data:  # traditional or encrypted PEM: RSA/EC only, cryptography reads those
            key = serialization.load_pem_private_key(data, password=password)
            algorithms.key_kind(key)
            return key
        return algorithms.load_private_key_der(data, password)
    except algorithms.UnsupportedKey as exc:
        raise algorithms.UnsupportedKey(f"{path}: {exc}") from None


def load_private_key(path: str | Path, password: bytes | None = None) -> PrivateKey:
    """Parse a PEM (or DER) private key once per (path, mtime); later calls return the same object."""
    resolved = Path(path).resolve()
    cache_key = (str(resolved), resolved.stat().st_mtime_ns)
    with _key_cache_lock:
        cached = _key_cache.get(cache_key)
    if cached is not None:
        return cached
    data = resolved.read_bytes()
    try:
        key = _parse_private_key(data, path, None)
    except TypeError:  # encrypted: needs the passphrase
        password = password if password is not None else key_password()
        if password is None:
            raise ValueError(f"{path} is an encrypted private key: put its passphrase in a file and give "
                             f"--key-password-file FILE (or set {KEY_PASSWORD_ENV})") from None
        try:
            key = _parse_private_key(data, path, password)
        except algorithms.UnsupportedKey:
            raise
        except ValueError:
            raise ValueError(f"{path}: wrong passphrase for this encrypted private key (from "
                             f"--key-password-file, {KEY_PASSWORD_FILE_ENV} or {KEY_PASSWORD_ENV})") from None
    with _key_cache_lock:
        _key_cache[cache_key] = key
    return key


def pem_encode(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def pem_decode(pem: bytes, source: object = "PEM") -> bytes:
    """The DER inside the first PEM block (an encrypted-key PEM keeps its headers: refused later)."""
    text = pem.decode("ascii", "replace")
    start = text.find("-----BEGIN")
    body_start = text.find("\n", start)
    end = text.find("-----END", body_start)
    if start < 0 or body_start < 0 or end < 0:
        raise ValueError(f"{source}: not a PEM block")
    body = [line for line in text[body_start:end].splitlines() if line.strip() and ":" not in line]
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise ValueError(f"{source}: the PEM block is not valid base64") from None


def _parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    if b"-----BEGIN" in data:
        certs = x509.load_pem_x509_certificates(data)
    else:
        certs = [x509.load_der_x509_certificate(data)]
    if not certs:
        raise ValueError(f"{source}: no certificate found")
    return certs


def load_certificate(path: str | Path) -> x509.Certificate:
    """The first certificate of a PEM or DER file."""
    return _parse_certificates(Path(path).read_bytes(), str(path))[0]


def load_certificates(path_or_dir: str | Path) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or of every *.pem / *.crt / *.cer file in a directory."""
    path = Path(path_or_dir)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".pem", ".crt", ".cer") and p.is_file())
        certs: list[x509.Certificate] = []
        for file in files:
            certs.extend(_parse_certificates(file.read_bytes(), str(file)))
        return certs
    return _parse_certificates(path.read_bytes(), str(path))


_fingerprints: dict[int, tuple[x509.Certificate, str]] = {}


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex: how the registry binds certificates.

    Cached by object identity (the entry holds the certificate, so the id cannot be reused):
    the hot path asks for the same parsed signer certificates again and again.
    """
    entry = _fingerprints.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    if len(_fingerprints) >= 4096:
        _fingerprints.clear()
    _fingerprints[id(cert)] = (cert, fingerprint)
    return fingerprint


def subject_text(cert: x509.Certificate) -> str:
    """The subject in RFC 4514 form, for messages."""
    return cert.subject.rfc4514_string()


@dataclass(frozen=True)
class Signer:
    """A private key with its certificate (and optionally the chain up to, not including, the anchor)."""

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_files(cls, key_path: str | Path, cert_path: str | Path) -> "Signer":
        """Key from `key_path`; the first certificate of `cert_path` is the signer's, the rest its chain."""
        certs = load_certificates(cert_path)
        key = load_private_key(key_path)
        if not algorithms.same_public_key(key.public_key(), algorithms.certificate_public_key(certs[0])):
            raise ValueError(f"{key_path} is not the private key of the certificate in {cert_path}")
        return cls(key=key, certificate=certs[0], chain=tuple(certs[1:]))
