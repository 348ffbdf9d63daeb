"""The packet check: the stages every packet passes before anyone acts on it.

    bytes -> read_packet (size, hardened parse: -1)
          -> validate_packet (XSD and directory checks: format codes)
          -> verify_packet (XML signature -21/-22, certificate path -23)

Each stage raises PacketRejected with its own codes. The stages work on one parsed tree, so what
the caller acts on afterwards is exactly the tree whose signature was verified.

The classic profile (the real clients': envelope unsigned, sender known by its channel) replaces
verify_packet with `verify_files`: every file's detached CMS signature, on the national chain.
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from signing.cms import verify_detached_hash
from signing.errors import SignatureError
from signing.keys import certificate_fingerprint
from signing.trust import TrustStore
from signing.xmldsig import VerifiedSignature, verify_enveloped
from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.inline_files import Reduced, file_content, inline_content
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


def read_reduced(reduced: Reduced, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Stage 1 for a body whose large inline files were set aside (smdo/inline_files.py): the parse
    sees the reduced bytes (with the body's line numbers); sizes are the whole body's. The caller asks
    `inline_files.confirm` whether every run set aside was an element's content."""
    return parse_xml(reduced.xml, limits, size=reduced.size)


def validate_packet(root: etree._Element) -> None:
    """Stage 2: schema and directory checks (format codes 1-35)."""
    problems = validate(root)
    if problems:
        raise PacketRejected(problems)


def verify_packet(
    root: etree._Element, trust: TrustStore, *, at: datetime | None = None, reduced: Reduced | None = None
) -> VerifiedSignature:
    """Stage 3: the enveloped signature (-21, -22) and the signer's certificate path (-23). With
    `reduced`, the texts set aside are hashed from the body in their placeholders' places."""
    try:
        # The signer's path is checked before the document digest: an untrusted signer cannot make
        # the hub hash a large packet (belt-hash is slow in pure Python).
        verified = verify_enveloped(root, trust=trust, at=at,
                                    texts=reduced.canonical_texts() if reduced is not None else None)
    except SignatureError as exc:
        raise PacketRejected([Problem(exc.code, exc.message, "/Envelop/Signature")]) from exc
    return verified


# A file's content: inline base64, or a part carried beside the envelope (an e-mail attachment).
Parts = Mapping[str, bytes]


def verify_files(root: etree._Element, trust: TrustStore, parts: Parts | None = None, *,
                 at: datetime | None = None, reduced: Reduced | None = None) -> list[x509.Certificate]:
    """Stage 3 of the classic profile: each file of a validated packet has at least one detached CMS
    signature (-22), each matches the file (-21) and chains to the trust anchors (-23). A file given
    by Data@referenceid must be among `parts` (-21: a referenced file is missing); a file set aside
    in `reduced` is hashed from the body in chunks. Returns the signers."""
    parts = parts or {}
    signers: list[x509.Certificate] = []
    for index, transfer in enumerate(root.iterfind("Body//DocTransfer"), 1):
        where = f"/Envelop/Body//DocTransfer[{index}]"
        name = transfer.get("name", "")
        data_element = transfer.find("Data")
        reference = data_element.get("referenceid") if data_element is not None else None
        if reference is not None:
            if reference not in parts:
                raise PacketRejected([Problem(ErrorCode.SIGNATURE_INVALID, f"file {name!r}: the referenced part "
                                              f"{reference!r} is missing", where + "/Data/@referenceid")])
            content = file_content(parts[reference])
        else:
            content = inline_content(data_element, reduced)
        signatures = transfer.findall("Signature")
        if not signatures:
            raise PacketRejected([Problem(ErrorCode.SIGNATURE_MISSING, f"file {name!r} carries no signature",
                                          where + "/Signature")])
        for signature in signatures:
            try:
                der = base64.b64decode("".join("".join(signature.itertext()).split()))
                signers.append(verify_detached_hash(content, der, trust, at=at))
            except SignatureError as exc:
                raise PacketRejected([Problem(exc.code, f"file {name!r}: {exc.message}", where + "/Signature")]) \
                    from exc
            except ValueError as exc:  # not base64 after all, or not CMS
                raise PacketRejected([Problem(ErrorCode.SIGNATURE_INVALID, f"file {name!r}: signature unreadable "
                                              f"({exc})", where + "/Signature")]) from exc
    return signers


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
