"""Enveloped XMLDSig under the hub's strict profile, on lxml C14N + the algorithms of `signing.algorithms`.

The profile (anything else is InvalidSignature, -21; that is the signature-wrapping defence):
- exactly one ds:Signature in the whole document, and it is the root's last child;
- SignedInfo: CanonicalizationMethod, SignatureMethod, exactly one Reference with URI=""
  (the whole document); transforms exactly enveloped-signature then one C14N;
- C14N: exclusive or inclusive 1.0, with or without comments;
- SignatureMethod: RSA-SHA256/384/512, ECDSA-SHA256 (P-256, value is raw r||s) or bign-with-hbelt
  (bign-curve256v1, value is S0||S1); DigestMethod: SHA-256/384/512 or belt-hash; SHA-1 and MD5
  are refused by name. The URIs and their implementations come from `signing.algorithms`;
  bign is written as urn:oid:1.2.112.0.2.0.34.101.45.12 / urn:oid:1.2.112.0.2.0.34.101.31.81
  and the xmldsig11# and xmldsig-more# forms public code uses are accepted too;
- no ds:Object; KeyInfo/X509Data/X509Certificate carries the signer's certificate (the first one).

This is the hub's hot path, so it is written directly instead of going through signxml (~4x
slower); signxml and libxmlsec1 check it for interoperability in the tests.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from signing import algorithms
from signing.errors import InvalidSignature, MissingSignature
from signing.keys import Signer
from signing.suite import DigestAlgorithm, SignatureAlgorithm
from signing.trust import TrustStore

DS = "http://www.w3.org/2000/09/xmldsig#"
EC_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"
SIGNATURE_TAG = f"{{{DS}}}Signature"
ENVELOPED = f"{DS}enveloped-signature"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
INCL_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
# URI -> (short name, exclusive, with_comments)
C14N_METHODS: dict[str, tuple[str, bool, bool]] = {
    EXC_C14N: ("exc-c14n", True, False),
    EXC_C14N + "WithComments": ("exc-c14n#WithComments", True, True),
    INCL_C14N: ("c14n", False, False),
    INCL_C14N + "#WithComments": ("c14n#WithComments", False, True),
}
C14N_BY_NAME = {"exc": EXC_C14N, "inclusive": INCL_C14N}

# URI -> digest name, and name -> the URI the hub writes (from the registry's suites)
DIGEST_METHODS: dict[str, str] = {uri: d.name for uri, d in algorithms.DIGESTS_BY_URI.items()}
DIGEST_URIS: dict[str, str] = {d.name: d.xml_uris[0] for d in algorithms.DIGESTS.values() if d.xml_uris}
SIGNATURE_URIS: dict[str, str] = {a.name: a.xml_uris[0] for a in algorithms.SIGNATURES.values() if a.xml_uris}
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"

# Refused by name so the message says why (SHA-1 and MD5 are broken for signatures).
WEAK_ALGORITHMS: dict[str, str] = {
    f"{DS}sha1": "SHA-1",
    f"{DS}rsa-sha1": "RSA-SHA1 (SHA-1)",
    f"{DS}dsa-sha1": "DSA-SHA1 (SHA-1)",
    f"{DS}hmac-sha1": "HMAC-SHA1 (SHA-1)",
    _MORE + "ecdsa-sha1": "ECDSA-SHA1 (SHA-1)",
    _MORE + "md5": "MD5",
    _MORE + "rsa-md5": "RSA-MD5 (MD5)",
    _MORE + "hmac-md5": "HMAC-MD5 (MD5)",
}



#: Texts kept out of a tree: placeholder -> its canonical characters, in chunks.
Texts = Mapping[str, Callable[[], Iterable[bytes]]]


@dataclass(frozen=True)
class VerifiedSignature:
    """What a valid signature proved: who signed (not yet whether they are trusted) and how."""

    certificate: x509.Certificate
    signature_method: str  # "rsa-sha256", "rsa-sha384", "rsa-sha512", "ecdsa-sha256", "bign-with-hbelt"
    digest_method: str  # "sha256", "sha384", "sha512", "belt-hash"
    c14n_method: str  # "exc-c14n", "c14n", with "#WithComments" when so


# ---------------------------------------------------------------- canonicalization


def _c14n(node: etree._Element, exclusive: bool, with_comments: bool,
          prefixes: tuple[str, ...] = ()) -> bytes:
    # The document root canonicalizes as the whole document (URI="" includes top-level PIs);
    # any other element as its subtree, with the namespaces in scope (lxml copies them in).
    if node.getparent() is None:
        return etree.tostring(node.getroottree(), method="c14n", exclusive=exclusive,
                              with_comments=with_comments, inclusive_ns_prefixes=list(prefixes) or None)
    inherited = {} if exclusive else _inherited_xml_attributes(node)
    if not inherited:
        return etree.tostring(node, method="c14n", exclusive=exclusive, with_comments=with_comments,
                              inclusive_ns_prefixes=list(prefixes) or None)
    # Inclusive C14N of a subtree renders the xml:lang/xml:space/xml:base it inherits on its apex
    # (C14N 1.0, section 2.4); lxml does not, so lend them to the element for the duration.
    for name, value in inherited.items():
        node.set(name, value)
    try:
        return etree.tostring(node, method="c14n", exclusive=False, with_comments=with_comments)
    finally:
        for name in inherited:
            del node.attrib[name]


XML_NS = "{http://www.w3.org/XML/1998/namespace}"


def _inherited_xml_attributes(node: etree._Element) -> dict[str, str]:
    inherited: dict[str, str] = {}
    for ancestor in node.iterancestors():
        for name, value in ancestor.attrib.items():
            if name.startswith(XML_NS) and name not in inherited and name not in node.attrib:
                inherited[name] = value
    return inherited


def _document_c14n_without(root: etree._Element, signature: etree._Element, exclusive: bool,
                           prefixes: tuple[str, ...]) -> bytes:
    """c14n(document minus the signature element), on this very tree: detach, canonicalize, reattach.

    The signature's tail text is document content (it is not inside the signature), so it stays.
    URI="" selects the document without comments, whatever the C14N variant says.
    """
    parent = signature.getparent()
    previous = signature.getprevious()
    tail = signature.tail
    parent.remove(signature)  # lxml moves the tail with the element: put it back for the c14n
    if tail:
        if previous is not None:
            old_tail = previous.tail
            previous.tail = (old_tail or "") + tail
        else:
            old_text = parent.text
            parent.text = (old_text or "") + tail
    try:
        return _c14n(root, exclusive, False, prefixes)
    finally:
        if tail:
            if previous is not None:
                previous.tail = old_tail
            else:
                parent.text = old_text
        parent.append(signature)
        signature.tail = tail


# ---------------------------------------------------------------- parsing the Signature element


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else str(element.tag)


def _ds_children(element: etree._Element, where: str) -> list[etree._Element]:
    """The element children of a signature element; anything but ds elements and whitespace is refused."""
    if element.text and element.text.strip():
        raise InvalidSignature(f"{where} must not contain text")
    children = []
    for child in element:
        if not isinstance(child.tag, str):
            raise InvalidSignature(f"{where} must not contain comments or processing instructions")
        if child.tail and child.tail.strip():
            raise InvalidSignature(f"{where} must not contain text")
        children.append(child)
    return children


def _expect(children: list[etree._Element], names: list[str], where: str, optional: tuple[str, ...] = ()
            ) -> dict[str, etree._Element]:
    """Children must be exactly `names` in order (those in `optional` may be absent)."""
    found: dict[str, etree._Element] = {}
    position = 0
    for name in names:
        child = children[position] if position < len(children) else None
        if child is not None and child.tag == f"{{{DS}}}{name}":
            found[name] = child
            position += 1
        elif name not in optional:
            got = f"<{_qualified(child)}>" if child is not None else "nothing"
            raise InvalidSignature(f"{where} must contain ds:{name} here, found {got}")
    if position < len(children):
        extra = children[position]
        if extra.tag == f"{{{DS}}}Object":
            raise InvalidSignature("ds:Object is not allowed: the hub's profile signs only the whole document")
        if extra.tag == f"{{{DS}}}Reference":
            raise InvalidSignature("SignedInfo has more than one ds:Reference; exactly one (URI=\"\") is allowed")
        raise InvalidSignature(f"{where} contains unexpected <{_qualified(extra)}>")
    return found


def _qualified(element: etree._Element | None) -> str:
    if element is None or not isinstance(element.tag, str):
        return "?"
    qname = etree.QName(element)
    return f"ds:{qname.localname}" if qname.namespace == DS else (
        f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname)


def _algorithm(element: etree._Element, where: str) -> str:
    uri = element.get("Algorithm")
    if not uri:
        raise InvalidSignature(f"{where} has no Algorithm attribute")
    weak = WEAK_ALGORITHMS.get(uri)
    if weak:
        raise InvalidSignature(f"{where} uses {weak}, which is not accepted ({uri})")
    return uri


def _c14n_method(element: etree._Element, where: str) -> tuple[str, bool, bool, tuple[str, ...]]:
    uri = _algorithm(element, where)
    if uri not in C14N_METHODS:
        raise InvalidSignature(f"{where} {uri} is not allowed: use exclusive or inclusive C14N 1.0")
    name, exclusive, comments = C14N_METHODS[uri]
    prefixes: tuple[str, ...] = ()
    for child in _ds_children(element, where):
        if exclusive and child.tag == f"{{{EC_NS}}}InclusiveNamespaces" and not prefixes:
            tokens = tuple((child.get("PrefixList") or "").split())
            if "#default" in tokens:
                raise InvalidSignature(f"{where}: InclusiveNamespaces '#default' is not supported")
            prefixes = tokens
        else:
            raise InvalidSignature(f"{where} contains unexpected <{_qualified(child)}>")
    return name, exclusive, comments, prefixes


def _base64(element: etree._Element, what: str) -> bytes:
    if len(element):
        raise InvalidSignature(f"{what} must contain only base64 text")
    text = "".join((element.text or "").split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature(f"{what} is not valid base64") from None


@lru_cache(maxsize=1024)
def _certificate(text: str) -> tuple[x509.Certificate, object]:
    # The same few signer certificates arrive again and again: decode and parse each once,
    # keyed by the base64 text itself. Returning the same object also lets fingerprints be cached.
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
        public_key = algorithms.certificate_public_key(cert)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature(f"X509Certificate is not a valid base64 DER certificate: {exc}") from None
    return cert, public_key


def forget_parsed_certificates() -> None:
    """Drop the parsed signer certificates (benchmarks measuring a cold start use this)."""
    _certificate.cache_clear()


def _signer_certificate(key_info: etree._Element) -> tuple[x509.Certificate, object]:
    x509_data = [c for c in _ds_children(key_info, "KeyInfo") if c.tag == f"{{{DS}}}X509Data"]
    if len(x509_data) != 1:
        raise InvalidSignature("KeyInfo must contain exactly one ds:X509Data with the signer's certificate")
    certificates = [c for c in _ds_children(x509_data[0], "X509Data") if c.tag == f"{{{DS}}}X509Certificate"]
    if not certificates:
        raise InvalidSignature("X509Data carries no ds:X509Certificate")
    if len(certificates[0]):
        raise InvalidSignature("X509Certificate must contain only base64 text")
    return _certificate(certificates[0].text or "")


# ---------------------------------------------------------------- verify


def find_signature(root: etree._Element) -> etree._Element:
    """The one ds:Signature, checked to be the root's last child; raises Missing/InvalidSignature."""
    signatures = list(root.iter(SIGNATURE_TAG))
    if not signatures:
        raise MissingSignature("the document carries no ds:Signature")
    if len(signatures) > 1:
        raise InvalidSignature(f"the document carries {len(signatures)} ds:Signature elements; exactly one is allowed")
    signature = signatures[0]
    if signature.getparent() is not root:
        where = root.getroottree().getpath(signature.getparent())
        raise InvalidSignature(f"ds:Signature must be a child of the root element, found inside {where}")
    following = signature.getnext()
    if following is not None:
        raise InvalidSignature(f"ds:Signature must be the root's last child; <{_qualified(following)}> follows it")
    return signature


def verify_enveloped(root: etree._Element, *, trust: TrustStore | None = None,
                     at: dt.datetime | None = None, texts: Texts | None = None) -> VerifiedSignature:
    """Check the enveloped signature of `root` under the hub's profile.

    Proves the document is unchanged since it was signed with the key of the embedded certificate.
    Whether that certificate is trusted is `TrustStore.validate`'s job; given `trust`, it is asked
    (as of `at`) right after the SignatureValue checks and before the document digest, so a signer
    outside the trust store cannot make the caller hash a large document (belt-hash, in pure
    Python, costs ~1.3 us per byte).

    `texts`: element texts kept out of the tree, each standing there as a placeholder; the document
    digest hashes each one's canonical characters in its placeholder's place (`_digest`).
    """
    signature = find_signature(root)
    parts = _expect(_ds_children(signature, "Signature"), ["SignedInfo", "SignatureValue", "KeyInfo"],
                    "Signature")
    signed_info = parts["SignedInfo"]
    info = _expect(_ds_children(signed_info, "SignedInfo"),
                   ["CanonicalizationMethod", "SignatureMethod", "Reference"], "SignedInfo")

    si_name, si_exclusive, si_comments, si_prefixes = _c14n_method(
        info["CanonicalizationMethod"], "CanonicalizationMethod")
    method_uri = _algorithm(info["SignatureMethod"], "SignatureMethod")
    method = algorithms.SIGNATURES_BY_URI.get(method_uri)
    if method is None:
        raise InvalidSignature(f"SignatureMethod {method_uri} is not allowed: use RSA-SHA256/384/512, "
                               "ECDSA-SHA256 or bign-with-hbelt")
    if len(info["SignatureMethod"]):
        raise InvalidSignature("SignatureMethod must be empty")

    reference = info["Reference"]
    uri = reference.get("URI")
    if uri is None:
        raise InvalidSignature("Reference has no URI; the hub's profile signs the whole document (URI=\"\")")
    if uri != "":
        raise InvalidSignature(
            f"Reference URI={uri!r} points at a part of the document; the hub's profile signs the whole "
            "document (URI=\"\")")
    ref = _expect(_ds_children(reference, "Reference"), ["Transforms", "DigestMethod", "DigestValue"], "Reference")
    transforms = _ds_children(ref["Transforms"], "Transforms")
    if len(transforms) != 2 or any(t.tag != f"{{{DS}}}Transform" for t in transforms):
        got = ", ".join(t.get("Algorithm") or _qualified(t) for t in transforms) or "none"
        raise InvalidSignature(
            f"Transforms must be exactly enveloped-signature then one C14N; found {len(transforms)}: {got}")
    first = _algorithm(transforms[0], "Transform")
    if first != ENVELOPED or len(transforms[0]):
        raise InvalidSignature(f"the first Transform must be enveloped-signature, found {first}")
    _, ref_exclusive, _, ref_prefixes = _c14n_method(transforms[1], "the second Transform")

    digest_uri = _algorithm(ref["DigestMethod"], "DigestMethod")
    digest_algorithm = algorithms.DIGESTS_BY_URI.get(digest_uri)
    if digest_algorithm is None:
        raise InvalidSignature(f"DigestMethod {digest_uri} is not allowed: use SHA-256, SHA-384, SHA-512 or belt-hash")
    expected_digest = _base64(ref["DigestValue"], "DigestValue")
    signature_value = _base64(parts["SignatureValue"], "SignatureValue")
    certificate, public_key = _signer_certificate(parts["KeyInfo"])

    # SignatureValue over c14n(SignedInfo), in place so the namespaces in scope are the real ones.
    signed_bytes = _c14n(signed_info, si_exclusive, si_comments, si_prefixes)
    _check_signature_value(public_key, method, signature_value, signed_bytes, certificate)
    if trust is not None:
        trust.validate(certificate, at=at)

    # Digest over c14n(document minus the signature), on this same tree: what was verified is what we act on.
    document = _document_c14n_without(root, signature, ref_exclusive, ref_prefixes)
    if not hmac.compare_digest(_digest(document, digest_algorithm, texts or {}), expected_digest):
        raise InvalidSignature("the document's digest does not match DigestValue: it was changed after signing")
    return VerifiedSignature(certificate=certificate, signature_method=method.name,
                             digest_method=digest_algorithm.name, c14n_method=si_name)


def _digest(document: bytes, algorithm: DigestAlgorithm, texts: Texts) -> bytes:
    """The digest of the canonical document, each placeholder replaced by its text's chunks."""
    if not texts:
        return algorithm.hash(document)
    hasher = algorithm.new()
    position = 0
    seen: set[bytes] = set()
    view = memoryview(document)
    for match in re.finditer(b"|".join(re.escape(p.encode("ascii")) for p in texts), document):
        if match.group() in seen:  # a placeholder is random: twice means it was not ours to place
            raise InvalidSignature("the document repeats a text the hub set aside")
        seen.add(match.group())
        hasher.update(view[position:match.start()])
        for chunk in texts[match.group().decode("ascii")]():
            hasher.update(chunk)
        position = match.end()
    hasher.update(view[position:])
    return hasher.digest()


_KEY_NAMES = {"rsa": "an RSA key", "ec": "a P-256 key", "bign": "a bign key"}


def _check_signature_value(public_key: object, method: SignatureAlgorithm, value: bytes, data: bytes,
                           certificate: x509.Certificate) -> None:
    try:
        kind = algorithms.key_kind(public_key)
    except algorithms.UnsupportedKey:
        kind = None
    needs = _KEY_NAMES.get(method.key_kind, f"a {method.key_kind} key")
    if kind is None or kind.name != method.key_kind:
        raise InvalidSignature(
            f"SignatureMethod {method.name} needs {needs}; the certificate of {_subject(certificate)} has none")
    problem = kind.check_public(public_key)
    if problem:
        raise InvalidSignature(f"{problem} (certificate of {_subject(certificate)})")
    try:
        native = method.from_xml(value)
    except ValueError as exc:
        raise InvalidSignature(str(exc)) from None
    if not method.verify(public_key, native, data):
        raise InvalidSignature(f"SignatureValue does not verify with the key of {_subject(certificate)}")


def _subject(certificate: x509.Certificate) -> str:
    # Only for messages: formatting a subject costs ~15 us, more than a hash of the packet.
    return certificate.subject.rfc4514_string()


# ---------------------------------------------------------------- sign


def _sub(parent: etree._Element, name: str, **attrib: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{DS}}}{name}", attrib)


def sign_enveloped(root: etree._Element, signer: Signer, *, c14n: str = "exc",
                   digest: str | None = None) -> etree._Element:
    """Append an enveloped ds:Signature over the whole document as `root`'s last child; returns it.

    c14n: "exc" (default) or "inclusive"; digest: "sha256", "sha384", "sha512" or "belt-hash"
    (default: the key's own, sha256 for RSA/EC, belt-hash for bign). RSA keys sign with RSA-SHA
    matching the digest; P-256 keys with ECDSA-SHA256; bign keys with bign-with-hbelt.
    """
    if c14n not in C14N_BY_NAME:
        raise ValueError(f"c14n must be one of {sorted(C14N_BY_NAME)}, not {c14n!r}")
    if digest is not None and digest not in DIGEST_URIS:
        raise ValueError(f"digest must be one of {sorted(DIGEST_URIS)}, not {digest!r}")
    if next(root.iter(SIGNATURE_TAG), None) is not None:
        raise ValueError("the document already carries a ds:Signature")
    key = signer.key
    kind = algorithms.key_kind(key)
    if kind.name == "ec":
        if kind.check_public(key.public_key()):
            raise ValueError("signing keys must be RSA, EC P-256 or bign")  # the profile's one ECDSA method hashes with SHA-256, whatever the document digest
        method = algorithms.SIGNATURES["ecdsa-sha256"]
    else:
        method = algorithms.signature_for(key, digest)
    digest_algorithm = algorithms.DIGESTS[digest or method.digest]
    c14n_uri = C14N_BY_NAME[c14n]
    exclusive = c14n == "exc"

    document_digest = digest_algorithm.hash(_c14n(root, exclusive, False))

    signature = etree.SubElement(root, SIGNATURE_TAG, nsmap={"ds": DS})
    signed_info = _sub(signature, "SignedInfo")
    _sub(signed_info, "CanonicalizationMethod", Algorithm=c14n_uri)
    _sub(signed_info, "SignatureMethod", Algorithm=method.xml_uris[0])
    reference = _sub(signed_info, "Reference", URI="")
    transforms = _sub(reference, "Transforms")
    _sub(transforms, "Transform", Algorithm=ENVELOPED)
    _sub(transforms, "Transform", Algorithm=c14n_uri)
    _sub(reference, "DigestMethod", Algorithm=digest_algorithm.xml_uris[0])
    _sub(reference, "DigestValue").text = base64.b64encode(document_digest).decode()
    signature_value = _sub(signature, "SignatureValue")
    x509_data = _sub(_sub(signature, "KeyInfo"), "X509Data")
    for cert in (signer.certificate, *signer.chain):
        _sub(x509_data, "X509Certificate").text = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()

    data = _c14n(signed_info, exclusive, False)
    value = method.to_xml(method.sign(key, data))
    signature_value.text = base64.b64encode(value).decode()
    return signature
