"""Packet check cost: our validation + verification vs the floor, per packet, at 10 KB, 100 KB, 1 MB.

    python -m bench packet_check [--quick] [--sizes=10,100,1000] [--key-types=rsa,ecdsa,bign]

For each size one signed SDIP packet per key type (exclusive C14N) is checked again and again:
- ours:    hardened parse, `smdo.validation.validate` (XSD + directory checks), `verify_enveloped`,
           `TrustStore.validate` (cached per certificate, as in the hub), for RSA-2048 (RSA-SHA256),
           ECDSA P-256 (ECDSA-SHA256) and bign (bign-with-hbelt, belt-hash digest, a bign chain);
- floor:   the unavoidable work, measured in the same run: plain lxml parse, exclusive C14N of the
           document, SHA-256 of it, one raw RSA verify, and lxml XSD validation;
- signxml: `signxml.XMLVerifier().verify` on the RSA packet, for comparison.
Each figure is the best of several repeats (the machine is shared and noisy). Target: ours (RSA) <= 2x
floor at 10 KB. The bign rows show what the national suite costs; the last line says whether belt-hash
ran in C (signing._belt) or in its pure-Python fallback.
"""
from __future__ import annotations

import argparse
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from signing import belt
from signing.pki import init_pki, issue_certificate
from signing.trust import TrustStore
from signing.xmldsig import sign_enveloped, verify_enveloped
from bench.timing import best_mean_us

TARGET_RATIO = 2.0


def _packet(size: int, signer) -> bytes:
    """A signed document packet of about `size` bytes, the bulk being the inline (base64) file."""
    from smdo.packet import (Author, Confident, Document, DocTransfer, Envelope, Header, OfficialPerson,
                             Organization, Participant, Receiver, RegNumber, Sender, Validator, to_element)

    org = Organization(name="Министерство финансов Республики Беларусь", id="MINFIN", unp="100000001")
    person = OfficialPerson("Иванов Иван Иванович", position="Заместитель министра")
    number = RegNumber("01-12/345", date(2026, 11, 19))
    sender = Sender(id="MINFIN", name="Министерство финансов", sys_id="6f1d3c2e-5b7a-4c1d-9e8f-0a1b2c3d4e5f",
                    system="SMBusiness", system_details="5.2")
    header = Header(msg_type=1, sender=sender, receivers=(Receiver(id="MINTRUD"),))
    stamp = datetime(2026, 11, 20, 9, 30, tzinfo=timezone(timedelta(hours=3)))

    def envelope(payload: int) -> Envelope:
        letter = DocTransfer(name="letter.pdf", type="pdf", data=bytes(range(256)) * (payload // 256) or b"%PDF")
        document = Document(
            idnumber="MINFIN-2026-000345", type=0, kind="01", pages=2, reg_number=number,
            title="О представлении сведений", annotation="Просим представить сведения до 1 декабря.",
            confident=Confident(flag=False),
            addressees=(Participant(Organization(name="Министерство труда", id="MINTRUD"), person),),
            files=(letter,),
            authors=(Author(org, person, out_number=number, signdate=date(2026, 11, 19)),),
            validators=(Validator(org, attestation=2, official_person=person, date=date(2026, 11, 19)),),
        )
        return Envelope(msg_id="0b9d7a52-3c4e-4f5a-8b6c-7d8e9f0a1b2c", dtstamp=stamp, header=header,
                        body=document, subject="О представлении сведений")

    def signed(payload: int) -> bytes:
        root = to_element(envelope(payload))
        sign_enveloped(root, signer)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    overhead = len(signed(0))
    return signed(max(0, (size - overhead) * 3 // 4))  # base64 grows the file by 4/3


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench packet_check")
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--sizes", default="10,100,1000", help="packet sizes in KB, comma separated")
    parser.add_argument("--key-types", default="rsa,ecdsa,bign", help="signers to measure, comma separated")
    options, _ = parser.parse_known_args(argv or [])
    budget, repeats = (0.05, 3) if options.quick else (0.15, 5)
    sizes = [int(s) for s in options.sizes.split(",") if s]
    kinds = [k for k in options.key_types.split(",") if k]
    if not set(kinds) <= {"rsa", "ecdsa", "bign"} or "rsa" not in kinds:
        raise SystemExit("--key-types: rsa (always, for the floor), ecdsa, bign")

    import signxml

    from smdo.validation import schema, validate
    from smdo.xmlparse import parse_xml

    with tempfile.TemporaryDirectory() as tmp:
        print("making test PKIs (RSA-2048 with an ECDSA subscriber; bign) ...", flush=True)
        layout = init_pki(Path(tmp) / "pki")
        issued = issue_certificate(layout.directory, "MINFIN", "Министерство финансов")
        signer = issued.signer()
        trust = TrustStore.from_paths(layout.trust_dir, layout.crl_paths)
        signers = {"rsa": (signer, trust)}
        if "ecdsa" in kinds:
            signers["ecdsa"] = (issue_certificate(layout.directory, "MINFIN-EC", key_type="ec").signer(), trust)
        if "bign" in kinds:
            national = init_pki(Path(tmp) / "bign-pki", key_type="bign")
            signers["bign"] = (issue_certificate(national.directory, "MINFIN", key_type="bign").signer(),
                               TrustStore.from_paths(national.trust_dir, national.crl_paths))
        cert_pem = issued.cert_path.read_text()
        xsd = schema()
        plain = etree.XMLParser(resolve_entities=False, no_network=True)
        public_key = signer.certificate.public_key()

        rows = []
        for kb in sizes:
            packets = {kind: _packet(kb * 1024, s) for kind, (s, _) in signers.items()}
            data = packets["rsa"]
            for kind, packet in packets.items():
                root = parse_xml(packet)
                problems = validate(root)
                if problems:
                    raise SystemExit(f"the {kb} KB {kind} bench packet is not valid: {problems[0]}")
                verify_enveloped(root)
            root = parse_xml(data)
            signed_info = etree.tostring(root[-1][0], method="c14n", exclusive=True)
            signature = signer.key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())

            def ours_for(packet: bytes, store: TrustStore) -> Callable[[], None]:
                def ours() -> None:
                    tree = parse_xml(packet)
                    if validate(tree):
                        raise AssertionError("invalid")
                    store.validate(verify_enveloped(tree).certificate)
                return ours

            def floor() -> None:
                tree = etree.fromstring(data, plain)
                digest = hashes.Hash(hashes.SHA256())
                digest.update(etree.tostring(tree, method="c14n", exclusive=True))
                digest.finalize()
                public_key.verify(signature, signed_info, padding.PKCS1v15(), hashes.SHA256())
                if not xsd.validate(tree):
                    raise AssertionError("invalid")

            verifier = signxml.XMLVerifier()

            def with_signxml() -> None:
                verifier.verify(data, x509_cert=cert_pem)

            print(f"{len(data) / 1024:7.0f} KB packet:", end=" ", flush=True)
            t_ours = {}
            for kind, (_, store) in signers.items():
                print(kind, end=" ", flush=True)
                t_ours[kind] = best_mean_us(ours_for(packets[kind], store), budget, repeats)
            print("floor", end=" ", flush=True)
            t_floor = best_mean_us(floor, budget, repeats)
            print("signxml", end=" ", flush=True)
            t_signxml = best_mean_us(with_signxml, budget, max(1, repeats // 2))
            print("done", flush=True)
            rows.append((len(data), t_ours, t_floor, t_signxml))
        bign_verify = _bign_verify_time(budget, repeats) if "bign" in signers else None

    print()
    header = f"{'size':>10} | {'floor (us)':>10} | " + " | ".join(f"{k + ' (us)':>11} {'ratio':>6}" for k in signers)
    print(header + f" | {'signxml (us)':>12}")
    print("-" * len(header) + "-+-" + "-" * 12)
    for size, t_ours, t_floor, t_signxml in rows:
        label = f"{size / 1024:.0f} KB" if size < 1024 * 1000 else f"{size / 1024 / 1024:.1f} MB"
        cells = " | ".join(f"{t_ours[k]:11.0f} {t_ours[k] / t_floor:5.2f}x" for k in signers)
        print(f"{label:>10} | {t_floor:10.0f} | {cells} | {t_signxml:12.0f}")
    first = rows[0] if rows else None
    if first is not None:
        ratio = first[1]["rsa"] / first[2]
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        print(f"\nours (RSA) at {first[0] / 1024:.0f} KB is {ratio:.2f}x the floor: {verdict} the target of "
              f"<= {TARGET_RATIO:.0f}x (signxml: {first[3] / first[2]:.1f}x)")
    if bign_verify is not None:
        verify_us, hash_mb_s = bign_verify
        print(f"bign: one bign-with-hbelt verify of a hash {verify_us:.0f} us; belt-hash {hash_mb_s:.2f} MB/s "
              f"(belt-hash in {'C' if belt.ACCELERATED else 'pure Python'}; big integers: {_integers()})")


def _bign_verify_time(budget: float, repeats: int) -> tuple[float, float]:
    """One bign verify (of a given hash) in microseconds, and belt-hash throughput in MB/s."""
    from signing import bign

    key = bign.BignPrivateKey.generate()
    public, digest = key.public_key(), belt.belt_hash(b"bench")
    value = bign.sign_hash(key, digest)
    verify_us = best_mean_us(lambda: bign.verify_hash(public, value, digest), budget, repeats)
    block = bytes(64 * 1024)
    hash_us = best_mean_us(lambda: belt.belt_hash(block), budget, repeats)
    return verify_us, len(block) / hash_us  # bytes per microsecond = MB/s


def _integers() -> str:
    from signing import bign

    return "gmpy2" if bign._num is not int else "Python int"


if __name__ == "__main__":
    import sys

    run(sys.argv[1:])
