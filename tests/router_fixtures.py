"""Router test helpers: a working receiving-EDMS emulation, packet builders, and a hub on a real
TLS socket with a real registry and journal in a temporary data folder.

The receiving EDMS stands for an outside system: it verifies the sender's signature against the
test PKI, stores each msg_id once in its own SQLite file (de-duplication, as the format requires),
and answers a delivery acknowledgement signed with its own key.
"""
from __future__ import annotations

import base64
import itertools
import sqlite3
import ssl
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp import web
from lxml import etree

from signing.keys import Signer
from signing.pki import PkiLayout
from signing.trust import TrustStore
from signing.xmldsig import sign_enveloped
from smdo.check import read_packet, validate_packet, verify_files, verify_packet
from smdo.errors import PacketRejected, RegistrationResult
from smdo.packet import (
    Author, DocTransfer, Document, Envelope, Header, Organization, Receiver, RegNumber, Sender, read_header,
    to_element,
)
from smdo.receipts import delivery_ack, registration_ack
from smdo.registry import Registry, SubscriberStatus
from smdo.unp import make_unp

from router.app import create_app
from router.config import HubConfig
from router.tls import client_context

_unp_prefixes = itertools.count(10000001)


def sender_of(code: str) -> Sender:
    return Sender(id=code, sys_id=str(uuid.uuid5(uuid.NAMESPACE_URL, code)), system="test-edms",
                  system_details="1.0", name=f"Organisation {code}")


def sign(env: Envelope, signer: Signer) -> bytes:
    root = to_element(env)
    sign_enveloped(root, signer)  # appends ds:Signature to root
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def document(sender: str, receivers: list[str] | tuple[str, ...], *, msg_id: str | None = None,
             payload: bytes = b"%PDF-1.4 test letter", acknow: int = 2, title: str = "Test letter") -> Envelope:
    return Envelope(
        msg_id=msg_id or str(uuid.uuid4()),
        dtstamp=datetime.now(timezone.utc),
        header=Header(msg_type=1, sender=sender_of(sender), receivers=tuple(Receiver(id=r) for r in receivers),
                      msg_acknow=acknow),
        body=Document(
            idnumber=f"doc-{uuid.uuid4().hex[:8]}", type=0, kind="01", pages=1,
            reg_number=RegNumber("01-12/1", date(2026, 11, 20)),
            authors=(Author(Organization(name=f"Organisation {sender}", id=sender)),),
            title=title, files=(DocTransfer(name="letter.pdf", type="pdf", data=payload),),
        ),
    )


def registration(from_code: str, original: Envelope, result: RegistrationResult = RegistrationResult.REGISTERED,
                 **kw: object) -> Envelope:
    if result is RegistrationResult.REGISTERED:
        kw.setdefault("inc_number", RegNumber("in-77", date(2026, 11, 21)))
    if result is RegistrationResult.REFUSED:
        kw.setdefault("reason", "no_signature")
    return registration_ack(acknowledged_msg_id=original.msg_id, sender=sender_of(from_code),
                            receiver_id=original.header.sender.id, result=result, **kw)


# --------------------------------------------------------------------------- receiving EDMS


@dataclass
class ReceivingEdms:
    """An EDMS in push mode: HTTPS endpoint, signature check, idempotent store, signed ack."""

    code: str
    signer: Signer
    trust: TrustStore
    server_ssl: ssl.SSLContext
    db_path: Path
    port: int = 0
    answer_status: int | None = None  # force an error status (a misbehaving receiver)
    delay: float = 0.0  # answer this late (a slow receiver)
    synchronous: str = "FULL"  # its own store's durability (the benchmark's receivers use NORMAL)
    delivery_code: int = 101  # its delivery ack's errorcode: 101 (hub dialect) or 0 (router dialect, as AzDoc)
    _db: sqlite3.Connection | None = None
    _runner: web.AppRunner | None = None
    attempts: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/inbox"

    async def start(self) -> "ReceivingEdms":
        self._db = sqlite3.connect(self.db_path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={self.synchronous}")
        self._db.execute("CREATE TABLE IF NOT EXISTS received (msg_id TEXT PRIMARY KEY, sender TEXT, body BLOB, n INTEGER)")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/inbox", self.receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.server_ssl, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._db is not None:
            self._db.close()
            self._db = None

    async def receive(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        if self.answer_status:
            return web.Response(status=self.answer_status, text="not now")
        body = await request.read()
        try:
            root = read_packet(body)
            validate_packet(root)
            if root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None:
                verify_files(root, self.trust)  # a classic-profile sender: unsigned envelope, signed files
            else:
                verify_packet(root, self.trust)
        except PacketRejected as exc:
            return web.Response(status=400, text=str(exc))
        header = read_header(root)
        # One row per msg_id, however often it arrives.
        self._db.execute("INSERT INTO received VALUES (?, ?, ?, 1) ON CONFLICT (msg_id) DO UPDATE SET n = n + 1",
                         (header.msg_id, header.sender_id, body))
        ack = delivery_ack(acknowledged_msg_id=header.msg_id, sender=sender_of(self.code),
                           receiver_id=header.sender_id, code=self.delivery_code)
        return web.Response(body=sign(ack, self.signer), content_type="application/xml")

    def received(self) -> dict[str, int]:
        """msg_id -> how many times it arrived (the store keeps one copy)."""
        with sqlite3.connect(self.db_path) as db:
            return dict(db.execute("SELECT msg_id, n FROM received"))

    def packets(self) -> dict[str, bytes]:
        with sqlite3.connect(self.db_path) as db:
            return dict(db.execute("SELECT msg_id, body FROM received"))


def edms_server_ssl(pki: PkiLayout) -> ssl.SSLContext:
    """The receivers' endpoints serve the HUB test certificate (it names 127.0.0.1): what matters
    for these tests is the signed ack inside, made with the receiver's own key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.cert_path("HUB")), str(pki.key_path("HUB")))
    return ctx


# --------------------------------------------------------------------------- the hub


@dataclass
class HubUnderTest:
    config: HubConfig
    pki: PkiLayout
    registry: Registry
    runner: web.AppRunner | None = None
    port: int = 0
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def session(self, code: str | None = None) -> aiohttp.ClientSession:
        """A client trusting the test CA; with `code`, presenting that subscriber's TLS certificate."""
        key = code or ""
        if key not in self.sessions:
            ctx = ssl.create_default_context(cafile=str(self.pki.ca_bundle_path))
            if code:
                ctx.load_cert_chain(str(self.pki.cert_path(code)), str(self.pki.key_path(code)))
            self.sessions[key] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
        return self.sessions[key]

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        async with self.session().post(f"{self.url}/smdo/v1/packets", data=raw,
                                       headers={"Content-Type": "application/xml"}) as r:
            return r.status, await r.read()

    def operator(self) -> aiohttp.ClientSession:
        """A client presenting the test operator's certificate (listed in the hub's operator_certs)."""
        return self.session(OPERATOR)

    async def status(self, msg_id: str) -> dict:
        async with self.operator().get(f"{self.url}/smdo/v1/transactions/{msg_id}") as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def mailbox(self, code: str, limit: int = 50) -> list[dict]:
        async with self.session(code).get(f"{self.url}/smdo/v1/mailbox", params={"limit": str(limit)}) as r:
            assert r.status == 200, await r.text()
            items = (await r.json())["packets"]
        for item in items:
            item["packet"] = base64.b64decode(item["packet"])
        return items

    async def confirm(self, code: str, item: dict, signer: Signer) -> int:
        header = read_header(read_packet(item["packet"]))
        ack = delivery_ack(acknowledged_msg_id=header.msg_id, sender=sender_of(code), receiver_id=header.sender_id)
        async with self.session(code).post(f"{self.url}/smdo/v1/mailbox/{item['delivery_id']}/ack",
                                           data=sign(ack, signer)) as r:
            return r.status

    async def start(self) -> "HubUnderTest":
        app = create_app(self.config)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self.runner.setup()
        from router.tls import server_context

        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=server_context(self.config),
                           reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for s in self.sessions.values():
            await s.close()
        self.sessions.clear()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


OPERATOR = "OPERATOR"  # the test PKI's operator certificate (a TLS client certificate, bound to no subscriber)


def operator_cert(pki: PkiLayout) -> Path:
    """The operator's certificate, issued once per PKI."""
    if not pki.cert_path(OPERATOR).exists():
        from signing.pki import issue_certificate

        # In a bign PKI only the EC TLS CA issues certificates OpenSSL can use for TLS (those with host names).
        tls = dict(key_type="ec", tls_hostnames=("localhost",)) if pki.has_tls_ca else {}
        issue_certificate(pki.directory, OPERATOR, "smdo operator", **tls)
    return pki.cert_path(OPERATOR)


def hub_config(data: Path, pki: PkiLayout, **overrides: object) -> HubConfig:
    base = HubConfig(data=data, host="127.0.0.1", port=0, key=pki.key_path("HUB"), cert=pki.cert_path("HUB"),
                     trust=pki.trust_dir, crl=tuple(pki.crl_paths), operator_certs=(operator_cert(pki),), retry_base=0.05, retry_max=0.2, poll_interval=0.02,
                     breaker_failures=1000, mailbox_visibility=0.5)
    if "operator_certs" in overrides:  # more operators: the test operator (status()) stays one of them
        overrides["operator_certs"] = (*overrides["operator_certs"], operator_cert(pki))
    return replace(base, **overrides).check()


def register(registry: Registry, pki: PkiLayout, code: str, *, push_url: str | None = None,
             status: SubscriberStatus = SubscriberStatus.ACTIVE, **fields: object) -> None:
    registry.add_subscriber(code, name=f"Organisation {code}", unp=_next_unp(),
                            certificates=[pki.certificate(code)], push_url=push_url, pull=push_url is None,
                            status=status, **fields)


def _next_unp() -> str:
    while True:
        try:
            return make_unp(str(next(_unp_prefixes)))
        except ValueError:
            continue


def client_ssl_for(pki: PkiLayout) -> ssl.SSLContext:
    return client_context(hub_config(Path("/nonexistent"), pki))


# --------------------------------------------------------------------------- a small network


@dataclass
class Network:
    """A hub; ORG-B and ORG-C receive by push (emulated EDMS); ORG-A pulls from its mailbox."""

    hub: HubUnderTest
    edms: dict[str, ReceivingEdms]
    registry: Registry

    async def stop(self) -> None:
        await self.hub.stop()
        for receiver in self.edms.values():
            await receiver.stop()
        self.registry.close()


async def start_network(tmp_path: Path, pki: PkiLayout, edms_trust: TrustStore, **overrides: object) -> Network:
    """`overrides`: HubConfig fields (e.g. trust=<another folder> for the hub)."""
    edms = {}
    for code in ("ORG-B", "ORG-C"):
        edms[code] = await ReceivingEdms(code, pki.signer(code), edms_trust, edms_server_ssl(pki),
                                         tmp_path / f"{code}.db").start()
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, pki, "ORG-A")
    for code, receiver in edms.items():
        register(registry, pki, code, push_url=receiver.url)
    hub = await HubUnderTest(hub_config(tmp_path / "data", pki, **overrides), pki, registry).start()
    return Network(hub, edms, registry)


# However short a caller's timeout, `eventually` waits at least this long before failing: on a
# loaded machine (two suites on two cores) a step that takes 0.1 s alone can take seconds.
PATIENCE_FLOOR = 30.0


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Poll `check` (sync or async) until it returns something truthy; return that."""
    import asyncio
    import inspect
    import time

    deadline = time.monotonic() + max(timeout, PATIENCE_FLOOR)
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def ack_of(body: bytes):
    """The routing header of an acknowledgement (ack_msg_id, ack_codes, ...)."""
    return read_header(etree.fromstring(body))


async def delivery_state(hub: HubUnderTest, msg_id: str, receiver: str) -> str:
    status = await hub.status(msg_id)
    return next(d["state"] for d in status["deliveries"] if d["receiver"] == receiver)


# --------------------------------------------------------------------------- `smdo serve` as a process


SMDO = [__import__("sys").executable, "-m", "cli.main"]
REPO = Path(__file__).resolve().parent.parent


def serve_args(data: Path, pki: PkiLayout, *extra: str) -> list[str]:
    return [*SMDO, "serve", "--data", str(data), "--host", "127.0.0.1", "--port", "0",
            "--key", str(pki.key_path("HUB")), "--cert", str(pki.cert_path("HUB")), "--trust", str(pki.trust_dir),
            *[arg for crl in pki.crl_paths for arg in ("--crl", str(crl))], "--operator-cert", str(operator_cert(pki)),
            "--retry-base", "50ms", "--retry-max", "200ms", *extra]


async def smdo(*args: str) -> tuple[int, str, str]:
    """Run an `smdo` command in a subprocess: (exit code, stdout, stderr)."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(*SMDO, *args, cwd=REPO, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


class ServeProcess:
    """`smdo serve` in a subprocess on port 0; `url` is read from the line it prints when ready."""

    def __init__(self, data: Path, pki: PkiLayout, *extra: str) -> None:
        import subprocess

        self.args = serve_args(data, pki, *extra)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=REPO)
        self.url = ""
        __import__("atexit").register(self._reap)  # a failed test must not leave a hub running

    def _reap(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def ready(self, timeout: float = 20.0) -> "ServeProcess":
        import asyncio

        loop = asyncio.get_running_loop()
        line = await asyncio.wait_for(loop.run_in_executor(None, self.proc.stdout.readline), timeout)
        if b"listening on" not in line:
            raise RuntimeError(f"smdo serve did not start: {line!r} {self.proc.stderr.read()[-2000:]!r}")
        self.url = line.split(b"listening on ")[1].split()[0].decode()
        return self

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no cleanup at all
        self.proc.wait()

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout)


def hub_client(pki: PkiLayout, code: str | None = None) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    if code:
        ctx.load_cert_chain(str(pki.cert_path(code)), str(pki.key_path(code)))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64))
