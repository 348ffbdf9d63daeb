"""The packet check: the stages every packet passes before anyone acts on it.

    bytes -> read_packet (size, hardened parse: -1)
          -> validate_packet (XSD and directory checks: format codes)
          -> verify_packet (XML signature -21/-22, certificate path -23)

Each stage raises PacketRejected with its own codes. The stages work on one parsed tree, so what
the caller acts on afterwards is exactly the tree whose signature was verified.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from signing.errors import SignatureError
from signing.keys import certificate_fingerprint
from signing.trust import TrustStore
from signing.xmldsig import VerifiedSignature, verify_enveloped
from smdo.errors import PacketRejected, Problem
from smdo.packet import PacketHeader, read_header
from smdo.validation import validate
from smdo.xmlparse import Limits, parse_xml

DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class CheckedPacket:
    """A packet that passed every stage, with what routing needs."""

    raw: bytes
    root: etree._Element
    header: PacketHeader
    digest: str
    signer: x509.Certificate
    signer_fingerprint: str


def read_packet(data: bytes, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Stage 1: size limit and hardened parse (code -1)."""
    return parse_xml(data, limits)


def validate_packet(root: etree._Element) -> None:
    """Stage 2: schema and directory checks (format codes 1-35)."""
    problems = validate(root)
    if problems:
        raise PacketRejected(problems)


def verify_packet(
    root: etree._Element, trust: TrustStore, *, at: datetime | None = None
) -> VerifiedSignature:
    """Stage 3: the enveloped signature (-21, -22) and the signer's certificate path (-23)."""
    try:
        # The signer's path is checked before the document digest: an untrusted signer cannot make
        # the hub hash a large packet (belt-hash is slow in pure Python).
        verified = verify_enveloped(root, trust=trust, at=at)
    except SignatureError as exc:
        raise PacketRejected([Problem(exc.code, exc.message, "/Envelop/Signature")]) from exc
    return verified


def check_packet(
    data: bytes,
    trust: TrustStore,
    *,
    at: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> CheckedPacket:
    """All stages in order; raises PacketRejected at the first stage that fails."""
    root = read_packet(data, limits)
    validate_packet(root)
    verified = verify_packet(root, trust, at=at)
    return CheckedPacket(
        raw=data,
        root=root,
        header=read_header(root),
        digest=hashlib.sha256(data).hexdigest(),
        signer=verified.certificate,
        signer_fingerprint=certificate_fingerprint(verified.certificate),
    )
