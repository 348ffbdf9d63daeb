"""Enveloped XMLDSig: our sign/verify, the strict profile (wrapping defence), and interoperability
with two independent implementations, signxml and libxmlsec1 (the `xmlsec` package)."""
from __future__ import annotations

import base64
import copy

import pytest
import signxml
import xmlsec
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from signing.errors import InvalidSignature, MissingSignature
from signing.xmldsig import DS, sign_enveloped, verify_enveloped

NS = {"ds": DS}
# SDIP-like: a default namespace, a prefixed one declared deep, an entity, a comment, whitespace tails.
DOCUMENT = b"""<Envelop xmlns="urn:sdip" type="SDIP-2.1.1" msg_id="7f1c">
  <Header msg_type="1"><!-- routing --><Sender id="ORG-A" name="Organisation A"/>
    <Receiver id="ORG-B"/></Header>
  <Body><Document idnumber="42" kind="letter" x:note="n" xmlns:x="urn:x">Pay 100 &amp; more</Document></Body>
</Envelop>"""


def signed_bytes(signer, **options) -> bytes:
    root = etree.fromstring(DOCUMENT)
    sign_enveloped(root, signer, **options)
    return etree.tostring(root)


def verify_bytes(data: bytes):
    return verify_enveloped(etree.fromstring(data))


@pytest.fixture(scope="module")
def rsa(signer_for):
    return signer_for("ORG-A")


@pytest.fixture(scope="module")
def ecdsa(signer_for):
    return signer_for("ORG-EC")


# ---------------------------------------------------------------- our own round trip


@pytest.mark.parametrize("c14n", ["exc", "inclusive"])
@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_rsa_sign_then_verify(rsa, c14n, digest):
    result = verify_bytes(signed_bytes(rsa, c14n=c14n, digest=digest))
    assert result.certificate == rsa.certificate
    assert result.signature_method == f"rsa-{digest}"
    assert result.digest_method == digest
    assert result.c14n_method == {"exc": "exc-c14n", "inclusive": "c14n"}[c14n]


@pytest.mark.parametrize("c14n", ["exc", "inclusive"])
def test_ecdsa_sign_then_verify_uses_raw_r_s(ecdsa, c14n):
    data = signed_bytes(ecdsa, c14n=c14n)
    result = verify_bytes(data)
    assert result.signature_method == "ecdsa-sha256"
    value = etree.fromstring(data).find(".//ds:SignatureValue", NS).text
    assert len(base64.b64decode(value)) == 64  # r||s, not DER


def test_signature_is_the_roots_last_child_and_carries_the_certificate(rsa):
    root = etree.fromstring(DOCUMENT)
    signature = sign_enveloped(root, rsa)
    assert root[-1] is signature
    cert = base64.b64decode(signature.find(".//ds:X509Certificate", NS).text)
    assert cert == rsa.certificate.public_bytes(Encoding.DER)


def test_text_after_the_signature_is_document_content(rsa):
    """The newline before </Envelop> may sit before or after the signature: same signed document."""
    data = signed_bytes(rsa)
    moved = data.replace(b"</Body>\n<ds:Signature", b"</Body><ds:Signature").replace(
        b"</ds:Signature>", b"</ds:Signature>\n")
    assert moved != data
    root = etree.fromstring(moved)
    verify_enveloped(root)
    assert etree.tostring(root) == moved  # verification detaches and reattaches: the tree is as it was
    with pytest.raises(InvalidSignature, match="digest"):
        verify_bytes(moved.replace(b"</ds:Signature>\n", b"</ds:Signature>\n\n"))


def test_signing_twice_is_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    with pytest.raises(ValueError, match="already carries"):
        sign_enveloped(root, rsa)


def test_sign_refuses_sha1(rsa):
    with pytest.raises(ValueError, match="digest"):
        sign_enveloped(etree.fromstring(DOCUMENT), rsa, digest="sha1")


# ---------------------------------------------------------------- tampering and missing signatures


@pytest.mark.parametrize("old,new", [
    (b"Pay 100", b"Pay 900"),            # text
    (b'idnumber="42"', b'idnumber="43"'),  # attribute
    (b'<Receiver id="ORG-B"/>', b'<Receiver id="ORG-C"/>'),
    (b"</Body>", b"<Extra/></Body>"),    # added element
])
def test_one_changed_byte_of_content_is_invalid(rsa, old, new):
    data = signed_bytes(rsa)
    assert old in data
    with pytest.raises(InvalidSignature, match="digest does not match") as caught:
        verify_bytes(data.replace(old, new))
    assert caught.value.code == -21


def test_changed_signed_info_is_invalid(rsa):
    data = signed_bytes(rsa)
    root = etree.fromstring(data)
    value = root.find(".//ds:DigestValue", NS)
    value.text = base64.b64encode(b"\0" * 32).decode()
    with pytest.raises(InvalidSignature, match="SignatureValue does not verify"):
        verify_enveloped(root)


def test_a_missing_signature_is_22():
    with pytest.raises(MissingSignature) as caught:
        verify_bytes(DOCUMENT)
    assert caught.value.code == -22


def test_stripped_signature_is_22(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    root.remove(root[-1])
    with pytest.raises(MissingSignature):
        verify_enveloped(root)


def test_certificate_swapped_for_another_key_is_invalid(rsa, signer_for):
    other = signer_for("ORG-B").certificate
    root = etree.fromstring(signed_bytes(rsa))
    root.find(".//ds:X509Certificate", NS).text = base64.b64encode(
        other.public_bytes(Encoding.DER)).decode()
    with pytest.raises(InvalidSignature, match="does not verify with the key of .*ORG-B"):
        verify_enveloped(root)


# ---------------------------------------------------------------- wrapping attacks and the profile


def test_a_second_signature_is_refused(rsa, signer_for):
    root = etree.fromstring(signed_bytes(rsa))
    body = root.find("{urn:sdip}Body")
    body.append(copy.deepcopy(root[-1]))
    with pytest.raises(InvalidSignature, match="2 ds:Signature"):
        verify_enveloped(root)


def test_signature_not_last_is_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    root.insert(0, root[-1])  # moves it to the front
    with pytest.raises(InvalidSignature, match="last child"):
        verify_enveloped(root)


def test_element_after_the_signature_is_refused(rsa):
    data = signed_bytes(rsa).replace(b"</Envelop>", b"<Body>evil</Body></Envelop>")
    with pytest.raises(InvalidSignature, match="last child"):
        verify_bytes(data)


def test_signature_inside_a_child_is_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    root.find("{urn:sdip}Body").append(root[-1])
    with pytest.raises(InvalidSignature, match="child of the root"):
        verify_enveloped(root)


def test_signed_content_moved_into_an_object_is_refused(rsa):
    """Classic wrapping: the signed Body hides in ds:Object, an attacker's Body takes its place."""
    root = etree.fromstring(signed_bytes(rsa))
    signature = root[-1]
    original = root.find("{urn:sdip}Body")
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    obj.append(copy.deepcopy(original))
    original[0].text = "Pay 1,000,000"
    with pytest.raises(InvalidSignature, match="ds:Object is not allowed"):
        verify_enveloped(root)


def test_reference_to_an_id_is_refused(rsa):
    """A signature over one element (URI="#id") would let the rest of the packet change freely."""
    root = etree.fromstring(DOCUMENT)
    root.find("{urn:sdip}Body").set("Id", "body")
    signed = signxml.XMLSigner(c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0).sign(
        root, key=rsa.key, cert=[rsa.certificate], reference_uri="#body")
    with pytest.raises(InvalidSignature, match="URI='#body'"):
        verify_enveloped(etree.fromstring(etree.tostring(signed)))


def test_duplicated_signed_element_is_refused(rsa):
    data = signed_bytes(rsa)
    body = data[data.index(b"<Body>"):data.index(b"</Body>") + 7]
    with pytest.raises(InvalidSignature):
        verify_bytes(data.replace(body, body + body))


def test_two_references_are_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    info = root.find(".//ds:SignedInfo", NS)
    info.append(copy.deepcopy(info.find("ds:Reference", NS)))
    with pytest.raises(InvalidSignature, match="more than one ds:Reference"):
        verify_enveloped(root)


@pytest.mark.parametrize("algorithm", [
    "http://www.w3.org/TR/1999/REC-xpath-19991116",
    "http://www.w3.org/TR/1999/REC-xslt-19991116",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
])
def test_an_extra_transform_is_refused(rsa, algorithm):
    root = etree.fromstring(signed_bytes(rsa))
    transforms = root.find(".//ds:Transforms", NS)
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=algorithm)
    with pytest.raises(InvalidSignature, match="exactly enveloped-signature then one C14N; found 3"):
        verify_enveloped(root)


def test_transforms_in_the_wrong_order_are_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    transforms = root.find(".//ds:Transforms", NS)
    transforms.append(transforms[0])
    with pytest.raises(InvalidSignature, match="first Transform must be enveloped-signature"):
        verify_enveloped(root)


@pytest.mark.parametrize("where,uri,name", [
    ("ds:DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1", "SHA-1"),
    ("ds:DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5", "MD5"),
    ("ds:SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1", "SHA-1"),
    ("ds:SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5", "MD5"),
])
def test_sha1_and_md5_are_refused_by_name(rsa, where, uri, name):
    root = etree.fromstring(signed_bytes(rsa))
    root.find(f".//{where}", NS).set("Algorithm", uri)
    with pytest.raises(InvalidSignature, match=name):
        verify_enveloped(root)


def test_an_unknown_canonicalization_is_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    root.find(".//ds:CanonicalizationMethod", NS).set("Algorithm", "http://www.w3.org/2006/12/xml-c14n11")
    with pytest.raises(InvalidSignature, match="CanonicalizationMethod .*xml-c14n11 is not allowed"):
        verify_enveloped(root)


def test_a_der_ecdsa_value_is_refused(ecdsa):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    root = etree.fromstring(signed_bytes(ecdsa))
    der = ecdsa.key.sign(b"anything", ec.ECDSA(hashes.SHA256()))
    root.find(".//ds:SignatureValue", NS).text = base64.b64encode(der).decode()
    with pytest.raises(InvalidSignature, match="64 bytes"):
        verify_enveloped(root)


def test_signature_without_key_info_is_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    signature = root[-1]
    signature.remove(signature.find("ds:KeyInfo", NS))
    with pytest.raises(InvalidSignature, match="ds:KeyInfo"):
        verify_enveloped(root)


# ---------------------------------------------------------------- interoperability

KEYS = ["ORG-A", "ORG-EC"]
C14N = ["exc", "inclusive"]


def _xmlsec_transform(c14n: str, comments: bool = False):
    if c14n == "exc":
        return xmlsec.Transform.EXCL_C14N_COMMENTS if comments else xmlsec.Transform.EXCL_C14N
    return xmlsec.Transform.C14N_COMMENTS if comments else xmlsec.Transform.C14N


@pytest.mark.parametrize("code", KEYS)
@pytest.mark.parametrize("c14n", C14N)
def test_signxml_signature_verifies_with_ours(test_pki, code, c14n):
    signer = test_pki.signer(code)
    method = SignatureMethod.RSA_SHA256 if code == "ORG-A" else SignatureMethod.ECDSA_SHA256
    c14n_method = (CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0 if c14n == "exc"
                   else CanonicalizationMethod.CANONICAL_XML_1_0)
    signed = signxml.XMLSigner(signature_algorithm=method, digest_algorithm=DigestAlgorithm.SHA256,
                               c14n_algorithm=c14n_method).sign(
        etree.fromstring(DOCUMENT), key=signer.key, cert=[signer.certificate])
    result = verify_bytes(etree.tostring(signed))
    assert result.certificate == signer.certificate


def _xmlsec_sign(test_pki, document: bytes, code: str, c14n: str, comments: bool = False) -> bytes:
    transform = _xmlsec_transform(c14n, comments)
    root = etree.fromstring(document)
    method = xmlsec.Transform.RSA_SHA256 if code == "ORG-A" else xmlsec.Transform.ECDSA_SHA256
    signature = xmlsec.template.create(root, transform, method, ns="ds")
    root.append(signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri="")
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, transform)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    key = xmlsec.Key.from_file(str(test_pki.key_path(code)), xmlsec.KeyFormat.PEM)
    key.load_cert_from_file(str(test_pki.cert_path(code)), xmlsec.KeyFormat.PEM)
    context = xmlsec.SignatureContext()
    context.key = key
    context.sign(signature)
    return etree.tostring(root.getroottree())


def _xmlsec_verify(test_pki, data: bytes, code: str) -> None:
    root = etree.fromstring(data)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_file(str(test_pki.cert_path(code)), xmlsec.KeyFormat.CERT_PEM)
    context.verify(root[-1])  # raises xmlsec.VerificationError if not valid


@pytest.mark.parametrize("code", KEYS)
@pytest.mark.parametrize("c14n", C14N)
@pytest.mark.parametrize("comments", [False, True])
def test_libxmlsec1_signature_verifies_with_ours(test_pki, code, c14n, comments):
    data = _xmlsec_sign(test_pki, DOCUMENT, code, c14n, comments)
    assert verify_bytes(data).certificate == test_pki.certificate(code)
    with pytest.raises(InvalidSignature):
        verify_bytes(data.replace(b"Pay 100", b"Pay 101"))


@pytest.mark.parametrize("code", KEYS)
@pytest.mark.parametrize("c14n", C14N)
def test_our_signature_verifies_with_signxml(test_pki, code, c14n):
    data = signed_bytes(test_pki.signer(code), c14n=c14n)
    pem = test_pki.cert_path(code).read_text()
    result = signxml.XMLVerifier().verify(data, x509_cert=pem)
    assert result.signed_xml.find("{urn:sdip}Body")[0].text == "Pay 100 & more"
    with pytest.raises(signxml.exceptions.InvalidSignature):
        signxml.XMLVerifier().verify(data.replace(b"Pay 100", b"Pay 101"), x509_cert=pem)


@pytest.mark.parametrize("code", KEYS)
@pytest.mark.parametrize("c14n", C14N)
def test_our_signature_verifies_with_libxmlsec1(test_pki, code, c14n):
    root = etree.fromstring(signed_bytes(test_pki.signer(code), c14n=c14n))
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_file(str(test_pki.cert_path(code)), xmlsec.KeyFormat.CERT_PEM)
    context.verify(root[-1])  # raises xmlsec.VerificationError if not valid
    root.find("{urn:sdip}Body")[0].text = "Pay 101"
    with pytest.raises(xmlsec.Error):
        context.verify(root[-1])


EDGE_DOCUMENTS = {
    # inclusive C14N of SignedInfo must render the xml:* attributes it inherits from the root
    "inherited-xml-attributes": b'<Envelop xmlns="urn:sdip" xml:lang="ru" xml:space="preserve">'
                                b'<Body>t</Body></Envelop>',
    # URI="" is the whole document: top-level PIs count, comments do not
    "top-level-pi-and-comments": b'<?xml version="1.0"?>\n<?app data?>\n<!-- before -->\n'
                                 b'<Envelop xmlns="urn:sdip"><Body>t</Body></Envelop>\n<!-- after -->',
    # C14N works on characters: the encoding of the bytes does not matter
    "windows-1251": '<?xml version="1.0" encoding="windows-1251"?>\n<Envelop xmlns="urn:sdip">'
                    '<Body>Министерство</Body></Envelop>'.encode("cp1251"),
}


@pytest.mark.parametrize("name", sorted(EDGE_DOCUMENTS))
@pytest.mark.parametrize("c14n", C14N)
def test_edge_documents_interoperate_with_libxmlsec1(test_pki, name, c14n):
    document = EDGE_DOCUMENTS[name]
    assert verify_bytes(_xmlsec_sign(test_pki, document, "ORG-A", c14n)).certificate == test_pki.certificate("ORG-A")
    root = etree.fromstring(document)
    sign_enveloped(root, test_pki.signer("ORG-A"), c14n=c14n)
    _xmlsec_verify(test_pki, etree.tostring(root.getroottree()), "ORG-A")


def test_top_level_processing_instructions_are_signed(rsa):
    document = EDGE_DOCUMENTS["top-level-pi-and-comments"]
    root = etree.fromstring(document)
    sign_enveloped(root, rsa)
    data = etree.tostring(root.getroottree())
    verify_bytes(data.replace(b"<!-- before -->", b"<!-- changed -->"))  # comments are outside URI=""
    with pytest.raises(InvalidSignature, match="digest"):
        verify_bytes(data.replace(b"<?app data?>", b"<?app other?>"))


# ---------------------------------------------------------------- keys


def test_private_keys_are_parsed_once_per_file_version(tmp_path, test_pki):
    import os
    import shutil

    from signing.keys import load_private_key

    path = tmp_path / "key.pem"
    shutil.copy(test_pki.key_path("ORG-A"), path)
    first = load_private_key(path)
    assert load_private_key(path) is first
    shutil.copy(test_pki.key_path("ORG-B"), path)
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))
    second = load_private_key(path)
    assert second is not first
    assert second.public_key().public_numbers() == test_pki.certificate("ORG-B").public_key().public_numbers()


def test_signer_refuses_a_key_that_does_not_match_the_certificate(test_pki):
    from signing.keys import Signer

    with pytest.raises(ValueError, match="is not the private key of the certificate"):
        Signer.from_files(test_pki.key_path("ORG-A"), test_pki.cert_path("ORG-B"))
    chained = Signer.from_files(test_pki.key_path("ORG-A"), test_pki.chain_path("ORG-A"))
    assert chained.chain == (test_pki.ca_cert,)
    root = etree.fromstring(DOCUMENT)
    sign_enveloped(root, chained)
    assert len(root.findall(".//ds:X509Certificate", NS)) == 2
    assert verify_enveloped(root).certificate == test_pki.certificate("ORG-A")  # the first one signs


def test_a_signature_method_that_does_not_fit_the_key_is_refused(rsa):
    root = etree.fromstring(signed_bytes(rsa))
    root.find(".//ds:SignatureMethod", NS).set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256")
    with pytest.raises(InvalidSignature, match="needs a P-256 key"):
        verify_enveloped(root)


def test_a_short_rsa_key_is_refused():
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
    from cryptography.x509.oid import NameOID

    from signing.keys import Signer

    key = rsa_keys.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    root = etree.fromstring(DOCUMENT)
    sign_enveloped(root, Signer(key=key, certificate=cert))
    with pytest.raises(InvalidSignature, match="1024 bits; at least 2048"):
        verify_enveloped(root)
