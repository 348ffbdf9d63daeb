"""Who may send what to whom: the hub's immutable view of the registry and its access policy."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from smdo.errors import ErrorCode, Problem
from smdo.registry.model import (
    TEST_COUNTERPART_CODE,
    UNDER_TEST,
    BoundCertificate,
    Subscriber,
)
from smdo.registry.model import SubscriberStatus as S


class RegistrySnapshot:
    """An immutable view of the registry for the hot path: lookups are dict reads."""

    def __init__(self, subscribers: Mapping[str, Subscriber], version: int,
                 certificates: Mapping[str, Sequence[BoundCertificate]] | None = None) -> None:
        self._subscribers = dict(subscribers)
        self._certificates = {code: tuple(certs) for code, certs in (certificates or {}).items()}
        self.version = version

    def updated(self, subscribers: Mapping[str, Subscriber], certificates: Mapping[str, Sequence[BoundCertificate]],
                version: int) -> RegistrySnapshot:
        """A new snapshot at `version`: this one with these subscribers (and their certificates) replaced."""
        return RegistrySnapshot({**self._subscribers, **subscribers}, version,
                                {**self._certificates, **{code: tuple(c) for code, c in certificates.items()}})

    def get(self, code: str) -> Subscriber | None:
        return self._subscribers.get(code)

    def certificates(self, code: str) -> tuple[BoundCertificate, ...]:
        """The certificates bound to a subscriber, oldest first (for the directory)."""
        return self._certificates.get(code, ())

    def subscribers(self) -> list[Subscriber]:
        return sorted(self._subscribers.values(), key=lambda s: s.code)

    def active(self) -> list[Subscriber]:
        return [s for s in self.subscribers() if s.status is S.ACTIVE]

    def authorise(self, *, sender_id: str, signer_fingerprint: str, receiver_ids: Sequence[str]) -> list[Problem]:
        """Every reason this sender may not send this packet to these receivers; empty when it may.

        -23: the signing certificate is not one bound to the sender; 104: the sender or a receiver
        is blocked (not active, or under test and talking to someone other than the test
        counterpart); 10: a receiver is not a known subscriber.
        """
        problems: list[Problem] = []
        sender = self._subscribers.get(sender_id)
        if sender is None:
            return [Problem(ErrorCode.CERTIFICATE_NOT_TRUSTED,
                            f"sender {sender_id!r} is not a registered subscriber, so no certificate is bound to it",
                            "Header/Sender@id")]
        if signer_fingerprint not in sender.cert_fingerprints:
            problems.append(Problem(ErrorCode.CERTIFICATE_NOT_TRUSTED,
                                    f"the signing certificate (sha256 {signer_fingerprint[:16]}...) is not bound to "
                                    f"sender {sender_id}", "Header/Sender@id"))
        if sender.status is not S.ACTIVE:
            if sender.status in UNDER_TEST:
                others = [r for r in receiver_ids if r != TEST_COUNTERPART_CODE]
                if others:
                    problems.append(Problem(ErrorCode.ADDRESSEE_BLOCKED,
                                            f"sender {sender_id} is {sender.status.value}: it may exchange packets only "
                                            f"with the test counterpart {TEST_COUNTERPART_CODE}, not {', '.join(others)}",
                                            "Header/Sender@id"))
            else:
                problems.append(Problem(ErrorCode.ADDRESSEE_BLOCKED,
                                        f"sender {sender_id} is {sender.status.value}, not active: access is blocked",
                                        "Header/Sender@id"))
        for receiver_id in receiver_ids:
            receiver = self._subscribers.get(receiver_id)
            if receiver is None:
                problems.append(Problem(ErrorCode.RECIPIENT_NOT_DEFINED,
                                        f"receiver {receiver_id!r} is not a registered subscriber", "Header/Receiver@id"))
            elif receiver.status is S.ACTIVE:
                continue
            elif receiver.status in UNDER_TEST and sender_id == TEST_COUNTERPART_CODE:
                continue
            else:
                why = (f"it may receive only from the test counterpart {TEST_COUNTERPART_CODE}"
                       if receiver.status in UNDER_TEST else "access is blocked")
                problems.append(Problem(ErrorCode.ADDRESSEE_BLOCKED,
                                        f"receiver {receiver_id} is {receiver.status.value}, not active: {why}",
                                        "Header/Receiver@id"))
        return problems
