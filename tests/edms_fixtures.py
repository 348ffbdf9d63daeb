"""Shared test data for the EDMS tests: a registration card with every field filled."""
from __future__ import annotations

from datetime import date

from edms_adapters.adapter import (
    Attachment,
    ParentRef,
    Party,
    RegistrationCard,
    SupplementRef,
    TaskInfo,
)


def full_card(**changes: object) -> RegistrationCard:
    """A card with every registration field set (no reply/task/supplement unless asked)."""
    card = RegistrationCard(
        idnumber="doc-0042",
        number="01-12/345",
        date=date(2026, 11, 20),
        title="On the schedule of inter-agency meetings",
        kind="01",
        author=Party("Ministry of Tests", "MINTEST", "I. Ivanov", "Head of Department"),
        signer=Party("Ministry of Tests", "MINTEST", "P. Petrov", "Deputy Minister"),
        addressees=(
            Party("Committee of Examples", "KOMEX", "S. Sidorov", "Chairman"),
            Party("Agency of Samples", "AGSAM"),
        ),
        files=(
            Attachment("letter.pdf", b"%PDF-1.4 letter", "application/pdf", "the letter"),
            Attachment("annex.txt", "приложение".encode(), "text/plain"),
        ),
        annotation="Meetings are moved to Thursdays",
        pages=3,
    )
    return card.with_changes(**changes)


PARENT = ParentRef("6f1c2a8e-0000-4000-8000-000000000001", "in-7", "KOMEX", "R-2026/0007",
                   date(2026, 11, 21))
TASK = TaskInfo("T-12", date(2026, 11, 22), "Prepare a report", date(2026, 12, 1),
                Party("Committee of Examples", "KOMEX", "S. Sidorov", "Chairman"))
SUPPLEMENT = SupplementRef("doc-0042", "01-12/345", date(2026, 11, 20), False, 1, "Updated annex")


def every_variant() -> list[RegistrationCard]:
    """A plain document, a reply, a task and a supplement."""
    signed = (Attachment("letter.pdf", b"%PDF-1.4 letter", "application/pdf", "the letter", (b"\x30\x82sig-one",)),)
    return [
        full_card(),
        full_card(parent=PARENT),
        full_card(task=TASK, files=signed),  # with an official's signature: the formats carry it
        full_card(supplement=SUPPLEMENT),
    ]
