"""The classic clients' transport for an emulated EDMS: SMTP both ways, as ЛАИС.СМДО exchanges.

- out: `MailHubClient.send_packet` mails a packet to the hub's address through the hub's SMTP
  server (STARTTLS, trusting the project's CAs): `<msg_id>_data.xml` / `_ack.xml` and the files
  as attach1... The hub's answer (100, or a refusal) comes back later by mail, so the packet is
  only "handed over" (202) here.
- in: `MailInbox`, the agency's own SMTP server (aiosmtpd, STARTTLS), which the hub's relay
  delivers to: each message is assembled into one packet and taken by `EdmsService.receive`;
  for anything but an acknowledgement our delivery ack goes back to the hub by mail.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP, Envelope, Session

from edms_adapters.hub_client import HubAnswer, HubError, client_ssl_context, server_ssl_context
from smdo.errors import PacketRejected
from smdo.mailpack import MailLimits, assemble, compose, detach, read_message
from smdo.xmlparse import parse_xml

if TYPE_CHECKING:
    from edms_adapters.config import EdmsConfig
    from edms_adapters.service import EdmsService

log = logging.getLogger("edms")

HANDED_OVER = 202  # HubAnswer status: the hub's mail server took the packet; its answer comes by mail


class MailHubClient:
    """Sends packets to the hub by mail (the HubClient's send_packet, for the mail transport)."""

    def __init__(self, config: EdmsConfig) -> None:
        if not (config.mail_address and config.hub_mail and config.hub_smtp):
            raise ValueError(f"EDMS kind {config.kind} exchanges by mail: give its mail address, the hub's "
                             "mail address and the hub's SMTP HOST:PORT (--mail-address, --hub-mail, --hub-smtp)")
        self.config = config
        self.tls: ssl.SSLContext = client_ssl_context(trust=config.trust)

    async def close(self) -> None:
        return None

    async def send_packet(self, packet: bytes) -> HubAnswer:
        root = parse_xml(packet)
        xml, parts = detach(packet)
        message = compose(sender=self.config.mail_address, recipient=self.config.hub_mail,
                          msg_id=root.get("msg_id"), msg_type=int(root.find("Header").get("msg_type")),
                          xml=xml, parts=parts, subject=root.get("subject") or "")
        try:
            await asyncio.to_thread(self._hand_over, message)
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:  # refused for good, with the hub's reason
                return HubAnswer(400, exc.smtp_error)
            raise HubError(f"hub mail: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise HubError(f"hub mail not reachable: {exc!r}") from exc
        return HubAnswer(HANDED_OVER, b"")

    def _hand_over(self, message: EmailMessage) -> None:
        host, _, port = self.config.hub_smtp.rpartition(":")
        with smtplib.SMTP(host, int(port), timeout=30) as smtp:
            smtp.starttls(context=self.tls)
            smtp.send_message(message, from_addr=self.config.mail_address, to_addrs=[self.config.hub_mail])


class MailInbox:
    """The agency's SMTP server: the hub's relay delivers packets here."""

    def __init__(self, service: EdmsService) -> None:
        self.service = service
        self.config = service.config
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        tls = server_ssl_context(cert=self.config.tls_cert_path, key=self.config.tls_key_path)
        self.server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(self, tls_context=tls, require_starttls=True, data_size_limit=48 * 1024 * 1024,
                         timeout=30, hostname=self.config.mail_address.rpartition("@")[2]),
            self.config.listen_host, self.config.mail_port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        # Packets come only through the hub: it checked them, and vouches for unsigned acks.
        if address.strip().lower() != self.config.hub_mail.lower():
            return f"550 5.7.1 this EDMS takes mail only from the hub ({self.config.hub_mail})"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.strip().lower() != self.config.mail_address.lower():
            return f"550 5.1.1 no mailbox {address[:100]} here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            mail = read_message(envelope.original_content or envelope.content, MailLimits())
            packet = assemble(mail)
        except PacketRejected as exc:
            return f"554 5.6.0 {exc}"[:500]
        answer = self.service.receive(packet)
        if answer.status != 200:
            log.warning("%s: mailed packet %s not taken: %s", self.config.code, mail.msg_id, answer.body[:200])
            return "250 OK not taken"  # the hub mails it again until its deadline
        if not mail.name.endswith("_ack.xml"):
            self.service.queue_answer(answer.body)  # our delivery ack, by mail like any packet
        return "250 OK"
