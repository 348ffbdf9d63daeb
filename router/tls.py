"""TLS for the hub: the server side (optionally asking for client certificates) and the client
side used to push to EDMS endpoints, both trusting the configured CA certificates."""
from __future__ import annotations

import ssl
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from signing.keys import load_certificates, ssl_key_password

from router.config import HubConfig


def _ca_pem(trust: Path) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in load_certificates(trust))


def load_tls_credentials(ctx: ssl.SSLContext, config: HubConfig) -> None:
    """The hub's TLS key and certificate (--tls-key/--tls-cert, else the signing --key/--cert)."""
    try:
        ctx.load_cert_chain(str(config.tls_cert_path), str(config.tls_key_path), password=ssl_key_password)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot use {config.tls_key_path} for TLS (OpenSSL: {exc.reason or exc}); OpenSSL takes "
                         "RSA or EC keys only: with a bign signing key give --tls-key/--tls-cert") from None


def server_context(config: HubConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    load_tls_credentials(ctx, config)
    if config.client_auth != "none" and config.trust is not None:
        ctx.load_verify_locations(cadata=_ca_pem(config.trust))
        ctx.verify_mode = ssl.CERT_REQUIRED if config.client_auth == "required" else ssl.CERT_OPTIONAL
    return ctx


def client_context(config: HubConfig) -> ssl.SSLContext:
    """Trusts EDMS servers whose certificates chain to our CA; presents the hub's certificate."""
    ctx = ssl.create_default_context(cadata=_ca_pem(config.trust)) if config.trust else ssl.create_default_context()
    if config.tls_cert_path is not None and config.tls_key_path is not None:
        load_tls_credentials(ctx, config)
    return ctx
