"""The hub's signed directory: active subscribers (with their bound certificates) and document kinds.

The hub serves it at `GET /smdo/v1/directory`; an EDMS fetches it to know whom it can address
and whose signature a certificate stands for. The format is `schemas/directory.xsd`; the hub
signs it with an enveloped XMLDSig signature so a copy passed around stays verifiable.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources

from cryptography import x509
from lxml import etree

from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.registry import TEST_COUNTERPART_CODE, RegistrySnapshot
from smdo.xmlparse import parse_xml

FORMAT = "SMDO-DIRECTORY-1"


@lru_cache(maxsize=1)
def directory_schema() -> etree.XMLSchema:
    source = resources.files("schemas").joinpath("directory.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(source, _SAFE_PARSER))


# Our own schema and our own output only; still, never resolve entities or touch the network.
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_directory(snapshot: RegistrySnapshot, signer: object, *, kinds: Mapping[str, str] | None = None,
                    issued: datetime | None = None) -> bytes:
    """The directory of `snapshot`'s active subscribers and the document kinds, signed by `signer`.

    `signer` is a signing.keys.Signer (the hub's). `kinds` defaults to smdo.kinds.document_kinds().
    """
    from signing.xmldsig import sign_enveloped  # smdo -> signing, imported where used

    if kinds is None:
        from smdo.kinds import document_kinds
        kinds = document_kinds()
    root = etree.Element("Directory", format=FORMAT, version=str(snapshot.version),
                         issued=_iso(issued or datetime.now(timezone.utc)))
    subscribers = etree.SubElement(root, "Subscribers")
    for sub in snapshot.active():
        if sub.code == TEST_COUNTERPART_CODE:  # the hub's own stand-in for conformance runs, not an agency
            continue
        entry = etree.SubElement(subscribers, "Subscriber", code=sub.code, name=sub.name, unp=sub.unp)
        for cert in snapshot.certificates(sub.code):
            etree.SubElement(entry, "Certificate", fingerprint=cert.fingerprint, subject=cert.subject,
                             not_after=_iso(cert.not_after))
    kinds_element = etree.SubElement(root, "DocumentKinds")
    for code, name in sorted(kinds.items()):
        etree.SubElement(kinds_element, "Kind", code=code).text = name
    directory_schema().assertValid(root)  # what we publish always matches what we document
    sign_enveloped(root, signer)  # type: ignore[arg-type]  # appends ds:Signature to root
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@dataclass(frozen=True)
class DirectoryEntry:
    code: str
    name: str
    unp: str
    fingerprints: frozenset[str]


@dataclass(frozen=True)
class Directory:
    version: int
    issued: datetime
    subscribers: dict[str, DirectoryEntry]
    kinds: dict[str, str]
    signer: x509.Certificate  # whose signature it carries: the caller checks it is the hub's


def read_directory(data: bytes) -> Directory:
    """Parse, schema-check and verify a directory document (for an EDMS, and for tests).

    Raises PacketRejected with the format's codes: -1 unparsable, 30 not schema-valid,
    -21/-22 bad or missing signature. Trusting the signer is the caller's decision.
    """
    from signing.errors import SignatureError
    from signing.xmldsig import verify_enveloped

    root = parse_xml(data)  # hardened: no DTD, no entities, no network, size and depth limits (-1)
    schema = directory_schema()
    if not schema.validate(root):
        raise PacketRejected([Problem(ErrorCode.INVALID_ELEMENTS, e.message, f"line {e.line}")
                              for e in schema.error_log])  # type: ignore[union-attr]
    try:
        verified = verify_enveloped(root)
    except SignatureError as exc:
        raise PacketRejected([Problem(exc.code, f"directory signature: {exc.message}")]) from None
    subscribers = {
        s.get("code"): DirectoryEntry(s.get("code"), s.get("name"), s.get("unp"),
                                      frozenset(c.get("fingerprint") for c in s.iterfind("Certificate")))
        for s in root.iterfind("Subscribers/Subscriber")
    }
    kinds = {k.get("code"): k.text or "" for k in root.iterfind("DocumentKinds/Kind")}
    issued = datetime.fromisoformat(root.get("issued").replace("Z", "+00:00"))
    return Directory(int(root.get("version")), issued, subscribers, kinds, verified.certificate)
