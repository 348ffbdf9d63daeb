"""The mail route out: packets and acknowledgements to subscribers that receive by e-mail.

A subscriber in pull mode with a registered `mail_address` receives by mail: this worker takes its
mailbox deliveries (the same lease as `GET /smdo/v1/mailbox`), mails each packet with the classic
attachment names (smdo/mailpack.py) through the configured relay (`smtp_relay`, STARTTLS), and:
- an acknowledgement counts as delivered once the relay took it (nobody acknowledges an ack);
- anything else waits for the receiver's delivery ack, which comes back by mail (router/mail_in.py
  looks it up in `pending`); unconfirmed, it is mailed again after `mail_resend`, until the deadline.
`pending` lives in memory: after a restart an unconfirmed packet is simply mailed again, and the
receiver de-duplicates by msg_id.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
from email.message import EmailMessage

from lxml import etree

from smdo.journal import Claimed
from smdo.mailpack import compose, detach
from smdo.registry import SubscriberStatus

from router.hub import Hub
from router.periodic import cancel

log = logging.getLogger(__name__)


class MailDelivery:
    def __init__(self, hub: Hub, client_ssl: ssl.SSLContext) -> None:
        self.hub = hub
        self.config = hub.config
        self.client_ssl = client_ssl
        # (msg_id, receiver) -> (delivery_id, deadline): mailed, not yet confirmed; pruned at the deadline
        self.pending: dict[tuple[str, str], tuple[int, float]] = {}
        self.answers: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-delivery")

    async def stop(self) -> None:
        await cancel(self._task)
        if self.answers:
            await asyncio.wait(self.answers, timeout=self.config.mail_timeout)

    def mail_receivers(self) -> list[tuple[str, str]]:
        """(code, address) of the subscribers that receive by mail."""
        return [(s.code, s.mail_address) for s in self.hub.registry.snapshot.subscribers()
                if s.receives_by_mail and s.status is not SubscriberStatus.REVOKED]

    def pending_delivery(self, msg_id: str, receiver: str) -> int | None:
        found = self.pending.get((msg_id, receiver))
        return found[0] if found else None

    def _prune(self, now: float) -> None:
        """Forget mailed packets past their deadline: expired, they wait for no ack any more."""
        for key in [k for k, (_, deadline) in self.pending.items() if deadline < now]:
            del self.pending[key]

    async def _run(self) -> None:
        while True:
            self._prune(time.time())
            try:
                for code, address in self.mail_receivers():
                    claimed = await self.hub.journal.claim_mailbox(code, time.time(), self.config.mail_resend, 20)
                    for delivery in claimed:
                        await self._mail(delivery, address)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mail delivery loop")
            await asyncio.sleep(max(self.config.poll_interval, 0.1))

    async def _mail(self, delivery: Claimed, address: str) -> None:
        xml, parts = detach(delivery.raw)
        # The packet's own msg_id names the attachment (a journal id may differ, e.g. a test repeat's).
        message = compose(sender=self.config.mail_address, recipient=address,
                          msg_id=etree.fromstring(xml).get("msg_id") or delivery.msg_id,
                          msg_type=delivery.msg_type, xml=xml, parts=parts)
        key = (delivery.msg_id, delivery.receiver)
        if delivery.msg_type != 0:
            # Before the hand-over: the receiver's delivery ack may come back before it returns.
            self.pending[key] = (delivery.delivery_id, delivery.deadline)
        try:
            await asyncio.to_thread(self._hand_over, message, address)
        except (OSError, smtplib.SMTPException) as exc:
            # The lease runs out after mail_resend and the packet is mailed again.
            log.warning("mailing %s to %s failed: %s", delivery.msg_id, address, exc)
            self.hub.metrics.deliveries["mail_failed"] += 1
            return
        self.hub.metrics.deliveries["mailed"] += 1
        if delivery.msg_type == 0:
            await self.hub.receipts.settle(self.hub.receipts.delivered(delivery, f"mailed to {address}"))

    def _hand_over(self, message: EmailMessage, address: str) -> None:
        host, _, port = self.config.smtp_relay.rpartition(":")
        with smtplib.SMTP(host, int(port), timeout=self.config.mail_timeout) as smtp:
            smtp.starttls(context=self.client_ssl)  # never in clear: the packets are not encrypted
            smtp.send_message(message, from_addr=self.config.mail_address, to_addrs=[address])

    def send_answer(self, address: str, answer: bytes) -> None:
        """The hub's answer to a packet that came by mail (100, or the refusal), mailed back; like the
        HTTPS answer, it is not journaled as a delivery of its own."""
        root = etree.fromstring(answer)
        message = compose(sender=self.config.mail_address, recipient=address, msg_id=root.get("msg_id"),
                          msg_type=0, xml=answer)

        async def send() -> None:
            try:
                await asyncio.to_thread(self._hand_over, message, address)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("mailing the answer to %s failed: %s", address, exc)

        task = asyncio.create_task(send())
        self.answers.add(task)
        task.add_done_callback(self.answers.discard)
