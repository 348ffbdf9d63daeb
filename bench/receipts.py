"""Receipt cost: the hub's own 100/101 acks and the check of a receiver's delivery ack, per delivered
packet, as a multiple of the bare signature operations measured in the same run.

    python -m bench receipts [--quick]

Rows (best mean of several repeats, microseconds):
- 100 / 101 model:    `to_element(acknowledgement(...))` + `sign_enveloped` + serialise (the builder
                      the hub used before the templates);
- 100 / 101 template: `HubAcks.accepted` / `HubAcks.outcome` (a filled-in template, then signed);
- check cold:         `Receipts.check` with a fresh TrustStore and certificate cache each time (the
                      path walked and the certificate parsed again);
- check cached:       `Receipts.check` as in a running hub (certificate and path cached);
- floor:              one raw RSA-2048 PKCS#1 v1.5 SHA-256 signature (each ack needs one) and one
                      raw verify (each check needs one).
Per delivered packet the hub makes one 100 and one 101 and checks one delivery ack.
"""
from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from signing import xmldsig
from signing.pki import init_pki, issue_certificate
from signing.xmldsig import sign_enveloped
from smdo.dialects import HUB, Event, system_ack
from smdo.journal.records import Claimed
from smdo.packet import Sender, to_element
from smdo.receipts import acknowledgement, delivery_ack
from smdo.registry import Registry
from smdo.storage import parse_storage
from smdo.unp import make_unp
from smdo.xmlparse import Limits

from router.acks import TEXTS, HubAcks
from router.receipts import Receipts
from router.registry_view import RegistryView
from smdo.errors import ErrorCode
from bench.timing import best_mean_us

MSG_ID = "6a1f0c52-31c4-4b0e-9d55-2f0a8e1b7c01"


def _model_ack(acks: HubAcks, code: int, about: str | None) -> bytes:
    event = Event.ACCEPTED if code == ErrorCode.ACCEPTED else Event.DELIVERED
    ack = system_ack(event, HUB)
    text = TEXTS[ErrorCode(code)] + (f" {about}" if about else "")
    root = to_element(acknowledgement(acknowledged_msg_id=MSG_ID, ack_type=ack.ack_type, sender=acks.sender,
                                      receiver_id="ORG-A", results=[(code, text)], about_receiver=about,
                                      msg_id=str(uuid.uuid4()) if about else None))
    sign_enveloped(root, acks.signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench receipts")
    parser.add_argument("--quick", action="store_true", help="short runs (a proof that it works)")
    args = parser.parse_args(argv)
    budget, repeats = (0.1, 2) if args.quick else (0.5, 5)
    with tempfile.TemporaryDirectory() as tmp:
        print("making a test PKI and a registry ...", flush=True)
        layout = init_pki(Path(tmp) / "pki")
        for code in ("HUB", "ORG-A", "ORG-B"):
            issue_certificate(layout.directory, code, f"Organisation {code}")
        registry = Registry(Path(tmp) / "data" / "registry.db")
        for n, code in enumerate(("ORG-A", "ORG-B")):
            registry.add_subscriber(code, name=code, unp=make_unp(f"1000000{2 * n}"),
                                    certificates=[layout.certificate(code)], pull=True)
        acks = HubAcks(layout.signer("HUB"), "HUB", "smdo-hub")
        receipts = Receipts(limits=Limits(), trust=layout.trust_store(), registry=RegistryView(parse_storage(Path(tmp) / "data")),
                            acks=acks, store=None, committer=None, hub_code="HUB",  # type: ignore[arg-type]
                            delivery_deadline=60.0)
        receiver = layout.signer("ORG-B")
        sender = Sender(id="ORG-B", sys_id=str(uuid.uuid4()), system="bench", system_details="1")
        root = to_element(delivery_ack(acknowledged_msg_id=MSG_ID, sender=sender, receiver_id="HUB"))
        sign_enveloped(root, receiver)
        body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        claimed = Claimed(delivery_id=1, msg_id=MSG_ID, receiver="ORG-B", sender="ORG-A", mode="pull", attempts=0,
                          deadline=0.0, acknow=2, msg_type=1, raw=b"")

        def cold() -> None:
            receipts.trust = layout.trust_store()
            xmldsig.forget_parsed_certificates()
            receipts.check(body, claimed)

        data = b"x" * 600  # about a SignedInfo's canonical size
        key = acks.signer.key
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        rows: dict[str, float] = {}
        steps: list[tuple[str, Callable[[], object]]] = [
            ("floor: RSA sign", lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256())),
            ("floor: RSA verify", lambda: key.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())),
            ("100 model", lambda: _model_ack(acks, ErrorCode.ACCEPTED, None)),
            ("100 template", lambda: acks.accepted(MSG_ID, "ORG-A")),
            ("101 model", lambda: _model_ack(acks, ErrorCode.DELIVERED, "ORG-B")),
            ("101 template", lambda: acks.outcome(101, MSG_ID, "ORG-A", "ORG-B")),
            ("check cold", cold),
            ("check cached", lambda: receipts.check(body, claimed)),
        ]
        for name, step in steps:
            print(f"  timing {name} ...", flush=True)
            rows[name] = best_mean_us(step, budget, repeats)
    floor = 2 * rows["floor: RSA sign"] + rows["floor: RSA verify"]
    # The hub already checked delivery acks with warm caches before the templates, so "before" is the
    # model builder with a cached check; the cold check is shown only for what the caches are worth.
    before = rows["100 model"] + rows["101 model"] + rows["check cached"]
    after = rows["100 template"] + rows["101 template"] + rows["check cached"]
    cold = rows["100 model"] + rows["101 model"] + rows["check cold"]
    print(f"\n{'step':<20}{'µs':>10}{'x its floor':>14}")
    for name, value in rows.items():
        unit = rows["floor: RSA verify"] if name.startswith("check") or name.endswith("verify") else rows["floor: RSA sign"]
        print(f"{name:<20}{value:>10.0f}{value / unit:>14.2f}")
    print(f"\nper delivered packet (100 + 101 + receiver's ack check), floor 2 signs + 1 verify = {floor:.0f} µs:")
    print(f"  before (model builder, cached check): {before:>8.0f} µs = {before / floor:.2f}x floor")
    print(f"  after  (template, cached check):      {after:>8.0f} µs = {after / floor:.2f}x floor")
    print(f"  change: {100 * (after - before) / before:+.0f}% (the RSA signature dominates an ack's cost)")
    print(f"  for scale, without the certificate and path caches: {cold:>8.0f} µs = {cold / floor:.2f}x floor")
