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


FILES = (
    Attachment("letter.pdf", b"%PDF-1.4 letter", "application/pdf", "the letter"),
    Attachment("annex.txt", "приложение".encode(), "text/plain"),
)
# Signature bytes only travel here (format round trips): an EDMS that registers the card verifies a
# file's signature, and these bytes are no valid CMS signature (it would answer 3).
SIGNED_FILES = (Attachment("letter.pdf", b"%PDF-1.4 letter", "application/pdf", "the letter",
                           (b"\x30\x82sig-one",)), FILES[1])


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
        files=FILES,
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
    return [
        full_card(files=SIGNED_FILES),
        full_card(parent=PARENT, files=SIGNED_FILES),
        full_card(task=TASK, files=SIGNED_FILES),
        full_card(supplement=SUPPLEMENT, files=SIGNED_FILES),
    ]
