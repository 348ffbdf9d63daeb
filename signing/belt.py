"""belt (STB 34.101.31): the belt-block cipher, belt-compress and belt-hash.

Written from the standard's English rendition (draft-belt-bign-bake); the known-answer tests in
tests/test_belt_bign.py are the standard's own tables. Every word is little-endian: a 32-bit
word is read from 4 octets low byte first, and so is the bit length in belt-hash.

`BeltHash`, `belt_hash` and `encrypt_block` use the optional C extension `signing._belt`
(signing/_belt.c, built by setup.py when a compiler is present; ~100x faster) when it imports,
and the pure-Python code here (`PythonBeltHash`, `python_encrypt_block`) otherwise: same results,
checked against each other in tests/test_belt_c.py.
"""
from __future__ import annotations

import struct

# The S-box H (table 1 of the standard); BeltH(u, n) = H[u:u+n] is also the test vectors' source.
H = bytes.fromhex(
    "B194BAC80A08F53B366D008E584A5DE4"
    "8504FA9D1BB6C7AC252E72C202FDCE0D"
    "5BE3D61217B96181FE6786AD716B890B"
    "5CB0C0FF33C356B835C405AED8E07F99"
    "E12BDC1AE28257EC703FCCF095EE8DF1"
    "C1AB76389FE678CAF7C6F860D5BB9C4F"
    "F33C657B637C306ADD4EA7799EB23D31"
    "3E98B56E27D3BCCF591E181F4C5AB793"
    "E9DEE72C8F0C0FA62DDB49F46F739647"
    "06075316ED247A3739CBA38303A98BF6"
    "92BD9B1CE5D141015445FBC95E4D0EF2"
    "682080AA227D642F2687F93490405511"
    "BE32971343FC9A48A02A885F194B09A1"
    "7ECDA4D01544AF8CA58450BF66D2E88A"
    "A2D7465242A8DFB36974C551EB232921"
    "D4EFD9B43A622875911410EA776CDA1D"
)
assert len(H) == 256

_MASK = 0xFFFFFFFF


def _rotated_tables(r: int) -> tuple[list[int], ...]:
    """G_r as four lookups: H of each byte, put in place and rotated by r (RotHi, towards the high bits).

    Rotation moves each bit to a distinct place, so G_r(x) is the OR of the four bytes' entries.
    """
    tables = []
    for position in range(4):
        table = []
        for byte in range(256):
            y = H[byte] << (8 * position)
            table.append(((y << r) | (y >> (32 - r))) & _MASK)
        tables.append(table)
    return tuple(tables)


_G5, _G13, _G21 = _rotated_tables(5), _rotated_tables(13), _rotated_tables(21)
# Round i (1..8) uses k[7i-6..7i] of Rep(K, 7): indices into the 8 key words.
_ROUND_KEYS = tuple(tuple((7 * (i - 1) + t) % 8 for t in range(7)) for i in range(1, 9))


def _g(x: int, tables: tuple[list[int], ...]) -> int:
    t0, t1, t2, t3 = tables
    return t0[x & 0xFF] | t1[(x >> 8) & 0xFF] | t2[(x >> 16) & 0xFF] | t3[x >> 24]


def _encrypt_words(a: int, b: int, c: int, d: int, key: tuple[int, ...] | list[int]) -> tuple[int, int, int, int]:
    """belt-block on 32-bit words: (a, b, c, d) under 8 key words; returns the output words in order.

    The hot loop of belt-hash: G_r is written out inline (four lookups) to spare Python calls.
    """
    p0, p1, p2, p3 = _G5
    q0, q1, q2, q3 = _G13
    r0, r1, r2, r3 = _G21
    m = _MASK
    for i, (j1, j2, j3, j4, j5, j6, j7) in enumerate(_ROUND_KEYS, 1):
        x = (a + key[j1]) & m
        b ^= p0[x & 255] | p1[(x >> 8) & 255] | p2[(x >> 16) & 255] | p3[x >> 24]
        x = (d + key[j2]) & m
        c ^= r0[x & 255] | r1[(x >> 8) & 255] | r2[(x >> 16) & 255] | r3[x >> 24]
        x = (b + key[j3]) & m
        a = (a - (q0[x & 255] | q1[(x >> 8) & 255] | q2[(x >> 16) & 255] | q3[x >> 24])) & m
        x = (b + c + key[j4]) & m
        e = (r0[x & 255] | r1[(x >> 8) & 255] | r2[(x >> 16) & 255] | r3[x >> 24]) ^ i
        b = (b + e) & m
        c = (c - e) & m
        x = (c + key[j5]) & m
        d = (d + (q0[x & 255] | q1[(x >> 8) & 255] | q2[(x >> 16) & 255] | q3[x >> 24])) & m
        x = (a + key[j6]) & m
        b ^= r0[x & 255] | r1[(x >> 8) & 255] | r2[(x >> 16) & 255] | r3[x >> 24]
        x = (d + key[j7]) & m
        c ^= p0[x & 255] | p1[(x >> 8) & 255] | p2[(x >> 16) & 255] | p3[x >> 24]
        a, b, c, d = b, d, a, c  # a <-> b, then c <-> d, then b <-> c
    return b, d, a, c


def _words(data: bytes, count: int) -> list[int]:
    return [int.from_bytes(data[4 * i:4 * i + 4], "little") for i in range(count)]


def _bytes(words) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


def _key_words(key: bytes) -> list[int]:
    if len(key) != 32:
        raise ValueError(f"a belt key is 32 octets, not {len(key)}")
    return _words(key, 8)


def python_encrypt_block(block: bytes, key: bytes) -> bytes:
    """belt-block: one 16-octet block under a 32-octet key."""
    if len(block) != 16:
        raise ValueError(f"a belt block is 16 octets, not {len(block)}")
    return _bytes(_encrypt_words(*_words(block, 4), _key_words(key)))


def decrypt_block(block: bytes, key: bytes) -> bytes:
    """belt-block-inv."""
    if len(block) != 16:
        raise ValueError(f"a belt block is 16 octets, not {len(block)}")
    k = _key_words(key)
    a, b, c, d = _words(block, 4)
    for i in range(8, 0, -1):
        j1, j2, j3, j4, j5, j6, j7 = _ROUND_KEYS[i - 1]  # the same k[7i-6..7i], used from the end
        b ^= _g((a + k[j7]) & _MASK, _G5)
        c ^= _g((d + k[j6]) & _MASK, _G21)
        a = (a - _g((b + k[j5]) & _MASK, _G13)) & _MASK
        e = _g((b + c + k[j4]) & _MASK, _G21) ^ i
        b = (b + e) & _MASK
        c = (c - e) & _MASK
        d = (d + _g((c + k[j3]) & _MASK, _G13)) & _MASK
        b ^= _g((a + k[j2]) & _MASK, _G21)
        c ^= _g((d + k[j1]) & _MASK, _G5)
        a, b = b, a
        c, d = d, c
        a, d = d, a
    return _bytes((c, a, d, b))


def _compress_words(w: list[int] | tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """belt-compress on 16 words (X1..X4, four words each): (S, four words; Y, eight words)."""
    x1, x2, x3, x4 = w[0:4], w[4:8], w[8:12], w[12:16]
    x34 = tuple(p ^ q for p, q in zip(x3, x4))
    s = tuple(p ^ q for p, q in zip(_encrypt_words(*x34, (*x1, *x2)), x34))
    y1 = tuple(p ^ q for p, q in zip(_encrypt_words(*x1, (*s, *x4)), x1))
    y2 = tuple(p ^ q for p, q in zip(_encrypt_words(*x2, (*(v ^ _MASK for v in s), *x3)), x2))
    return s, y1 + y2


def compress(data: bytes) -> tuple[bytes, bytes]:
    """belt-compress: 64 octets -> (S, 16 octets; Y, 32 octets)."""
    if len(data) != 64:
        raise ValueError(f"belt-compress takes 64 octets, not {len(data)}")
    s, y = _compress_words(_words(data, 16))
    return _bytes(s), _bytes(y)


class PythonBeltHash:
    """belt-hash, incremental like hashlib's objects: update() then digest() (32 octets)."""

    name = "belt-hash"
    digest_size = 32
    block_size = 32

    def __init__(self, data: bytes = b"") -> None:
        self._length = 0
        self._sum = (0, 0, 0, 0)  # s, the XOR of the compressions' first outputs
        self._h = tuple(_words(H[:32], 8))
        self._pending = b""
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        self._length += len(data)
        buffer = self._pending + bytes(data)
        whole = len(buffer) - len(buffer) % 32
        h, (s0, s1, s2, s3) = self._h, self._sum
        unpack = _unpack_8_words
        for start in range(0, whole, 32):
            (t0, t1, t2, t3), h = _compress_words(unpack(buffer, start) + h)
            s0, s1, s2, s3 = s0 ^ t0, s1 ^ t1, s2 ^ t2, s3 ^ t3
        self._h, self._sum = h, (s0, s1, s2, s3)
        self._pending = buffer[whole:]

    def digest(self) -> bytes:
        h, total = self._h, self._sum
        if self._pending:
            t, h = _compress_words(tuple(_words(self._pending.ljust(32, b"\0"), 8)) + h)
            total = tuple(p ^ q for p, q in zip(total, t))
        bits = (8 * self._length) % (1 << 128)
        _, result = _compress_words(tuple(_words(bits.to_bytes(16, "little"), 4)) + total + h)
        return _bytes(result)

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> PythonBeltHash:
        other = PythonBeltHash()
        other._length, other._sum, other._h, other._pending = self._length, self._sum, self._h, self._pending
        return other


_unpack_8_words = struct.Struct("<8I").unpack_from


try:  # the C extension when it was built (setup.py); without it, the Python code above
    from signing._belt import BeltHash as CBeltHash, encrypt_block as c_encrypt_block
except ImportError:
    CBeltHash = c_encrypt_block = None

ACCELERATED = CBeltHash is not None
BeltHash = CBeltHash if CBeltHash is not None else PythonBeltHash
encrypt_block = c_encrypt_block if c_encrypt_block is not None else python_encrypt_block


def belt_hash(data: bytes) -> bytes:
    """belt-hash of `data`: 32 octets."""
    return BeltHash(data).digest()
