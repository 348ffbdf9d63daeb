"""The Belarusian taxpayer number (UNP, учетный номер плательщика) of an organisation.

An organisation's UNP is 9 digits: the first is the region of the tax office that issued it
(1-7), the next seven a serial, the last a check digit. The check digit rule, as published in
the rules for forming the UNP (pravo.levonevsky.org/bazaby09/sbor37/text37892, cited by the
Belarusian Wikipedia article "Уліковы нумар плацельшчыка" and implemented in python-stdnum's
`stdnum/by/unp.py`): multiply the first eight digits by the weights 29, 23, 19, 17, 13, 7, 5, 3,
sum, take the remainder mod 11; that remainder is the check digit, and a remainder of 10 means
the serial is never issued. Example: 200988541 (2*29 + 9*17 + 8*13 + 8*7 + 5*5 + 4*3 = 408,
408 mod 11 = 1).

Individual entrepreneurs' UNPs may carry letters in positions 1-2; subscribers of the hub are
organisations, so only the all-digit form is accepted here.
"""
from __future__ import annotations

WEIGHTS = (29, 23, 19, 17, 13, 7, 5, 3)
REGIONS = "1234567"


class InvalidUnp(ValueError):
    """A UNP that breaks one of the rules; the message says which rule and what was given."""


def check_digit(first_eight: str) -> int | None:
    """The check digit for the first eight digits, or None when the remainder is 10 (never issued)."""
    remainder = sum(w * int(d) for w, d in zip(WEIGHTS, first_eight, strict=True)) % 11
    return None if remainder == 10 else remainder


def validate_unp(value: str) -> str:
    """Return the UNP without surrounding spaces, or raise InvalidUnp naming the rule that failed."""
    unp = value.strip()
    if len(unp) != 9:
        raise InvalidUnp(f"UNP {value!r} must be exactly 9 digits (it has {len(unp)} characters)")
    if not unp.isascii() or not unp.isdigit():
        raise InvalidUnp(f"UNP {value!r} must contain only digits 0-9 (an organisation's UNP has no letters)")
    if unp[0] not in REGIONS:
        raise InvalidUnp(f"UNP {unp}: the first digit is the region code and must be 1-7, not {unp[0]}")
    expected = check_digit(unp[:8])
    if expected is None:
        raise InvalidUnp(
            f"UNP {unp}: the weighted sum of the first 8 digits leaves remainder 10 mod 11, "
            "so no valid UNP starts with these digits"
        )
    if int(unp[8]) != expected:
        raise InvalidUnp(f"UNP {unp}: check digit is {unp[8]}, but the first 8 digits give {expected}")
    return unp


def make_unp(first_eight: str) -> str:
    """Complete eight digits into a valid UNP (for tests and demos); raises InvalidUnp if impossible."""
    digit = check_digit(first_eight)
    if digit is None:
        raise InvalidUnp(f"no valid UNP starts with {first_eight} (remainder 10 mod 11)")
    return validate_unp(first_eight + str(digit))
