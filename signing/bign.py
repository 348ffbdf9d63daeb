"""bign (STB 34.101.45) signatures on bign-curve256v1 with belt-hash, and the key objects.

Encodings as the standard fixes them (all little-endian): private key 32 octets, public key
64 octets x || y, signature 48 octets S0 || S1. The group arithmetic uses Jacobian coordinates
and, for the base point, a table of precomputed multiples; integers are gmpy2's when it is
installed (several times faster modular arithmetic), Python's otherwise.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from signing.belt import belt_hash, encrypt_block

try:  # optional acceleration: same results, faster big-integer arithmetic
    from gmpy2 import mpz as _num
except ImportError:  # pragma: no cover - depends on the environment
    _num = int

# bign-curve256v1 (1.2.112.0.2.0.34.101.45.3.1), from the standard's appendix.
P = 2**256 - 189
A = P - 3
B = 54189945433829174764701416670523239872420438478408031144987871676190519198705
Q = 2**256 - 51359303463308904523350978545619999225
G_Y = 48835626907528736105417095645674365354469331933013114027389791773001019124371

# DER TLV of belt-hash's OID: S0 hashes it in front of R and H (the standard's OID(h)).
BELT_HASH_OID_DER = bytes.fromhex("06092A7000020022651F51")

_p = _num(P)
_q = _num(Q)
_INFINITY = (_num(1), _num(1), _num(0))


# ---------------------------------------------------------------- group arithmetic (Jacobian, a = -3)


def _double(point):
    x, y, z = point
    if not z or not y:
        return _INFINITY
    zz = z * z % _p
    m = 3 * (x - zz) * (x + zz) % _p  # a = -3
    yy = y * y % _p
    s = 4 * x * yy % _p
    x3 = (m * m - 2 * s) % _p
    y3 = (m * (s - x3) - 8 * yy * yy) % _p
    return x3, y3, 2 * y * z % _p


def _add(p1, p2):
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if not z1:
        return p2
    if not z2:
        return p1
    z1z1 = z1 * z1 % _p
    z2z2 = z2 * z2 % _p
    u1 = x1 * z2z2 % _p
    u2 = x2 * z1z1 % _p
    s1 = y1 * z2 * z2z2 % _p
    s2 = y2 * z1 * z1z1 % _p
    if u1 == u2:
        return _double(p1) if s1 == s2 else _INFINITY
    h = (u2 - u1) % _p
    r = (s2 - s1) % _p
    hh = h * h % _p
    hhh = h * hh % _p
    v = u1 * hh % _p
    x3 = (r * r - hhh - 2 * v) % _p
    y3 = (r * (v - x3) - s1 * hhh) % _p
    return x3, y3, z1 * z2 * h % _p


def _affine(point) -> tuple[int, int] | None:
    x, y, z = point
    if not z:
        return None
    inverse = pow(int(z), -1, P)
    inverse2 = inverse * inverse % P
    return int(x) * inverse2 % P, int(y) * inverse2 * inverse % P


def _multiply(k: int, point) -> tuple:
    """k * point, 4-bit fixed window."""
    table = [_INFINITY, point]
    for _ in range(14):
        table.append(_add(table[-1], point))
    result = _INFINITY
    for shift in range((max(k.bit_length(), 1) + 3) // 4 * 4 - 4, -4, -4):
        for _ in range(4):
            result = _double(result)
        digit = (k >> shift) & 15
        if digit:
            result = _add(result, table[digit])
    return result


_base_table: list[list[tuple]] | None = None


def _multiply_base(k: int) -> tuple:
    """k * G with a table of j * 16^i * G: 64 additions and no doublings."""
    global _base_table
    if _base_table is None:
        rows = []
        step = (_num(0), _num(G_Y), _num(1))
        for _ in range(64):
            row = [_INFINITY, step]
            for _ in range(14):
                row.append(_add(row[-1], step))
            rows.append(row)
            for _ in range(4):
                step = _double(step)
        _base_table = rows
    result = _INFINITY
    for i, row in enumerate(_base_table):
        digit = (k >> (4 * i)) & 15
        if digit:
            result = _add(result, row[digit])
    return result


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


# ---------------------------------------------------------------- keys


def _le(value: int, size: int = 32) -> bytes:
    return int(value).to_bytes(size, "little")


def _num_le(data: bytes) -> int:
    return int.from_bytes(data, "little")


@dataclass(frozen=True)
class BignPublicKey:
    """A bign public key: the point Q, encoded as 64 octets x || y (little-endian)."""

    encoded: bytes

    def __post_init__(self) -> None:
        if len(self.encoded) != 64:
            raise ValueError(f"a bign-curve256v1 public key is 64 octets, not {len(self.encoded)}")
        if not _on_curve(_num_le(self.encoded[:32]), _num_le(self.encoded[32:])):
            raise ValueError("the bign public key is not a point of bign-curve256v1")

    def verify(self, signature: bytes, message_hash: bytes) -> bool:
        """bign-vfy of a belt-hash value; True when the signature is valid."""
        return verify_hash(self, signature, message_hash)


@dataclass(frozen=True)
class BignPrivateKey:
    """A bign private key d, 1 <= d < q, encoded as 32 octets (little-endian)."""

    encoded: bytes

    def __post_init__(self) -> None:
        if len(self.encoded) != 32 or not 0 < _num_le(self.encoded) < Q:
            raise ValueError("a bign-curve256v1 private key is 32 octets holding 1 <= d < q")

    @classmethod
    def generate(cls) -> "BignPrivateKey":
        return cls(_le(secrets.randbelow(Q - 1) + 1))

    def public_key(self) -> BignPublicKey:
        x, y = _affine(_multiply_base(_num_le(self.encoded)))
        return BignPublicKey(_le(x) + _le(y))

    def sign(self, message_hash: bytes) -> bytes:
        """The standard's deterministic signature (k from bign-genk) of a belt-hash value."""
        return sign_hash(self, message_hash)


# ---------------------------------------------------------------- sign / verify / genk


def _check_hash(message_hash: bytes) -> None:
    if len(message_hash) != 32:
        raise ValueError(f"bign-curve256v1 signs a 32-octet belt-hash value, not {len(message_hash)} octets")


def generate_k(private_key: BignPrivateKey, message_hash: bytes, extra: bytes = b"") -> int:
    """bign-genk: the deterministic ephemeral key for (d, H), optionally with extra data t."""
    _check_hash(message_hash)
    key = belt_hash(BELT_HASH_OID_DER + private_key.encoded + extra)
    r1, r2 = message_hash[:16], message_hash[16:]
    i = 1
    while True:
        s = r1
        mixed = _num_le(encrypt_block(s, key)) ^ _num_le(r2) ^ i
        r1, r2 = _le(mixed, 16), s
        if i % 4 == 0:  # every 2n = 4 rounds for n = 2 blocks
            k = _num_le(r1 + r2)
            if 0 < k < Q:
                return k
        i += 1


def sign_hash(private_key: BignPrivateKey, message_hash: bytes, k: int | None = None) -> bytes:
    """bign-sign of a belt-hash value: 48 octets S0 || S1. `k` for the standard's tests; else bign-genk."""
    _check_hash(message_hash)
    if k is None:
        k = generate_k(private_key, message_hash)
    if not 0 < k < Q:
        raise ValueError("the ephemeral key k must satisfy 1 <= k < q")
    x, _ = _affine(_multiply_base(k))
    s0 = belt_hash(BELT_HASH_OID_DER + _le(x) + message_hash)[:16]
    d = _num_le(private_key.encoded)
    s1 = (k - _num_le(message_hash) - (_num_le(s0) + 2**128) * d) % Q
    return s0 + _le(s1)


def verify_hash(public_key: BignPublicKey, signature: bytes, message_hash: bytes) -> bool:
    """bign-vfy of a belt-hash value."""
    _check_hash(message_hash)
    if len(signature) != 48:
        return False
    s0, s1 = signature[:16], _num_le(signature[16:])
    if s1 >= Q:
        return False
    qx, qy = _num_le(public_key.encoded[:32]), _num_le(public_key.encoded[32:])
    point = _add(_multiply_base((s1 + _num_le(message_hash)) % Q),
                 _multiply(_num_le(s0) + 2**128, (_num(qx), _num(qy), _num(1))))
    affine = _affine(point)
    if affine is None:
        return False
    t = belt_hash(BELT_HASH_OID_DER + _le(affine[0]) + message_hash)[:16]
    return hmac.compare_digest(t, s0)


def sign(private_key: BignPrivateKey, message: bytes) -> bytes:
    """bign-with-hbelt: belt-hash the message, then the deterministic bign signature."""
    return sign_hash(private_key, belt_hash(message))


def verify(public_key: BignPublicKey, signature: bytes, message: bytes) -> bool:
    """bign-with-hbelt verification of `message`."""
    return verify_hash(public_key, signature, belt_hash(message))
