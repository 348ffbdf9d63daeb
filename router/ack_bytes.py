"""The hub's signed acks as bytes templates: the two a delivered packet costs (100 and 101) without
building, canonicalising or serialising a tree each time.

One template per ack shape is made once from the real thing: the shape's tree (router.acks'
AckTemplates) with placeholder values is signed by `signing.xmldsig.sign_enveloped`, and three texts
are kept with the placeholders marked: the document's C14N (what DigestValue is over), SignedInfo's
C14N (what SignatureValue is over) and the signed document's serialisation. Each ack then fills in
its values, hashes the first text, signs the second and fills in the third: the same bytes
`sign_enveloped` + `etree.tostring` would give (only the signature value differs, as ECDSA's does
from one signing to the next).

Filling in text is only the same as serialising when no value needs escaping, so a value outside a
plain character set (no & < > " ' or control characters, at most 200 characters) makes `fill`
answer None and the caller builds the tree. A template is used only after it proved itself at build:
an ack made from it verifies, and equals the tree-built one apart from SignatureValue.
"""
from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Mapping

from lxml import etree

from signing import algorithms
from signing.keys import Signer
from signing.xmldsig import DS, sign_enveloped, verify_enveloped

log = logging.getLogger(__name__)

_PLAIN = re.compile(r"[ !#-%(-;=?-~]{1,200}")  # printable ASCII without & < > " '
_DIGEST_TOKEN, _SIGNATURE_TOKEN = "Zq0DIGESTqZ", "Zq0SIGNATUREqZ"


def placeholder(name: str) -> str:
    """The token standing for value `name` in a template (plain characters, found nowhere else)."""
    return f"Zq1{name.upper()}qZ"


class SignedTemplate:
    """One shape of signed document with named values to fill in."""

    def __init__(self, signer: Signer, names: tuple[str, ...], c14n: str, signed_info: str, signed: str) -> None:
        self.signer, self.names = signer, names
        # Each text as its pieces between placeholders, and which value (or the digest, signature)
        # goes in each gap: filling in is one join, not a replace per value.
        tokens = {placeholder(n): n for n in names} | {_DIGEST_TOKEN: "\0digest", _SIGNATURE_TOKEN: "\0signature"}
        split = re.compile("|".join(map(re.escape, tokens)))
        self._c14n, self._signed_info, self._signed = (
            (split.split(text), [tokens[m] for m in split.findall(text)]) for text in (c14n, signed_info, signed))
        method_uri = re.search(r'SignatureMethod Algorithm="([^"]+)"', signed_info)
        digest_uri = re.search(r'DigestMethod Algorithm="([^"]+)"', signed_info)
        if method_uri is None or digest_uri is None:
            raise ValueError("the signed template names no SignatureMethod or DigestMethod")
        self.method = algorithms.SIGNATURES_BY_URI[method_uri.group(1)]
        self.digest = algorithms.DIGESTS_BY_URI[digest_uri.group(1)]

    @classmethod
    def build(cls, signer: Signer, names: tuple[str, ...],
              unsigned: Callable[[Mapping[str, str]], etree._Element]) -> SignedTemplate:
        """From `unsigned(values)`, the shape's tree with each value in place."""
        root = unsigned({name: placeholder(name) for name in names})
        c14n = etree.tostring(root.getroottree(), method="c14n", exclusive=True, with_comments=False)
        signature = sign_enveloped(root, signer)
        signed_info = signature.find(f"{{{DS}}}SignedInfo")
        digest_value = signed_info.find(f"{{{DS}}}Reference/{{{DS}}}DigestValue").text
        signature_value = signature.find(f"{{{DS}}}SignatureValue").text
        si_c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False).decode()
        signed = etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()
        if si_c14n.count(digest_value) != 1 or signed.count(digest_value) != 1 or signed.count(signature_value) != 1:
            raise ValueError("the signed template's values are not unique")
        return cls(signer, names, c14n.decode(), si_c14n.replace(digest_value, _DIGEST_TOKEN),
                   signed.replace(digest_value, _DIGEST_TOKEN).replace(signature_value, _SIGNATURE_TOKEN))

    def fill(self, values: Mapping[str, str]) -> bytes | None:
        """The signed document with `values`; None if one needs escaping (build the tree instead)."""
        slots = {}
        for name in self.names:
            value = slots[name] = values[name]
            if not _PLAIN.fullmatch(value):
                return None
        slots["\0digest"] = base64.b64encode(self.digest.hash(_join(self._c14n, slots).encode())).decode()
        signed_info = _join(self._signed_info, slots).encode()
        slots["\0signature"] = base64.b64encode(
            self.method.to_xml(self.method.sign(self.signer.key, signed_info))).decode()
        return _join(self._signed, slots).encode()


def _join(text: tuple[list[str], list[str]], slots: Mapping[str, str]) -> str:
    pieces, names = text
    out = [pieces[0]]
    for name, piece in zip(names, pieces[1:]):
        out.append(slots[name])
        out.append(piece)
    return "".join(out)


def proven(template: SignedTemplate, sample: Mapping[str, str], by_tree: bytes) -> bool:
    """Whether `template` filled with `sample` verifies and equals `by_tree` (the same ack built and
    signed as a tree) apart from the signature value."""
    made = template.fill(sample)
    if made is None:
        return False
    try:
        verify_enveloped(etree.fromstring(made))
    except Exception as exc:  # any failure: the template is not used
        log.warning("hub ack template does not verify (%s); acks are built as trees", exc)
        return False
    strip = re.compile(rb"<ds:SignatureValue>[^<]*</ds:SignatureValue>")
    if strip.sub(b"", made) != strip.sub(b"", by_tree):
        log.warning("hub ack template differs from the tree-built ack; acks are built as trees")
        return False
    return True
