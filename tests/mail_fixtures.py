"""The agencies' side of the mail route: a real SMTP server on loopback (aiosmtpd, STARTTLS) that
keeps each recipient's mail, and a classic client that sends packets by SMTP as the real ones do."""
from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, Envelope, Session

from signing.pki import PkiLayout


@dataclass
class AgencyMailServer:
    """The agencies' mail server: accepts any mail (over STARTTLS) and files it by recipient."""

    pki: PkiLayout
    inbox: dict[str, list[EmailMessage]] = field(default_factory=dict)
    port: int = 0
    _server: asyncio.base_events.Server | None = None

    async def start(self) -> "AgencyMailServer":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(self.pki.cert_path("HUB")), str(self.pki.key_path("HUB")))  # names 127.0.0.1
        self._server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(self, tls_context=tls, require_starttls=True, hostname="mail.agencies.test"),
            "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content)
        for rcpt in envelope.rcpt_tos:
            self.inbox.setdefault(rcpt.lower(), []).append(message)
        return "250 OK"

    def packets(self, address: str) -> list[tuple[str, bytes, dict[str, bytes]]]:
        """(packet attachment name, its XML, {file attachment name: content}) of each mail to `address`."""
        out = []
        for message in self.inbox.get(address, []):
            name, xml, parts = "", b"", {}
            for part in message.iter_attachments():
                if part.get_filename().endswith(".xml"):
                    name, xml = part.get_filename(), part.get_payload(decode=True)
                else:
                    parts[part.get_filename()] = part.get_payload(decode=True)
            out.append((name, xml, parts))
        return out


def send_mail(port: int, pki: PkiLayout, message: EmailMessage, sender: str, recipient: str) -> None:
    """A classic client's mail gateway hands a message to the hub (STARTTLS, trusting the test CA)."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.send_message(message, from_addr=sender, to_addrs=[recipient])
