"""The content fault switches: how a faulty EDMS spoils the card it registers (edms_adapters.config.FAULTS).

A correct EDMS registers the card exactly as it arrived; each switch here changes one thing the
way real integrations do (a wrong text encoding, a fixed-size buffer, a field never mapped).
"""
from __future__ import annotations

import re

from dataclasses import replace

from edms_adapters.adapter import Attachment, RegistrationCard

TRUNCATE_AT = 64 * 1024  # truncates-large-files keeps this many bytes


def _mojibake(text: str) -> str:
    """UTF-8 bytes read as Windows-1251, the classic mistake ("Привет" -> "РџСЂРёРІРµС‚")."""
    return text.encode("utf-8").decode("cp1251", errors="replace")


def _ascii_only(name: str) -> str:
    return re.sub(r"[^\x00-\x7f]", "_", name)


def spoil(card: RegistrationCard, faults: frozenset[str]) -> RegistrationCard:
    """The card as a faulty EDMS would store it; unchanged when no content fault is on."""
    changes: dict[str, object] = {}
    if "garbles-cyrillic-titles" in faults:
        changes["title"] = _mojibake(card.title)
    files = card.files
    if "garbles-file-names" in faults:
        files = tuple(Attachment(_ascii_only(f.name), f.content, f.media_type, f.description, f.signatures)
                      for f in files)
    if "truncates-large-files" in faults:
        files = tuple(Attachment(f.name, f.content[:TRUNCATE_AT], f.media_type, f.description, f.signatures)
                      for f in files)
    if "drops-supplement-files" in faults and card.supplement is not None:
        files = ()
    changes["files"] = files
    if "drops-task-zone" in faults and card.task is not None:
        changes["task"] = None
    if card.parent is not None:
        if "loses-reply-parent" in faults:
            changes["parent"] = None
        elif "mislinks-reply-parent" in faults:
            changes["parent"] = replace(card.parent, idnumber=card.idnumber, reg_number=card.number,
                                        reg_date=card.date)
    return card.with_changes(**changes)
