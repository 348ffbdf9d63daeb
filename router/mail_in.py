"""The mail route in: the hub's SMTP server (aiosmtpd, STARTTLS required) for the classic clients.

    MAIL FROM  must be a subscriber's registered mail_address (else 550, code -23)
    RCPT TO    must be the hub's own mail_address (else 550)
    DATA       bounded by max_packet_bytes; one packet attachment `<msg_id>_data.xml|_ack.xml` and its
               files (attach1...) -> assembled into one packet (smdo/mailpack.py) -> the same stages
               as HTTPS after receive (router.ingress.check_and_journal: read, validate, verify with the
               mail address as the channel, authorise, journal) -> 250 only after the journal commit;
               the hub's answer (100 or the refusal, in the sender's dialect) is mailed back.

A receiver's delivery ack for a packet the hub mailed to it confirms that delivery (router/mail_out.py).
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiosmtpd.smtp import SMTP, Envelope, Session

from smdo.errors import PacketRejected
from smdo.mailpack import MailLimits, assemble, read_message
from smdo.xmlparse import parse_xml

from router.hub import Hub
from router.body import Body
from router.ingress import Incoming, check_and_journal
from router.mail_out import MailDelivery
from router.receipts import BadReceipt
from router.tls import server_context

log = logging.getLogger(__name__)

# base64 makes attachments a third larger; headers and the text part add a little.
_MIME_OVERHEAD = 1.4


class MailIngress:
    """aiosmtpd handler and server, on the hub's own event loop."""

    def __init__(self, hub: Hub, mail_out: MailDelivery) -> None:
        self.hub = hub
        self.config = hub.config
        self.mail_out = mail_out
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.sessions = 0  # open SMTP sessions, bounded by config.mail_sessions

    async def start(self) -> None:
        tls = server_context(self.config)
        limit = int(self.config.max_packet_bytes * _MIME_OVERHEAD) + 64 * 1024

        def protocol() -> SMTP:
            return _BoundedSMTP(self, hostname=self.config.mail_address.rpartition("@")[2], ident="smdo-hub",
                                tls_context=tls, require_starttls=True, data_size_limit=limit,
                                timeout=self.config.mail_timeout)

        self.server = await asyncio.get_running_loop().create_server(
            protocol, self.config.mail_host, self.config.mail_port or 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def subscriber_for(self, address: str) -> str | None:
        address = (address or "").strip().lower()
        for subscriber in self.hub.registry.snapshot.subscribers():
            if subscriber.mail_address and subscriber.mail_address == address:
                return subscriber.code
        return None

    # -- aiosmtpd hooks ---------------------------------------------------------------------

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.subscriber_for(address) is None:
            self.hub.metrics.count("smdo_mail_refused_total", "Mail the hub's SMTP server refused, by reason",
                                   reason="unknown_sender")
            log.warning("mail from unregistered address %s (peer %s) refused", address[:200], session.peer)
            return f"550 5.7.1 code -23: {address[:200]} is not the registered mail address of any subscriber"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.strip().lower() != self.config.mail_address.lower():
            return f"550 5.1.1 this hub takes mail only for {self.config.mail_address}"
        if envelope.rcpt_tos:
            return "452 4.5.3 one recipient per message"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        code = self.subscriber_for(envelope.mail_from)  # again: the registry may have changed meanwhile
        if code is None:
            return "550 5.7.1 code -23: the sender's address is no longer registered"
        raw = envelope.original_content or envelope.content
        try:
            mail = read_message(raw, MailLimits(max_bytes=self.config.max_packet_bytes))
            body = assemble(mail, self.hub.limits)
        except PacketRejected as exc:
            return f"554 5.6.0 code {exc.code}: {exc.problems[0].message[:300]}"
        if await self.confirms_delivery(code, body):
            return "250 OK delivery confirmed"
        packet = Incoming(received_at=time.time(), body=Body.of(body), channel=code, channel_kind="mail")
        response = await check_and_journal(self.hub, packet)  # returns after the journal commit
        self.mail_out.send_answer(envelope.mail_from, response.body)
        return "250 OK" if response.status == 200 else f"250 OK refused with status {response.status}, answer mailed"

    async def confirms_delivery(self, code: str, body: bytes) -> bool:
        """A delivery ack (ack_type 1) for a packet the hub mailed to `code`: that delivery is done."""
        try:
            root = parse_xml(body, self.hub.limits)
        except PacketRejected:
            return False
        ack = root.find("Body/Acknowledgement")
        header = root.find("Header")
        if ack is None or header is None or header.get("msg_type") != "0" or ack.get("ack_type") != "1":
            return False
        delivery_id = self.mail_out.pending_delivery(ack.get("msg_id", ""), code)
        if delivery_id is None:
            return False
        delivery = await self.hub.journal.delivery(delivery_id)
        if delivery is None:
            return False
        try:
            self.hub.receipts.check(body, delivery, channel=code)
        except BadReceipt as exc:
            log.warning("delivery ack by mail from %s not accepted: %s", code, exc)
            return False
        await self.hub.receipts.settle(self.hub.receipts.delivered(delivery, "confirmed by mail"))
        self.mail_out.pending.pop((delivery.msg_id, code), None)
        self.hub.metrics.deliveries["delivered"] += 1
        self.hub.delivery.notify()  # the hub's 101 to the sender may be a push
        return True




class _BoundedSMTP(SMTP):
    """An SMTP session that counts itself against the ingress's session cap (aiosmtpd has none).

    aiosmtpd calls connection_made twice for one session, the second time over TLS after STARTTLS,
    and connection_lost once: the session is counted on its first call only, or every STARTTLS
    session would hold a place for good and the cap would end up refusing everyone."""

    counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.counted:  # the same session, now over TLS
            super().connection_made(transport)
            return
        ingress: MailIngress = self.event_handler
        if ingress.sessions >= ingress.config.mail_sessions:
            ingress.hub.metrics.count("smdo_mail_refused_total", "Mail the hub's SMTP server refused, by reason",
                                      reason="too_many_sessions")
            transport.write(b"421 4.3.2 too many connections, try again later\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        ingress.sessions += 1
        self.counted = True
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.event_handler.sessions -= 1
            self.counted = False
            super().connection_lost(exc)
