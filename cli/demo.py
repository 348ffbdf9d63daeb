"""The demo: a hub and four agencies' EDMS on this machine, exchanging documents.

    python -m cli.demo [--keep-running] [--data var/demo] [--timeout 90] [--key-type rsa|ec|bign]

On a bare machine it creates the test PKI, starts the hub (`smdo serve`, HTTPS, and the mail route)
and four emulated EDMS (`smdo edms run ...`: Rekord-, SMBusiness- and Directum-style over HTTPS, and
a LAIS-style classic client over e-mail: unsigned envelopes with signed files, the router's
acknowledgements) as subprocesses on loopback,
registers them as active subscribers, sends documents in every direction (a reply, a task, a
supplement, a multi-receiver document and one document the receiver refuses), shows each packet's
progress, and ends with a table of every packet's life. It exits 0 when every packet reached the
final state it should, non-zero otherwise.

With --key-type bign every party signs with bign (national cryptography) and, since OpenSSL has
no bign, talks TLS with a second, EC certificate "CODE-tls" from the bign PKI's TLS CA; the
registry binds both of an agency's certificates.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import aiohttp

from cli.tables import table
from edms_adapters.adapter import Attachment, Party, RegistrationCard, SupplementRef, TaskInfo
from edms_adapters.hub_client import client_ssl_context
from edms_adapters.kinds import adapter_for
from signing.pki import KEY_TYPES, PkiLayout, init_pki, issue_certificate
from smdo.registry import Registry, SubscriberStatus
from smdo.unp import make_unp

ROOT = Path(__file__).resolve().parent.parent
HUB_CODE = "HUB"
OPERATOR_CODE = "OPERATOR"  # the operator's TLS client certificate (smdo serve --operator-cert)
MARKER = ".smdo-demo"


@dataclass
class Agency:
    kind: str
    code: str
    name: str
    unp_prefix: str
    extra_args: tuple[str, ...] = ()
    mail_address: str = ""  # a classic client, exchanging by mail
    url: str = ""
    push_url: str | None = None
    process: subprocess.Popen | None = None

    @property
    def label(self) -> str:
        return f"{self.code} ({self.kind})"


AGENCIES = (
    Agency("rekord", "MINEK", "Ministry of Economy", "19000010"),
    Agency("smbusiness", "MINFIN", "Ministry of Finance", "19000020"),
    # The committee does not take citizens' appeals (kind 10): the demo's refused document.
    Agency("directum", "GOSKOM", "State Committee for Standardisation", "19000030",
           ("--refuse-kind", "10")),
    # A classic SMDO client (ЛАИС.СМДО-style): the mail route, unsigned envelopes, router acks.
    Agency("laiss", "SELSOVET", "Village Council of Example", "19000040", mail_address="smdo@selsovet.demo"),
)
HUB_MAIL = "smdo@hub.demo"


def free_port() -> int:
    """A free loopback port (the hub's mail server and the classic client's must be known up front)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Packet:
    """One document the demo sends, and what it expects at the end for each receiver."""

    label: str
    what: str
    sender: Agency
    card: RegistrationCard
    expect: dict[str, str]  # receiver code -> final state
    reply_to: str | None = None  # label of the packet this replies to
    msg_id: str = ""
    idnumber: str = ""
    states: dict[str, dict] = field(default_factory=dict)  # the sender's view, per receiver
    hub_states: dict[str, str] = field(default_factory=dict)  # the hub journal's, per receiver
    seen: set[tuple[str, str]] = field(default_factory=set)


# ------------------------------------------------------------------------------- set-up


def make_pki(directory: Path, key_type: str = "rsa") -> PkiLayout:
    pki = init_pki(directory, key_type=key_type)
    hosts = ("127.0.0.1", "localhost")
    for code, name in ((HUB_CODE, "SMDO hub"), *((a.code, a.name) for a in AGENCIES)):
        if pki.has_tls_ca:  # bign signs; TLS needs a separate EC certificate from the TLS CA
            issue_certificate(directory, code, name, key_type=key_type)
            issue_certificate(directory, tls_code(pki, code), name, key_type="ec", tls_hostnames=hosts)
        else:
            issue_certificate(directory, code, name, key_type=key_type, tls_hostnames=hosts)
    # The operator reads transactions and /metrics: a TLS client certificate (EC from the TLS CA on bign).
    issue_certificate(directory, OPERATOR_CODE, "SMDO operator",
                      **(dict(key_type="ec", tls_hostnames=hosts) if pki.has_tls_ca else {}))
    return pki


def tls_code(pki: PkiLayout, code: str) -> str:
    """Whose key and certificate `code` uses for TLS: its own, or on a bign PKI its "CODE-tls" pair."""
    return f"{code}-tls" if pki.has_tls_ca else code


def key_args(pki: PkiLayout, code: str) -> list[str]:
    """--key/--cert (signing), plus --tls-key/--tls-cert when TLS needs other credentials."""
    args = ["--key", str(pki.key_path(code)), "--cert", str(pki.cert_path(code))]
    if tls_code(pki, code) != code:
        args += ["--tls-key", str(pki.key_path(tls_code(pki, code))),
                 "--tls-cert", str(pki.cert_path(tls_code(pki, code)))]
    return args


def valid_unp(first_eight: str) -> str:
    """The first valid UNP at or after `first_eight` (one in eleven prefixes has no check digit)."""
    for n in range(int(first_eight), int(first_eight) + 20):
        try:
            return make_unp(str(n))
        except ValueError:
            continue
    raise RuntimeError(f"no valid UNP near {first_eight}")


def register_subscribers(data: Path, pki: PkiLayout) -> None:
    registry = Registry(data / "registry.db")
    try:
        for a in AGENCIES:
            registry.add_subscriber(
                a.code, name=a.name, unp=valid_unp(a.unp_prefix),
                # The signing certificate, and the TLS one the mailbox identifies the agency by.
                certificates=[pki.certificate(c) for c in dict.fromkeys((a.code, tls_code(pki, a.code)))],
                push_url=a.push_url, pull=a.push_url is None,
                edms_product=adapter_for(a.kind).product, status=SubscriberStatus.ACTIVE,
                actor="demo", reason="demo set-up", ack_dialect=adapter_for(a.kind).ack_dialect,
                profile=adapter_for(a.kind).profile, mail_address=a.mail_address or None,
            )
    finally:
        close = getattr(registry, "close", None)
        if close:
            close()


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the demo dies without stopping us (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        # Own session: Ctrl-C in the terminal reaches only the demo, which stops the children in
        # order; if the demo itself dies, the children follow it instead of lingering.
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True, preexec_fn=_die_with_parent,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for_line(proc: subprocess.Popen, log: Path, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if match := regex.search(text):
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[3:5]} exited with {proc.returncode}; see {log}:\n{text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"no {pattern!r} in {log} after {timeout:.0f} s")


def stop_all(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------- scenario


def scenario() -> list[Packet]:
    rek, smb, dir_, lais = AGENCIES
    today = date.today()

    def party(a: Agency, person: str = "", post: str = "") -> Party:
        return Party(a.name, a.code, person, post)

    def card(a: Agency, n: int, title: str, kind: str, to: tuple[Agency, ...], **more) -> RegistrationCard:
        return RegistrationCard(
            idnumber=f"{a.code}-doc-{n}", number=f"{a.code}/{today.year}-{n:03d}", date=today,
            title=title, kind=kind, author=party(a, "I. Executor", "Specialist"),
            signer=party(a, "P. Head", "Head"), addressees=tuple(party(t) for t in to),
            files=(Attachment(f"doc-{n}.txt", f"{title}\n".encode(), "text/plain", "text"),),
            pages=1, **more,
        )

    registered = "registered"
    c = card(dir_, 3, "Request for the 2026 standards plan", "11", (rek,))
    return [
        Packet("A", "letter", rek, card(rek, 1, "On the joint working group", "01", (smb,)),
               {smb.code: registered}),
        Packet("B", "multi-receiver order", smb,
               card(smb, 2, "Order on budget reporting dates", "02", (dir_, rek)),
               {dir_.code: registered, rek.code: registered}),
        Packet("C", "request", dir_, c, {rek.code: registered}),
        Packet("D", "task", rek,
               card(rek, 4, "Prepare comments on the draft", "15", (dir_,),
                    task=TaskInfo(f"T-{today.year}/4", today, "Send comments within ten days",
                                  None, party(dir_, "S. Responsible", "Deputy Chairman"))),
               {dir_.code: registered}),
        Packet("E", "reply to A", smb,
               card(smb, 5, "Reply: we nominate two members", "12", ()),
               {rek.code: registered}, reply_to="A"),
        Packet("F", "supplement to C", dir_,
               card(dir_, 6, "Annex to the request", "11", (rek,),
                    supplement=SupplementRef(c.idnumber, c.number, c.date, False, 0,
                                             "The annex that was missing")),
               {rek.code: registered}),
        Packet("G", "citizen's appeal (refused)", rek,
               card(rek, 7, "Forwarded citizen's appeal", "10", (dir_,)),
               {dir_.code: "refused"}),
        Packet("H", "letter", dir_, card(dir_, 8, "Invitation to the standards council", "01", (smb,)),
               {smb.code: registered}),
        Packet("I", "letter by mail", lais, card(lais, 9, "On road repairs in the village", "01", (rek,)),
               {rek.code: registered}),
        Packet("J", "letter to a mail client", dir_, card(dir_, 10, "Standards seminar for councils", "01", (lais,)),
               {lais.code: registered}),
    ]


class Demo:
    def __init__(self, data: Path, timeout: float, key_type: str = "rsa") -> None:
        self.data = data
        self.timeout = timeout
        self.key_type = key_type
        self.processes: list[subprocess.Popen] = []
        self.hub_url = ""
        self.started = time.monotonic()
        self.packets = scenario()

    def say(self, text: str) -> None:
        try:
            print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)
        except BrokenPipeError:  # e.g. piped into `head`: keep going, and still stop cleanly
            pass

    # -- set-up ---------------------------------------------------------------------------
    def set_up(self) -> None:
        marker = self.data / MARKER
        if self.data.exists() and any(self.data.iterdir()):
            # Only ever empty a folder an earlier demo made: --data might point anywhere.
            if not marker.exists():
                raise RuntimeError(f"{self.data} is not empty and was not made by the demo; "
                                   "choose another --data folder")
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True, exist_ok=True)
        marker.write_text("made by python -m cli.demo; emptied on each run\n")
        self.say(f"creating the {self.key_type} test PKI in {self.data / 'pki'} "
                 f"(root CA -> issuing CA -> hub, {len(AGENCIES)} agencies)")
        self.pki = make_pki(self.data / "pki", self.key_type)
        hub_mail_port, agency_mail_port = free_port(), free_port()
        self.say(f"starting the hub (smdo serve, HTTPS on a free port, SMTP on {hub_mail_port})")
        log = self.data / "hub.log"
        hub = start([
            sys.executable, "-m", "cli.main", "serve", "--data", str(self.data / "hub"),
            "--host", "127.0.0.1", "--port", "0", *key_args(self.pki, HUB_CODE), "--trust", str(self.pki.trust_dir),
            "--operator-cert", str(self.pki.cert_path(OPERATOR_CODE)), "--hub-code", HUB_CODE, "--retry-base", "0.2s", "--retry-max", "2s",
            "--delivery-deadline", f"{int(self.timeout)}s", "--mailbox-visibility", "5s",
            "--mail-port", str(hub_mail_port), "--mail-address", HUB_MAIL,
            # The classic agency's own mail server stands for the agencies' mail relay here.
            "--smtp-relay", f"127.0.0.1:{agency_mail_port}",
        ], log)
        self.processes.append(hub)
        self.hub_url = wait_for_line(hub, log, r"smdo-hub listening on (\S+)", 30).group(1)
        self.say(f"  hub up at {self.hub_url}")
        for a in AGENCIES:
            self.say(f"starting {a.kind}-style EDMS for {a.code} ({a.name})")
            mail_args = ("--mail-address", a.mail_address, "--mail-port", str(agency_mail_port), "--hub-mail",
                         HUB_MAIL, "--hub-smtp", f"127.0.0.1:{hub_mail_port}") if a.mail_address else ()
            a.process = start([
                sys.executable, "-m", "cli.main", "edms", "run", a.kind, "--code", a.code,
                "--name", a.name, "--hub", self.hub_url, "--data", str(self.data / "edms" / a.code),
                *key_args(self.pki, a.code), "--trust", str(self.pki.trust_dir), *a.extra_args, *mail_args,
            ], self.data / f"edms-{a.code}.log")
            self.processes.append(a.process)
        for a in AGENCIES:
            log = self.data / f"edms-{a.code}.log"
            ready = json.loads(wait_for_line(a.process, log, r"READY (\{.*\})", 30).group(1))
            a.url, a.push_url = ready["url"], ready["push_url"]
            how = f"push to {a.push_url}" if a.push_url else \
                f"by mail as {a.mail_address} (classic profile, router acks)" if a.mail_address else \
                "pulls from the hub mailbox"
            self.say(f"  {a.code} up at {a.url} ({how})")
        self.say(f"registering the {len(AGENCIES)} agencies as active subscribers")
        register_subscribers(self.data / "hub", self.pki)
        self.wait_until_hub_knows_everyone()

    def wait_until_hub_knows_everyone(self, timeout: float = 30.0) -> None:
        """The hub reloads its registry when it changes; its signed directory shows when it has."""
        context = client_ssl_context(trust=self.pki.trust_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{self.hub_url}/smdo/v1/directory", context=context) as r:
                directory = r.read().decode()
            if all(f'"{a.code}"' in directory for a in AGENCIES):
                self.say(f"  the hub's directory lists all {len(AGENCIES)}")
                return
            time.sleep(0.2)
        raise RuntimeError("the hub did not pick up the registered subscribers")

    # -- sending --------------------------------------------------------------------------
    async def run(self) -> bool:
        # As the hub's operator: the transaction status of every packet is for operators (and parties).
        ssl_context = client_ssl_context(trust=self.pki.trust_dir, cert=self.pki.cert_path(OPERATOR_CODE),
                                         key=self.pki.key_path(OPERATOR_CODE))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context)) as http:
            self.http = http
            for packet in self.packets:
                if packet.reply_to is None:
                    await self.create(packet)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                await self.poll()
                for packet in self.packets:
                    if packet.reply_to and not packet.idnumber:
                        await self.maybe_reply(packet)
                if all(self.finished(p) for p in self.packets):
                    await self.read_hub_journal()
                    return all(self.as_expected(p) for p in self.packets)
                await asyncio.sleep(0.3)
            self.say(f"time limit of {self.timeout:.0f} s reached")
            return False

    async def create(self, packet: Packet, url: str | None = None) -> None:
        adapter = adapter_for(packet.sender.kind)
        body = adapter.dump(adapter.from_card(packet.card))
        async with self.http.post(url or f"{packet.sender.url}/api/documents", data=body) as resp:
            answer = await resp.json()
            if resp.status not in (201, 202):
                raise RuntimeError(f"{packet.sender.code} refused packet {packet.label}: {answer}")
        packet.idnumber = answer["idnumber"]
        to = ", ".join(packet.expect)
        self.say(f"{packet.label}: {packet.sender.code} created {packet.what} "
                 f"{packet.card.title!r} for {to}")

    async def maybe_reply(self, packet: Packet) -> None:
        """A reply can be written once its original is registered at the replying agency."""
        original = next(p for p in self.packets if p.label == packet.reply_to)
        if not original.msg_id:
            return
        received = await self.documents(packet.sender, "received")
        if any(d["msg_id"] == original.msg_id and d["status"] == "registered" for d in received):
            await self.create(packet, f"{packet.sender.url}/api/documents/{original.msg_id}/reply")

    async def documents(self, agency: Agency, direction: str) -> list[dict]:
        async with self.http.get(f"{agency.url}/api/documents", params={"direction": direction}) as r:
            return (await r.json())["documents"]

    async def poll(self) -> None:
        sent = {a.code: await self.documents(a, "sent") for a in AGENCIES}
        for packet in self.packets:
            if not packet.idnumber:
                continue
            doc = next((d for d in sent[packet.sender.code] if d["idnumber"] == packet.idnumber), None)
            if doc is None:
                continue
            packet.msg_id = doc["msg_id"]
            for delivery in doc["deliveries"]:
                packet.states[delivery["receiver"]] = delivery
                for step in delivery["history"]:
                    key = (delivery["receiver"], step["state"])
                    if key not in packet.seen:
                        packet.seen.add(key)
                        self.say(f"{packet.label}: {packet.sender.code} -> {delivery['receiver']}: "
                                 f"{describe(step)}")

    async def read_hub_journal(self) -> None:
        """The hub's own record of each packet (GET /smdo/v1/transactions/{msg_id}), per receiver."""
        for packet in self.packets:
            async with self.http.get(f"{self.hub_url}/smdo/v1/transactions/{packet.msg_id}") as r:
                view = await r.json() if r.status == 200 else {}
            packet.hub_states = {d["receiver"]: d["state"] for d in view.get("deliveries", [])}

    def finished(self, packet: Packet) -> bool:
        return bool(packet.states) and all(
            packet.states.get(r, {}).get("state") in FINAL for r in packet.expect)

    def as_expected(self, packet: Packet) -> bool:
        return all(self.as_expected_one(packet, r) for r in packet.expect)

    # -- the end --------------------------------------------------------------------------
    def table(self) -> str:
        rows = []
        for packet in self.packets:
            receivers = list(packet.expect)
            for receiver in receivers:
                delivery = packet.states.get(receiver, {})
                times = {s["state"]: s for s in delivery.get("history", [])}
                first = times.get("created", {}).get("at")

                def after(state: str) -> str:
                    step = times.get(state)
                    if step is None or first is None:
                        return "-"
                    return f"+{seconds_between(first, step['at']):.2f}s"

                rows.append((
                    packet.label, packet.what, packet.sender.label, receiver,
                    first[11:23] if first else "-", after("accepted"), after("delivered"),
                    packet.hub_states.get(receiver, "-"), final_text(delivery) + ("" if self.as_expected_one(packet, receiver) else "  << UNEXPECTED"),
                ))
        return table(["pkt", "what", "from", "to", "created", "accepted (100)", "delivered (101)",
                      "hub journal", "final (as the sender sees it)"], rows)

    def as_expected_one(self, packet: Packet, receiver: str) -> bool:
        """The sender saw the expected final state, and the hub's journal says the same."""
        expected = packet.expect[receiver]
        return (packet.states.get(receiver, {}).get("state") == expected
                and packet.hub_states.get(receiver) == expected)


FINAL = {"registered", "refused", "not-registrable", "untrusted", "not-delivered", "rejected"}


def seconds_between(a: str, b: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def describe(step: dict) -> str:
    state = step["state"]
    if state == "accepted":
        return "accepted by the hub (100)"
    if state == "delivered":
        return "delivered (101)"
    if state == "registered":
        return f"registered with number {step.get('number', '?')}"
    if state == "created":
        return "created and signed"
    return f"{state}: {step.get('reason', '')}"


def final_text(delivery: dict) -> str:
    state = delivery.get("state", "not seen")
    if state == "registered":
        return f"registered as {delivery.get('number')}"
    if state in FINAL:  # the reason is the answer's own text, e.g. "registration refused: ..."
        return (delivery.get("reason") or state)[:120]
    return f"still {state}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the hub and the EDMS running after the scenario")
    parser.add_argument("--data", type=Path, default=Path("var/demo"),
                        help="demo data folder, emptied first (default: var/demo)")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds every packet has to reach its final state (default: 90)")
    parser.add_argument("--key-type", choices=KEY_TYPES, default="rsa",
                        help="the test PKI's keys: rsa, ec, or bign (national; TLS then uses EC) (default: rsa)")
    args = parser.parse_args(argv)
    demo = Demo(args.data.resolve(), args.timeout, args.key_type)
    ok = False
    try:
        demo.set_up()
        ok = asyncio.run(demo.run())
        print()
        print(demo.table())
        print()
        print("every packet reached its final state" if ok else "NOT every packet reached its expected final state")
        if args.keep_running:
            keep_running(demo)
    except KeyboardInterrupt:
        print("interrupted")
    except (RuntimeError, OSError, aiohttp.ClientError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
    finally:
        demo.say("stopping the hub and the EDMS")
        stop_all(demo.processes)
        demo.say("stopped")
    return 0 if ok else 1


def keep_running(demo: Demo) -> None:
    print("\nEverything is still running (Ctrl-C to stop):")
    print(f"  hub             {demo.hub_url}   (GET /healthz; as operator /metrics, /smdo/v1/transactions/MSG_ID)")
    print(f"  e.g.  curl --cacert {demo.pki.ca_bundle_path} --cert {demo.pki.cert_path(OPERATOR_CODE)} "
          f"--key {demo.pki.key_path(OPERATOR_CODE)} {demo.hub_url}/metrics")
    for a in AGENCIES:
        print(f"  {a.code:<8} {a.kind:<11} {a.url}/api/documents")
    print(f"  data folder     {demo.data}  (pki/, hub/, edms/<CODE>/, *.log)")
    print(f"  e.g.  curl --cacert {demo.pki.ca_bundle_path} {AGENCIES[0].url}/api/documents")
    print(f"  SMBusiness exchange folders: {demo.data / 'edms' / AGENCIES[1].code / 'outbox'} and .../inbox")
    try:
        while all(p.poll() is None for p in demo.processes):
            time.sleep(1)
        print("a process stopped; shutting down")
    except KeyboardInterrupt:
        print()


if __name__ == "__main__":
    sys.exit(main())
