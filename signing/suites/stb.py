"""The Belarusian national suite (GosSUOK): belt-hash (STB 34.101.31) and bign signatures on
bign-curve256v1 (STB 34.101.45). `cryptography` knows neither, so this suite reads and writes
the keys' DER itself (layouts from STB 34.101.45 annex Д)."""
from __future__ import annotations

from asn1crypto import core

from signing import bign, der
from signing.belt import BeltHash
from signing.suite import DigestAlgorithm, KeyKind, SignatureAlgorithm, Suite

BELT_HASH = "1.2.112.0.2.0.34.101.31.81"
BIGN_PUBKEY = "1.2.112.0.2.0.34.101.45.2.1"
BIGN_CURVE256V1 = "1.2.112.0.2.0.34.101.45.3.1"
BIGN_WITH_HBELT = "1.2.112.0.2.0.34.101.45.12"

# XML signature identifiers: no single settled form, so the urn:oid: form is written and the two
# URI families public code uses (bee2j: xmldsig11#..., jbelt: xmldsig-more#...) are accepted.
BELT_HASH_URIS = (f"urn:oid:{BELT_HASH}", "http://www.w3.org/2009/xmldsig11#belt-hash256",
                  "http://www.w3.org/2001/04/xmldsig-more#belt-hash256")
BIGN_WITH_HBELT_URIS = (f"urn:oid:{BIGN_WITH_HBELT}", "http://www.w3.org/2009/xmldsig11#bign-with-hbelt",
                        "http://www.w3.org/2001/04/xmldsig-more#bign-with-hbelt")

_ALGORITHM = der.sequence(der.oid(BIGN_PUBKEY), der.oid(BIGN_CURVE256V1))


# asn1crypto's own key classes refuse OIDs they do not know; these read the generic layouts
# (signing.algorithms uses PrivateKeyInfo to tell which suite a PKCS#8 key file belongs to).
class _AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class PublicKeyInfo(core.Sequence):
    _fields = [("algorithm", _AlgorithmIdentifier), ("public_key", core.BitString)]


class PrivateKeyInfo(core.Sequence):
    _fields = [("version", core.Integer), ("algorithm", _AlgorithmIdentifier), ("private_key", core.OctetString),
               ("attributes", core.Any, {"optional": True})]


def _algorithm_of(info) -> None:
    algorithm = info["algorithm"]
    if algorithm["algorithm"].dotted != BIGN_PUBKEY:
        raise ValueError(f"not a bign key: algorithm {algorithm['algorithm'].dotted}")
    parameters = algorithm["parameters"]
    if parameters.dump() != der.oid(BIGN_CURVE256V1):
        raise ValueError("the bign key's parameters are not bign-curve256v1 (the only curve supported)")


def public_from_spki(spki: bytes) -> bign.BignPublicKey:
    info = PublicKeyInfo.load(spki)
    _algorithm_of(info)
    bits = info["public_key"].contents
    if bits[:1] != b"\0":
        raise ValueError("the bign public key's BIT STRING has unused bits")
    return bign.BignPublicKey(bits[1:])


def spki(key: bign.BignPublicKey) -> bytes:
    return der.sequence(_ALGORITHM, der.bit_string(key.encoded))


def private_from_pkcs8(data: bytes) -> bign.BignPrivateKey:
    info = PrivateKeyInfo.load(data)
    _algorithm_of(info)
    inner = info["private_key"].native
    # The privateKey OCTET STRING holds d's 32 octets (bee2 writes them bare); tolerate a nested OCTET STRING.
    if len(inner) == 34 and inner[:2] == b"\x04\x20":
        inner = inner[2:]
    return bign.BignPrivateKey(inner)


def pkcs8(key: bign.BignPrivateKey) -> bytes:
    return der.sequence(der.integer(0), _ALGORITHM, der.octet_string(key.encoded))


BIGN = KeyKind(
    name="bign", is_private=lambda k: isinstance(k, bign.BignPrivateKey),
    is_public=lambda k: isinstance(k, bign.BignPublicKey), public_bytes=lambda k: k.encoded,
    default_digest="belt-hash", generate=bign.BignPrivateKey.generate, spki_oid=BIGN_PUBKEY,
    public_from_spki=public_from_spki, spki=spki, private_from_pkcs8=private_from_pkcs8, pkcs8=pkcs8)

SUITE = Suite(
    name="national (belt-hash, bign-with-hbelt on bign-curve256v1)",
    key_kinds=(BIGN,),
    digests=(DigestAlgorithm(name="belt-hash", xml_uris=BELT_HASH_URIS, oid=BELT_HASH, new=BeltHash,
                             cms_names=(BELT_HASH,)),),
    signatures=(SignatureAlgorithm(
        name="bign-with-hbelt", key_kind="bign", digest="belt-hash", xml_uris=BIGN_WITH_HBELT_URIS,
        x509_oid=BIGN_WITH_HBELT, x509_parameters_null=True,  # NULL required by STB 34.101.45 annex Д.2
        sign=bign.sign, verify=bign.verify,
        # Common national software labels CMS SignerInfos with the key's OID (bign-pubkey): accept it.
        cms_names=(BIGN_WITH_HBELT, BIGN_PUBKEY)),),
)
