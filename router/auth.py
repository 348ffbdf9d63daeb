"""Who is calling. Every endpoint names who may call it and asks this module who did.

A caller is identified by the TLS client certificate of its connection (mTLS):
- an **operator**: the certificate's SHA-256 fingerprint is one of the hub's configured operator
  certificates (`--operator-cert`, repeatable; `operator_certs` in the config file);
- a **subscriber**: the certificate is bound to a subscriber in the registry;
- **anonymous**: no client certificate (plain HTTP has none, so over --http nobody is an operator);
- **unknown**: a certificate that is neither.

`require_operator` and `require_subscriber` answer 401 to anonymous callers and 403 to the wrong ones,
with a one-line reason; handlers call them first thing.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from signing.keys import certificate_fingerprint, load_certificates

if TYPE_CHECKING:
    from smdo.registry import Subscriber

    from router.hub import Hub

Role = Literal["operator", "subscriber", "anonymous", "unknown"]


@dataclass(frozen=True)
class Caller:
    role: Role
    name: str = ""  # the operator's name (certificate CN) or the subscriber's code
    fingerprint: str = ""  # SHA-256 of the client certificate's DER, lowercase hex

    def __str__(self) -> str:
        return f"{self.role} {self.name}".strip()


def load_operators(paths: Iterable[Path]) -> dict[str, str]:
    """{fingerprint: name} of the operator certificates in these PEM files (a file may hold several)."""
    operators: dict[str, str] = {}
    for path in paths:
        for cert in load_certificates(path):
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            operators[certificate_fingerprint(cert)] = str(names[0].value) if names else path.stem
    return operators


def peer_certificate(request: web.Request) -> bytes | None:
    """The DER of this connection's TLS client certificate, or None (no TLS, or none presented)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True) or None


def identify(request: web.Request, hub: Hub) -> Caller:
    der = peer_certificate(request)
    if der is None:
        return Caller("anonymous")
    fingerprint = hashlib.sha256(der).hexdigest()
    if fingerprint in hub.operators:
        return Caller("operator", hub.operators[fingerprint], fingerprint)
    subscriber = hub.registry.by_fingerprint(fingerprint)
    if subscriber is not None:
        return Caller("subscriber", subscriber.code, fingerprint)
    return Caller("unknown", "", fingerprint)


def require_operator(request: web.Request, hub: Hub) -> Caller:
    caller = identify(request, hub)
    if caller.role == "anonymous":
        raise web.HTTPUnauthorized(text="operators only: present an operator's TLS client certificate\n")
    if caller.role != "operator":
        raise web.HTTPForbidden(text="operators only: this client certificate is not an operator's\n")
    return caller


def require_subscriber(request: web.Request, hub: Hub) -> Subscriber:
    """The subscriber bound to this connection's client certificate, checked against the CRLs too
    (TLS checked the chain, not revocation), or 401/403."""
    from signing.errors import SignatureError

    der = peer_certificate(request)
    if der is None:
        raise web.HTTPUnauthorized(text="this endpoint needs a TLS client certificate bound to a subscriber\n")
    subscriber = hub.registry.by_fingerprint(hashlib.sha256(der).hexdigest())
    if subscriber is None:
        raise web.HTTPForbidden(text="this client certificate is not bound to any subscriber\n")
    try:
        hub.trust.validate(x509.load_der_x509_certificate(der))
    except SignatureError as exc:
        raise web.HTTPForbidden(text=f"client certificate not trusted: {exc.message}\n") from exc
    return subscriber


def require_exchanging_subscriber(request: web.Request, hub: Hub) -> Subscriber:
    """`require_subscriber`, and its status lets it exchange packets (active, or under test):
    a suspended or revoked subscriber gets 403 naming its status."""
    from smdo.registry import UNDER_TEST, SubscriberStatus

    subscriber = require_subscriber(request, hub)
    if subscriber.status is not SubscriberStatus.ACTIVE and subscriber.status not in UNDER_TEST:
        raise web.HTTPForbidden(text=f"subscriber {subscriber.code} is {subscriber.status.value}, not active: "
                                     "access is blocked\n")
    return subscriber
