"""`smdo conformance run`: test an EDMS against the hub's conformance suite.

    --subscriber CODE   through the hub: the suite is the hub's test counterpart SMDO-TEST; it needs
                        the hub's data folder (registry, journal), URL and keys, and stores the
                        hub-signed conclusion (a pass certifies the subscriber).
    --endpoint URL      before registration: the suite plays the hub and POSTs straight to the EDMS's
                        push endpoint; point the EDMS's hub URL at the suite's listener (--listen).

The suite asks the EDMS for a document of its own (case outgoing-document): --reply-hook runs a
command with {msg_id} and {code} filled in (e.g. a curl to the EDMS's API); without it, a person
sends one while the suite waits. What the integrator provides beside the EDMS for the full suite:

    --adapter URL        the test adapter (README "The test adapter"): what the EDMS registered
    --restart-hook CMD   restarts the EDMS (a real process kill and start), for case durability
    --pki DIR            the certification PKI the EDMS trusts: the suite issues an expired, a not yet
                         valid and a revoked certificate there (the revocation goes on its CRL)
"""
from __future__ import annotations

import asyncio
import shlex
import tempfile
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import click
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cli.subscribers import default_actor
from router.part_download import ByteRange, Unsatisfiable, requested_range
from signing.keys import Signer, certificate_fingerprint, load_certificate, load_certificates, ssl_key_password
from signing.trust import TrustStore
from smdo.conformance.adapter import AdapterClient
from smdo.conformance.cases import CaseFailed, Context, Timing
from smdo.conformance.certification import prepare_counterpart, prepare_subscriber, record_result
from smdo.conformance.conclusion import conclusion_xml
from smdo.conformance.counterpart import Counterpart
from smdo.conformance.packets import PacketFactory
from smdo.conformance.parts import Shelf
from smdo.conformance.report import junit_xml, table
from smdo.conformance.routes import EndpointRoute, HubRoute, Route
from smdo.conformance.runner import SuiteResult, run_suite
from smdo.conformance.trust_kit import make_trust_kit
from smdo.datadir import require_data_dir
from smdo.dialects import CLASSIC
from smdo.registry import Conclusion, Registry, RegistryError, registry_store
from smdo.storage import StorageError, parse_storage

def open_registry(db: str | None, data: Path | None) -> Registry:
    """The hub's registry; a data folder never initialised is refused (a typo in --data)."""
    where = parse_storage(db, data or Path("var"))
    if where.kind == "sqlite":
        require_data_dir(where.folder)
    return registry_store(where)


MAX_BODY = 40 * 1024 * 1024  # above the hub's 30 MB packet limit


class CounterpartListener:
    """The suite's HTTP side: the hub pushes to /counterpart; an EDMS under --endpoint posts to the
    hub's own path /smdo/v1/packets. Both land in the counterpart's inbox."""

    def __init__(self, counterpart: Counterpart, host: str = "127.0.0.1", port: int = 0) -> None:
        self.counterpart = counterpart
        self.host, self.port = host, port
        self.shelf = Shelf()  # parts an --endpoint EDMS downloads from the suite playing the hub
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, request: web.Request, *, as_hub: bool) -> web.Response:
        answer = await self.counterpart.take(await request.read(), as_hub=as_hub)
        return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)

    async def _as_subscriber(self, request: web.Request) -> web.Response:
        return await self._handle(request, as_hub=False)

    async def _as_hub(self, request: web.Request) -> web.Response:
        return await self._handle(request, as_hub=True)

    async def _part(self, request: web.Request) -> web.StreamResponse:
        """GET /smdo/v1/parts/{sha256} as the hub answers it (Range, 206, 416), generated as it is sent."""
        part = self.shelf.get(request.match_info["sha256"])
        if part is None:
            raise web.HTTPNotFound(text="no such part\n")
        try:
            wanted = requested_range(request.headers.get("Range"), part.size) or ByteRange(0, part.size)
        except Unsatisfiable:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{part.size}"})
        partial = wanted != ByteRange(0, part.size)
        response = web.StreamResponse(status=206 if partial else 200,
                                      headers={"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"})
        if partial:
            response.headers["Content-Range"] = f"bytes {wanted.start}-{wanted.stop - 1}/{part.size}"
        response.content_length = wanted.stop - wanted.start
        await response.prepare(request)
        for chunk in part.chunks(wanted.start, wanted.stop):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def start(self) -> CounterpartListener:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/counterpart", self._as_subscriber)
        app.router.add_post("/smdo/v1/packets", self._as_hub)
        app.router.add_get("/smdo/v1/parts/{sha256}", self._part)
        # Our handlers answer at once; do not wait long for clients that keep connections open.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class RunSettings:
    signer: Signer  # the test counterpart's key and certificate (SMDO-TEST)
    trust: TrustStore
    trust_path: Path
    subscriber: str | None = None  # --subscriber mode
    data: Path | None = None  # the registry's folder (SQLite), unless `db` names the storage
    db: str | None = None
    operator_cert: Path | None = None  # --subscriber mode: the hub's operator API needs an operator
    operator_key: Path | None = None
    hub_url: str | None = None
    hub_signer: Signer | None = None  # signs the conclusion
    endpoint: str | None = None  # --endpoint mode
    edms_cert: x509.Certificate | None = None
    code: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    advertise: str | None = None  # the listener's URL as the hub / EDMS reach it, when not the bound address
    timing: Timing = field(default_factory=Timing)
    actor: str = "conformance"
    settle: float = 10.0  # how long to wait for the hub to see registry changes
    adapter_url: str | None = None  # the integrator's test adapter
    pki: Path | None = None  # the certification PKI (issues the trust cases' certificates)


def tls_context(trust_path: Path, cert_path: Path | None = None, key_path: Path | None = None) -> ssl.SSLContext:
    """TLS trusting the given CAs, presenting this certificate where mTLS is asked for."""
    context = ssl.create_default_context(cadata="".join(
        c.public_bytes(Encoding.PEM).decode() for c in load_certificates(trust_path)))
    if cert_path is not None and key_path is not None:
        try:
            context.load_cert_chain(str(cert_path), str(key_path), password=ssl_key_password)
        except ssl.SSLError as exc:
            raise ValueError(f"cannot use {key_path} for TLS (OpenSSL: {exc.reason or exc}); OpenSSL takes "
                             "RSA or EC keys only: with a bign signing key give --tls-key/--tls-cert") from None
    return context


def client_session(trust_path: Path, signer: Signer, cert_path: Path | None = None,
                   key_path: Path | None = None) -> aiohttp.ClientSession:
    """HTTPS trusting the given CAs; `cert_path`/`key_path` are the suite's TLS client credentials
    (the counterpart's signing ones unless --tls-key/--tls-cert), presented where mTLS is asked for."""
    context = tls_context(trust_path, cert_path, key_path)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                 timeout=aiohttp.ClientTimeout(total=300))


async def _hub_has_seen(session: aiohttp.ClientSession, hub_url: str, version: int, wait: float) -> bool:
    """Wait until the hub's registry snapshot includes our changes (its /healthz says its version)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        try:
            async with session.get(f"{hub_url.rstrip('/')}/healthz") as r:
                if r.status == 200 and (await r.json()).get("registry_version", -1) >= version:
                    return True
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.1)
    return False


async def run_conformance(settings: RunSettings, *, progress: Callable[[str], None],
                          ask_for_document: Callable[[str], Awaitable[None]] | None = None,
                          cert_path: Path | None = None, key_path: Path | None = None,
                          listening: Callable[[str], Awaitable[None]] | None = None,
                          restart: Callable[[], Awaitable[None]] | None = None,
                          ) -> tuple[SuiteResult, Conclusion | None]:
    """Start the listener, prepare the route, run every case; store the conclusion in --subscriber mode.

    `listening(url)` is awaited once the listener is up: an --endpoint EDMS needs that URL as its hub,
    so a caller may start the EDMS there and only then fill in `settings.endpoint`. `cert_path` and
    `key_path` are the suite's TLS client credentials (not necessarily its signing ones: bign cannot do TLS).
    """
    counterpart = Counterpart(settings.signer, settings.trust)
    listener = await CounterpartListener(counterpart, settings.listen_host, settings.listen_port).start()
    suite_cert, suite_key = cert_path, key_path  # the test counterpart's own TLS identity
    parts_session: aiohttp.ClientSession | None = None
    if settings.subscriber is not None:  # the hub's operator API wants an operator's certificate
        cert_path, key_path = settings.operator_cert, settings.operator_key
        # ... but parts are uploaded as SMDO-TEST, a subscriber like any (operators may not upload)
        if suite_cert is not None and suite_key is not None:
            parts_session = client_session(settings.trust_path, settings.signer, suite_cert, suite_key)
    session = client_session(settings.trust_path, settings.signer, cert_path, key_path)
    registry: Registry | None = None
    work = tempfile.TemporaryDirectory(prefix="smdo-conformance-")
    try:
        trust_kit = await asyncio.to_thread(make_trust_kit, Path(work.name), settings.pki)
        url = (settings.advertise or listener.url).rstrip("/")
        progress(f"suite listening at {listener.url}" + (f" (reached as {url})" if settings.advertise else ""))
        if listening is not None:
            await listening(url)
        route: Route
        if settings.subscriber is not None:
            assert settings.hub_url is not None
            registry = open_registry(settings.db, settings.data)
            sub = prepare_subscriber(registry, settings.subscriber, actor=settings.actor)
            prepare_counterpart(registry, settings.signer.certificate, f"{url}/counterpart",
                                tls_certificate=load_certificate(suite_cert) if suite_cert is not None else None,
                                actor=settings.actor)
            if not await _hub_has_seen(session, settings.hub_url, registry.data_version(), settings.settle):
                progress(f"warning: the hub at {settings.hub_url} did not confirm the registry change within "
                         f"{settings.settle:.0f} s; running anyway")
            code, fingerprints, sys_id = sub.code, sub.cert_fingerprints, sub.sys_id or None
            classic = sub.profile == CLASSIC  # the hub knew it by its channel: its packets come unsigned
            by_mail = sub.delivery_mode == "pull" and bool(sub.mail_address)  # router/mail_out.py
            route = HubRoute(settings.hub_url, session, counterpart, code, sub.delivery_mode,
                             parts_session=parts_session)
        else:
            assert settings.endpoint is not None and settings.edms_cert is not None and settings.code is not None
            code, fingerprints, sys_id = settings.code, frozenset({certificate_fingerprint(settings.edms_cert)}), None
            classic = by_mail = False
            route = EndpointRoute(settings.endpoint, session, counterpart, code, fingerprints, shelf=listener.shelf)
        ctx = Context(code=code, route=route, counterpart=counterpart,
                      factory=PacketFactory(settings.signer, code), fingerprints=fingerprints, sys_id=sys_id,
                      timing=settings.timing, ask_for_document=ask_for_document, restart=restart,
                      trust_kit=trust_kit,
                      adapter=AdapterClient(settings.adapter_url, session) if settings.adapter_url else None,
                      classic=classic, receives_by_mail=by_mail)
        result = await run_suite(ctx, progress=progress)
        conclusion = None
        if registry is not None:
            conclusion = record_result(registry, result, settings.hub_signer or settings.signer, actor=settings.actor)
        return result, conclusion
    finally:
        await session.close()
        if parts_session is not None:
            await parts_session.close()
        await listener.stop()
        work.cleanup()
        if registry is not None:
            registry.close()


def code_from_certificate(cert: x509.Certificate) -> str | None:
    """The subscriber code the test PKI puts in the certificate's UID attribute, if any."""
    values = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return str(values[0].value) if values else None


def make_restart_hook(command: str, code: str) -> Callable[[], Awaitable[None]]:
    async def restart() -> None:
        line = command.format(code=shlex.quote(code))
        process = await asyncio.create_subprocess_shell(line, stdout=asyncio.subprocess.DEVNULL)
        status = await process.wait()
        if status != 0:
            click.echo(f"    restart hook exited with status {status}: {line}", err=True)
    return restart


def make_reply_hook(command: str, code: str) -> Callable[[str], Awaitable[None]]:
    """The --reply-hook: a shell command; when it fails, the case fails at once with its output."""
    async def ask(msg_id: str) -> None:
        line = command.format(msg_id=shlex.quote(msg_id), code=shlex.quote(code))
        process = await asyncio.create_subprocess_shell(line, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
        output, _ = await process.communicate()
        if process.returncode != 0:
            said = " ".join(output.decode(errors="replace").split())[-500:] or "no output"
            raise CaseFailed(f"the reply hook exited with status {process.returncode} ({said}); it ran: {line}. "
                             "Fix the hook, or send the document by hand while the suite waits")
    return ask


@click.group("conformance")
def conformance() -> None:
    """Test an EDMS against the hub's conformance suite."""


@conformance.command("run")
@click.option("--subscriber", help="Test registered subscriber CODE through the hub (certifies it on a pass).")
@click.option("--endpoint", help="Test the EDMS push endpoint at URL directly (before registration).")
@click.option("--cert", "edms_cert", help="With --endpoint: the EDMS's signing certificate (PEM).")
@click.option("--code", help="With --endpoint: the EDMS's subscriber code (default: the certificate's UID).")
@click.option("--data", "data_dir", envvar="SMDO_DATA", default="./var", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="The hub's data folder (registry).")
@click.option("--db", envvar="SMDO_DB", default=None,
              help="The hub's storage (registry): sqlite:///folder or postgresql://... [SMDO_DB; default: --data].")
@click.option("--operator-cert", envvar="SMDO_OPERATOR_CERT", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--subscriber mode: an operator's client certificate (the hub's --operator-cert).")
@click.option("--operator-key", envvar="SMDO_OPERATOR_KEY", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The operator certificate's key.")
@click.option("--hub", "hub_url", envvar="SMDO_HUB_URL", default="https://127.0.0.1:8443", show_default=True,
              help="The hub's URL (--subscriber mode).")
@click.option("--trust", envvar="SMDO_TRUST", required=True, type=click.Path(exists=True, path_type=Path),
              help="Trusted CA certificates (PEM bundle or folder).")
@click.option("--crl", "crls", multiple=True, help="CRL files (repeatable).")
@click.option("--key", "key_path", envvar="SMDO_COUNTERPART_KEY", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The test counterpart's key.")
@click.option("--counterpart-cert", "cert_path", envvar="SMDO_COUNTERPART_CERT", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The test counterpart's certificate (SMDO-TEST).")
@click.option("--tls-key", "tls_key_path", envvar="SMDO_COUNTERPART_TLS_KEY",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The suite's TLS client key, when not --key (a bign key cannot do TLS) [--key].")
@click.option("--tls-cert", "tls_cert_path", envvar="SMDO_COUNTERPART_TLS_CERT",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The suite's TLS client certificate, with --tls-key [--counterpart-cert].")
@click.option("--hub-key", envvar="SMDO_HUB_KEY", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The hub's key: signs the certification conclusion.")
@click.option("--hub-cert", envvar="SMDO_HUB_CERT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT of the suite's listener.")
@click.option("--advertise", help="The listener's URL as the hub or EDMS reach it (default: http://HOST:PORT).")
@click.option("--reply-hook", help="Shell command asking the EDMS for a document; {msg_id} and {code} filled in.")
@click.option("--adapter", "adapter_url", help="URL of the EDMS's test adapter (GET URL/cards/MSG_ID, URL/status).")
@click.option("--restart-hook", help="Shell command restarting the EDMS (kill and start); {code} filled in.")
@click.option("--pki", "pki_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The certification PKI the EDMS trusts: issues the trust cases' certificates, revokes one.")
@click.option("--large-mb", default=20.0, show_default=True, help="Size of the large attachment (MiB).")
@click.option("--part-mb", default=300.0, show_default=True,
              help="Size of the file sent beside the envelope as a part (case large-part, MiB).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report.")
@click.option("--conclusion", "conclusion_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the signed conclusion to this file.")
@click.option("--delivery-limit", default=1.0, show_default=True, help="Seconds for a delivery acknowledgement.")
@click.option("--registration-limit", default=10.0, show_default=True, help="Seconds for a registration ack.")
@click.option("--patience", default=30.0, show_default=True, help="Seconds other cases wait for an answer.")
@click.option("--document-wait", default=60.0, show_default=True, help="Seconds to wait for the EDMS's document.")
@click.option("--actor", envvar="SMDO_ACTOR", default=None, help="Who runs it (recorded in the registry history).")
def run(subscriber: str | None, endpoint: str | None, edms_cert: str | None, code: str | None, data_dir: Path,
        db: str | None, operator_cert: Path | None, operator_key: Path | None, hub_url: str, trust: Path,
        crls: tuple[str, ...], key_path: Path, cert_path: Path,
        tls_key_path: Path | None, tls_cert_path: Path | None, hub_key: Path | None,
        hub_cert: Path | None, listen: str, advertise: str | None, reply_hook: str | None, junit_path: Path | None,
        conclusion_path: Path | None, delivery_limit: float, registration_limit: float, patience: float,
        document_wait: float, actor: str | None, adapter_url: str | None, restart_hook: str | None,
        pki_dir: Path | None, large_mb: float, part_mb: float) -> None:
    """Run the conformance suite against one EDMS; exit 0 only if every case passes."""
    def fail(message: str) -> None:
        click.echo(f"error: {message}", err=True)
        sys.exit(1)

    if (subscriber is None) == (endpoint is None):
        fail("give exactly one of --subscriber CODE (through the hub) or --endpoint URL (directly)")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--listen must be HOST:PORT, not {listen!r}")
    if (tls_key_path is None) != (tls_cert_path is None):
        fail("give both --tls-key and --tls-cert, or neither (TLS then uses --key/--counterpart-cert)")
    try:
        tls_context(trust, tls_cert_path or cert_path, tls_key_path or key_path)  # a clear error now, not mid-run
        signer = Signer.from_files(key_path, cert_path)
        store = TrustStore.from_paths(trust, crls)
        hub_signer = Signer.from_files(hub_key, hub_cert) if hub_key and hub_cert else None
        settings = RunSettings(signer=signer, trust=store, trust_path=trust, listen_host=host, listen_port=int(port),
                               advertise=advertise,
                               timing=Timing(delivery=delivery_limit, registration=registration_limit,
                                             patience=patience, document=document_wait,
                                             large_bytes=int(large_mb * 1024 * 1024),
                                             part_bytes=int(part_mb * 1024 * 1024)),
                               actor=actor or default_actor(), adapter_url=adapter_url, pki=pki_dir)
        if subscriber is not None:
            if hub_signer is None:
                fail("--subscriber mode signs a certification conclusion: give --hub-key and --hub-cert")
            if operator_cert is None or operator_key is None:
                fail("--subscriber mode injects test packets through the hub's operator API: give "
                     "--operator-cert and --operator-key (a certificate the hub lists with --operator-cert)")
            settings.subscriber, settings.data, settings.db, settings.hub_url, settings.hub_signer = (
                subscriber, data_dir, db, hub_url, hub_signer)
            settings.operator_cert, settings.operator_key = operator_cert, operator_key
            target = subscriber
        else:
            if edms_cert is None:
                fail("--endpoint needs --cert: the EDMS's signing certificate")
            settings.endpoint, settings.edms_cert = endpoint, load_certificate(edms_cert)
            settings.code = code or code_from_certificate(settings.edms_cert)
            if not settings.code:
                fail("give --code: the EDMS's subscriber code (its certificate has no UID attribute)")
            target = settings.code
    except (OSError, ValueError) as exc:
        fail(str(exc))

    async def listening(url: str) -> None:
        if endpoint is not None:
            click.echo(f"point the EDMS's hub URL at {url} (it sends its acknowledgements and documents there)")

    hook = make_reply_hook(reply_hook, target) if reply_hook else None
    restart = make_restart_hook(restart_hook, target) if restart_hook else None
    try:
        result, conclusion = asyncio.run(run_conformance(
            settings, progress=click.echo, ask_for_document=hook,
            cert_path=tls_cert_path or cert_path, key_path=tls_key_path or key_path,
            listening=listening, restart=restart))
    except (RegistryError, StorageError, ValueError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("error: interrupted; no conclusion was stored", err=True)
        sys.exit(130)
    click.echo("")
    click.echo(table(result))
    if junit_path is not None:
        junit_path.write_bytes(junit_xml(result))
        click.echo(f"JUnit report: {junit_path}")
    if conclusion_path is not None:
        document = conclusion.document if conclusion else conclusion_xml(result, settings.hub_signer or signer)
        conclusion_path.write_bytes(document)
        click.echo(f"signed conclusion: {conclusion_path}")
    if conclusion is not None:
        click.echo(f"conclusion {conclusion.id} stored in the registry; {result.subscriber} is now "
                   f"{_status(settings, result.subscriber)}")
    sys.exit(0 if result.passed else 1)


def _status(settings: RunSettings, code: str) -> str:
    with open_registry(settings.db, settings.data) as registry:
        return registry.require(code).status.value


@conformance.command("conclusion")
@click.argument("code")
@click.option("--data", "data_dir", envvar="SMDO_DATA", default="./var", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="The hub's data folder (registry).")
@click.option("--db", envvar="SMDO_DB", default=None,
              help="The hub's storage (registry): sqlite:///folder or postgresql://... [SMDO_DB; default: --data].")
@click.option("--trust", envvar="SMDO_TRUST", type=click.Path(exists=True, path_type=Path),
              help="Also check the signer chains to these CAs.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the signed conclusion XML here.")
def conclusion_command(code: str, data_dir: Path, db: str | None, trust: Path | None, output: Path | None) -> None:
    """Show (and verify) the latest conformance conclusion stored for subscriber CODE."""
    from signing.errors import SignatureError
    from smdo.conformance.conclusion import read_conclusion
    from smdo.errors import PacketRejected

    def fail(message: str) -> None:
        click.echo(f"error: {message}", err=True)
        sys.exit(1)

    try:
        with open_registry(db, data_dir) as registry:
            registry.require(code)
            stored = registry.latest_conclusion(code)
    except (RegistryError, StorageError, ValueError) as exc:
        fail(str(exc))
    if stored is None:
        fail(f"subscriber {code} has no conformance conclusion: run `smdo conformance run --subscriber {code}`")
    try:
        root = read_conclusion(stored.document)
        if trust is not None:
            from signing.xmldsig import verify_enveloped
            TrustStore.from_paths(trust).validate(verify_enveloped(root).certificate)
    except (SignatureError, PacketRejected) as exc:
        fail(f"the stored conclusion {stored.id} does not verify: {exc}")
    summary = root.find("Summary")
    click.echo(f"conclusion {stored.id} for {code}: {root.get('result')}, suite {root.get('suite_version')}, "
               f"{root.get('started')} .. {root.get('finished')}; signature verified")
    click.echo(f"route: {root.findtext('Route')}")
    click.echo(", ".join(f"{key} {summary.get(key)}" for key in ("total", "passed", "failed", "skipped", "errors")))
    for case in root.iterfind("Cases/Case"):
        click.echo(f"  {case.get('name'):<20} {case.get('outcome'):<8} {case.text or ''}")
    if output is not None:
        output.write_bytes(stored.document)
        click.echo(f"signed conclusion written to {output}")
