"""How the suite's packets reach the EDMS under test, and how their delivery is confirmed.

`HubRoute` (--subscriber): packets go through the hub like anyone's; the hub's 101 tells the suite
the EDMS answered with a valid delivery acknowledgement. The hub refuses tampered, schema-invalid
and repeated packets at its door, so those are handed to the hub's operator API (an operator's
client certificate), which journals them as the test counterpart's traffic: the hub carries them to
the EDMS by push or mailbox, exactly as it carries everything else, and routes the EDMS's answers
back. The suite never opens the hub's database.

`EndpointRoute` (--endpoint): the suite plays the hub and POSTs straight to the EDMS's push
endpoint; the EDMS's answer is its own delivery acknowledgement, checked here.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import aiohttp

from smdo import packet as p
from smdo.conformance.counterpart import Counterpart, Received, describe
from smdo.conformance.packets import Outgoing
from smdo.conformance.parts import PartFile, Shelf
from smdo.dialects import is_delivery_confirmation
from smdo.errors import ErrorCode


class RouteError(Exception):
    """The suite could not hand a packet over at all (the hub refused it, or is unreachable)."""


class PartRefused(RouteError):
    """The hub refused a part the suite uploaded; `status` is its HTTP status (400: not its digest)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Confirmation:
    ok: bool  # a valid delivery acknowledgement came back
    seconds: float | None  # how long after sending
    reason: str = ""  # what was wrong, when not ok


class Route(Protocol):
    description: str
    checks_parts: bool  # the hub stands between: it takes a part only if its bytes are its digest

    async def send(self, out: Outgoing) -> None: ...
    async def upload_part(self, part: PartFile, *, named: str | None = None) -> None: ...
    async def send_unchecked(self, out: Outgoing, *, repeat: bool = False) -> None: ...
    async def confirmation(self, msg_id: str, wait: float, *, repeat: bool = False) -> Confirmation: ...
    async def refusals(self, sender: str, since: float) -> list[str]: ...


class EndpointRoute:
    """Straight to the EDMS's push endpoint; its HTTP answer is its delivery acknowledgement."""

    def __init__(self, url: str, session: aiohttp.ClientSession, counterpart: Counterpart, receiver: str,
                 fingerprints: frozenset[str], shelf: Shelf | None = None) -> None:
        self.url = url
        self.session = session
        self.counterpart = counterpart
        self.receiver = receiver
        self.fingerprints = fingerprints
        self.description = f"directly to the push endpoint {url}"
        self._answers: dict[str, list[Confirmation]] = {}
        self.shelf = shelf
        self.checks_parts = False

    async def upload_part(self, part: PartFile, *, named: str | None = None) -> None:
        """The suite plays the hub: its listener serves the part (GET /smdo/v1/parts/{sha256}).
        `named`: serve these bytes under another digest (a part whose bytes are not its name)."""
        if self.shelf is None:
            raise RouteError("this run's listener serves no parts")
        self.shelf.put(named or part.digest, part)

    async def send(self, out: Outgoing) -> None:
        start = time.monotonic()
        try:
            async with self.session.post(self.url, data=out.raw, headers={"Content-Type": "application/xml"}) as r:
                status, body = r.status, await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._answers.setdefault(out.msg_id, []).append(
                Confirmation(False, None, f"cannot reach the push endpoint {self.url}: {exc or type(exc).__name__}"))
            return
        seconds = time.monotonic() - start
        self._answers.setdefault(out.msg_id, []).append(self._judge(out.msg_id, status, body, seconds))

    async def send_unchecked(self, out: Outgoing, *, repeat: bool = False) -> None:
        await self.send(out)  # nobody stands between the suite and the endpoint

    def _judge(self, msg_id: str, status: int, body: bytes, seconds: float) -> Confirmation:
        if status != 200:
            text = body[:300].decode("utf-8", "replace")
            return Confirmation(False, seconds, f"the endpoint answered HTTP {status} ({text}), not 200 with a "
                                                "delivery acknowledgement")
        return _confirmation(self.counterpart.check(body), msg_id, self.receiver, self.fingerprints, seconds)

    async def confirmation(self, msg_id: str, wait: float, *, repeat: bool = False) -> Confirmation:
        answers = self._answers.get(msg_id) or [Confirmation(False, None, "nothing was sent")]
        return answers[-1]

    async def refusals(self, sender: str, since: float) -> list[str]:
        return []  # the suite itself is the hub here: whatever the EDMS sent is in the counterpart's inbox


def _confirmation(answer: Received, msg_id: str, receiver: str, fingerprints: frozenset[str],
                  seconds: float) -> Confirmation:
    """Is `answer` the receiver's valid, signed delivery acknowledgement (101) of `msg_id`?"""
    if answer.header is None or answer.acknowledgement is None:
        return Confirmation(False, seconds, f"the answer is not an acknowledgement: {describe(answer.problems)}")
    if answer.problems:
        return Confirmation(False, seconds, f"the delivery acknowledgement fails the checks: "
                                            f"{describe(answer.problems)}")
    ack = answer.acknowledgement
    if ack.ack_type != p.ACK_DELIVERY or ack.msg_id != msg_id:
        return Confirmation(False, seconds, f"expected a delivery acknowledgement (ack_type 1) of {msg_id}, got "
                                            f"ack_type {ack.ack_type} of {ack.msg_id}")
    if answer.header.sender_id != receiver:
        return Confirmation(False, seconds, f"the acknowledgement's Sender@id is {answer.header.sender_id}, "
                                            f"not {receiver}")
    if answer.signer_fingerprint not in fingerprints:
        return Confirmation(False, seconds, "the acknowledgement is signed with a certificate that is not "
                                            f"{receiver}'s registered one (sha256 {answer.signer_fingerprint})")
    codes = [r.errorcode for r in ack.results]
    if not is_delivery_confirmation(ack.ack_type, codes):  # 101, or 0 in the router dialect
        return Confirmation(False, seconds, f"the acknowledgement carries codes {codes}, not 101 (delivered)")
    return Confirmation(True, seconds)


class HubRoute:
    """Through the hub, as the test counterpart SMDO-TEST. `session` presents an operator's client
    certificate: what the ingress would refuse goes in through the hub's operator API, so only the
    hub writes its journal (and any node of a cluster will do)."""

    def __init__(self, hub_url: str, session: aiohttp.ClientSession, counterpart: Counterpart, receiver: str,
                 receiver_mode: str, *, check_every: float = 1.0,
                 parts_session: aiohttp.ClientSession | None = None) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.session = session
        # The test counterpart's own TLS identity: a part is uploaded like any subscriber's (an
        # operator's certificate may not), and the envelope naming it must come from its uploader.
        self.parts_session = parts_session
        self.checks_parts = True
        self.counterpart = counterpart
        self.receiver = receiver
        self.receiver_mode = receiver_mode
        self.check_every = check_every
        self.description = f"through the hub {self.hub_url} ({receiver} receives by {receiver_mode})"
        self._sent_at: dict[str, float] = {}
        self._repeats: dict[str, str] = {}

    async def send(self, out: Outgoing) -> None:
        self._sent_at[out.msg_id] = time.monotonic()
        try:
            async with self.session.post(f"{self.hub_url}/smdo/v1/packets", data=out.raw,
                                         headers={"Content-Type": "application/xml"}) as r:
                status, body = r.status, await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RouteError(f"cannot reach the hub at {self.hub_url}: {exc or type(exc).__name__}") from None
        if status != 200:
            raise RouteError(f"the hub refused the suite's packet {out.msg_id} (HTTP {status}): "
                             f"{_answer_text(self.counterpart, body)}")

    async def upload_part(self, part: PartFile, *, named: str | None = None) -> None:
        """PUT the part to the hub as SMDO-TEST, streamed; the hub checks its digest as it arrives."""
        if self.parts_session is None:
            raise RouteError("no TLS client certificate of the test counterpart to upload parts with")
        digest = named or part.digest
        url = f"{self.hub_url}/smdo/v1/parts/{digest}"

        async def body():  # type: ignore[no-untyped-def]
            for chunk in part.chunks():
                yield chunk

        try:
            async with self.parts_session.put(url, data=body(), timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
                                              headers={"Content-Type": "application/octet-stream"}) as r:
                status, text = r.status, (await r.text())[:300]
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RouteError(f"cannot upload part {digest} to the hub: {exc or type(exc).__name__}") from None
        if status not in (200, 201):
            raise PartRefused(f"the hub refused the suite's part {digest} (HTTP {status}): {text}", status)

    async def send_unchecked(self, out: Outgoing, *, repeat: bool = False) -> None:
        """Have the hub carry the packet unchecked, as from the test counterpart (operator API).

        A repeat goes in under its own journal id (the journal keeps one transaction per msg_id)
        but with the same bytes, so the EDMS sees the same msg_id again, as after a lost ack.
        """
        journal_id = out.msg_id
        if repeat:
            journal_id = f"{out.msg_id}-repeat-{len(self._repeats) + 1}"
            self._repeats[out.msg_id] = journal_id
        self._sent_at[journal_id] = time.monotonic()
        # No 101/102 back for a repeat: the EDMS rightly acknowledges the original msg_id, which
        # the hub cannot match to the repeat's journal id, so it keeps offering it until expiry.
        params = {"receiver": self.receiver, "journal_id": journal_id, "msg_type": str(out.envelope.header.msg_type),
                  "acknow": "0" if repeat else "2", "deadline": "15" if repeat else "600"}
        await self._operator("POST", "inject", params=params, data=out.raw,
                             headers={"Content-Type": "application/xml"})

    async def refusals(self, sender: str, since: float) -> list[str]:
        """What the hub refused from `sender` since `since` (wall clock), with the codes it answered."""
        found = await self._operator("GET", "transactions", params={
            "sender": sender, "since": repr(since), "state": "rejected", "limit": "1000"})
        return [f"msg {v.get('msg_id') or '(unreadable)'} refused with code(s) {', '.join(map(str, v['codes']))}"
                for v in found["transactions"]]

    async def _operator(self, method: str, call: str, **kwargs: object) -> dict:
        """One call of the hub's operator API; RouteError naming what went wrong."""
        url = f"{self.hub_url}/smdo/v1/operator/{call}"
        try:
            async with self.session.request(method, url, **kwargs) as r:  # type: ignore[arg-type]
                if r.status in (401, 403):
                    raise RouteError(f"the hub refused its operator API ({r.status}: {(await r.text()).strip()}): "
                                     "run the suite with an operator's certificate (--operator-cert/--operator-key)")
                if r.status != 200:
                    raise RouteError(f"the hub's operator API {call} answered {r.status}: {(await r.text()).strip()}")
                return await r.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise RouteError(f"cannot reach the hub's operator API at {url}: {exc or type(exc).__name__}") from None

    async def confirmation(self, msg_id: str, wait: float, *, repeat: bool = False) -> Confirmation:
        if repeat:
            return await self._repeat_answered(msg_id, wait)
        start = self._sent_at.get(msg_id, time.monotonic())
        deadline = start + wait

        def hub_101(r: Received) -> bool:
            return (r.header is not None and not r.problems and r.acknowledges(msg_id, p.ACK_DELIVERY)
                    and ErrorCode.DELIVERED in [res.errorcode for res in r.acknowledgement.results])

        while True:
            found = await self.counterpart.wait_for(hub_101, min(self.check_every, max(0.0, deadline - time.monotonic())))
            if found is not None:
                return Confirmation(True, found.at - start)
            delivery = await self._delivery(msg_id)
            # The hub retries a delivery whose answer was wrong: say why now instead of waiting it out.
            if delivery and delivery.get("state") in ("retry-wait", "expired") and delivery.get("detail"):
                return Confirmation(False, None, f"the hub could not deliver it ({delivery['state']}, attempt "
                                                 f"{delivery.get('attempts')}): {delivery['detail']}")
            unconfirmed = self._unconfirmed_fetches(delivery)
            if unconfirmed and (delivery.get("attempts", 0) >= 2 or time.monotonic() >= deadline):
                return Confirmation(False, None, unconfirmed)  # offered again: the first fetch went unconfirmed
            if time.monotonic() >= deadline:
                where = f"state {delivery['state']}" + (f": {delivery['detail']}" if delivery.get("detail") else "") \
                    if delivery else "the hub has no record of it"
                return Confirmation(False, None, f"no delivery confirmation within {wait:.0f} s ({where})")

    async def _settle_repeat(self, journal_id: str) -> None:
        """The repeat did its job: stop the hub offering it again (it would crowd out later packets)."""
        await self._operator("POST", "settle", json={"msg_id": journal_id, "receiver": self.receiver,
                                                     "detail": "conformance repeat: the EDMS took it again"})

    def _unconfirmed_fetches(self, delivery: dict | None) -> str | None:
        """For a pull-mode EDMS: it fetched the packet but has not confirmed it with a valid ack."""
        if self.receiver_mode != "pull" or not delivery or delivery.get("attempts", 0) < 1 \
                or delivery.get("state") == "delivered":
            return None
        return (f"{self.receiver} fetched it from its mailbox {delivery['attempts']} time(s) but did not confirm "
                "it with a valid delivery acknowledgement signed with its registered certificate")

    async def _repeat_answered(self, msg_id: str, wait: float) -> Confirmation:
        """Did the EDMS answer the repeated packet? The hub's record of the repeat says so."""
        journal_id = self._repeats.get(msg_id, msg_id)
        start = self._sent_at.get(journal_id, time.monotonic())
        while time.monotonic() - start < wait:
            delivery = await self._delivery(journal_id)
            if delivery and delivery.get("attempts", 0) >= 1:
                detail = delivery.get("detail") or ""
                found = None
                if self.receiver_mode == "pull":
                    # The mailbox does not record a refused confirmation; being fetched is the evidence.
                    found = Confirmation(True, time.monotonic() - start, "fetched from the mailbox")
                elif detail:  # kept while a retry is in flight, so a slow EDMS's answer is not missed
                    # Acknowledging the original msg_id is right; the hub notes it does not match the repeat.
                    found = Confirmation(msg_id in detail, time.monotonic() - start, f"answered: {detail}")
                if found is not None:
                    await self._settle_repeat(journal_id)
                    return found
            await asyncio.sleep(0.2)
        return Confirmation(False, None, f"the EDMS did not take the repeated packet within {wait:.0f} s")

    async def _delivery(self, msg_id: str) -> dict | None:
        try:
            async with self.session.get(f"{self.hub_url}/smdo/v1/transactions/{quote(msg_id)}") as r:
                if r.status != 200:
                    return None
                status = await r.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None
        return next((d for d in status.get("deliveries", []) if d.get("receiver") == self.receiver), None)


def _answer_text(counterpart: Counterpart, body: bytes) -> str:
    answer = counterpart.check(body)
    ack = answer.acknowledgement
    if ack is not None:
        return "; ".join(f"code {r.errorcode}: {r.text}" for r in ack.results)
    return body[:300].decode("utf-8", "replace")
