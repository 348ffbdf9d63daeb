"""Signature failures and their SDIP codes.

`signing` uses the bare numbers (-21, -22, -23) so it does not depend on `smdo`;
`smdo.errors.ErrorCode` names the same numbers.
"""
from __future__ import annotations


class SignatureError(Exception):
    """A signature or certificate problem carrying its SDIP error code."""

    code: int = -21

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"code {self.code}: {self.message}"


class InvalidSignature(SignatureError):
    """Bad digest or signature value, a signature outside the hub's profile, or wrapping."""

    code = -21


class MissingSignature(SignatureError):
    """The document carries no signature at all."""

    code = -22


class UntrustedCertificate(SignatureError):
    """The signer's certificate does not chain to a trust anchor, is expired, revoked or misused."""

    code = -23
