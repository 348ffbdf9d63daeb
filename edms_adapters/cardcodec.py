"""Small value conversions shared by the native formats (dates, base64, integers)."""
from __future__ import annotations

import base64
import binascii
from datetime import date


def date_text(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def parse_date(text: str | None, what: str) -> date:
    if not text:
        raise ValueError(f"{what}: a date is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None


def optional_date(text: str | None, what: str) -> date | None:
    return parse_date(text, what) if text else None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode((text or "").encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what}: not valid base64") from None


def parse_int(text: object, what: str) -> int:
    try:
        return int(str(text))
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a whole number") from None
