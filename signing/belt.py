"""belt (STB 34.101.31): the belt-block cipher, belt-compress and belt-hash.

Written from the standard's English rendition (draft-belt-bign-bake); the known-answer tests in
tests/test_belt_bign.py are the standard's own tables. Every word is little-endian: a 32-bit
word is read from 4 octets low byte first, and so is the bit length in belt-hash.
"""
from __future__ import annotations

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
# H applied to each byte of a word, already shifted into place: G_r is four lookups and a rotation.
_T = [[H[b] << (8 * i) for b in range(256)] for i in range(4)]


def _g(x: int, r: int) -> int:
    t0, t1, t2, t3 = _T
    y = t0[x & 0xFF] | t1[(x >> 8) & 0xFF] | t2[(x >> 16) & 0xFF] | t3[x >> 24]
    return ((y << r) | (y >> (32 - r))) & _MASK  # RotHi: towards the high bits


def _words(data: bytes, count: int) -> list[int]:
    return [int.from_bytes(data[4 * i:4 * i + 4], "little") for i in range(count)]


def _key_schedule(key: bytes) -> list[int]:
    if len(key) != 32:
        raise ValueError(f"a belt key is 32 octets, not {len(key)}")
    words = _words(key, 8)
    return [words[j % 8] for j in range(56)]  # k[1..56] = Rep(K, 7), 0-based here


def encrypt_block(block: bytes, key: bytes) -> bytes:
    """belt-block: one 16-octet block under a 32-octet key."""
    if len(block) != 16:
        raise ValueError(f"a belt block is 16 octets, not {len(block)}")
    k = _key_schedule(key)
    a, b, c, d = _words(block, 4)
    g = _g
    for i in range(1, 9):
        j = 7 * (i - 1)  # k[7i-6] is k[j] 0-based
        b ^= g((a + k[j]) & _MASK, 5)
        c ^= g((d + k[j + 1]) & _MASK, 21)
        a = (a - g((b + k[j + 2]) & _MASK, 13)) & _MASK
        e = g((b + c + k[j + 3]) & _MASK, 21) ^ i
        b = (b + e) & _MASK
        c = (c - e) & _MASK
        d = (d + g((c + k[j + 4]) & _MASK, 13)) & _MASK
        b ^= g((a + k[j + 5]) & _MASK, 21)
        c ^= g((d + k[j + 6]) & _MASK, 5)
        a, b = b, a
        c, d = d, c
        b, c = c, b
    return b"".join(w.to_bytes(4, "little") for w in (b, d, a, c))


def decrypt_block(block: bytes, key: bytes) -> bytes:
    """belt-block-inv."""
    if len(block) != 16:
        raise ValueError(f"a belt block is 16 octets, not {len(block)}")
    k = _key_schedule(key)
    a, b, c, d = _words(block, 4)
    g = _g
    for i in range(8, 0, -1):
        j = 7 * i - 1  # k[7i] is k[j] 0-based
        b ^= g((a + k[j]) & _MASK, 5)
        c ^= g((d + k[j - 1]) & _MASK, 21)
        a = (a - g((b + k[j - 2]) & _MASK, 13)) & _MASK
        e = g((b + c + k[j - 3]) & _MASK, 21) ^ i
        b = (b + e) & _MASK
        c = (c - e) & _MASK
        d = (d + g((c + k[j - 4]) & _MASK, 13)) & _MASK
        b ^= g((a + k[j - 5]) & _MASK, 21)
        c ^= g((d + k[j - 6]) & _MASK, 5)
        a, b = b, a
        c, d = d, c
        a, d = d, a
    return b"".join(w.to_bytes(4, "little") for w in (c, a, d, b))


def _xor(x: bytes, y: bytes) -> bytes:
    return (int.from_bytes(x, "little") ^ int.from_bytes(y, "little")).to_bytes(len(x), "little")


_ONES = b"\xff" * 16


def compress(data: bytes) -> tuple[bytes, bytes]:
    """belt-compress: 64 octets -> (S, 16 octets; Y, 32 octets)."""
    if len(data) != 64:
        raise ValueError(f"belt-compress takes 64 octets, not {len(data)}")
    x1, x2, x3, x4 = data[:16], data[16:32], data[32:48], data[48:]
    x34 = _xor(x3, x4)
    s = _xor(encrypt_block(x34, x1 + x2), x34)
    y1 = _xor(encrypt_block(x1, s + x4), x1)
    y2 = _xor(encrypt_block(x2, _xor(s, _ONES) + x3), x2)
    return s, y1 + y2


class BeltHash:
    """belt-hash, incremental like hashlib's objects: update() then digest() (32 octets)."""

    name = "belt-hash"
    digest_size = 32

    def __init__(self, data: bytes = b"") -> None:
        self._length = 0
        self._sum = 0  # s, the XOR of the compressions' first outputs, as a number
        self._h = H[:32]
        self._pending = b""
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        self._length += len(data)
        buffer = self._pending + bytes(data)
        whole = len(buffer) - len(buffer) % 32
        h, total = self._h, self._sum
        for start in range(0, whole, 32):
            t, h = compress(buffer[start:start + 32] + h)
            total ^= int.from_bytes(t, "little")
        self._h, self._sum = h, total
        self._pending = buffer[whole:]

    def digest(self) -> bytes:
        h, total = self._h, self._sum
        if self._pending:
            t, h = compress(self._pending.ljust(32, b"\0") + h)
            total ^= int.from_bytes(t, "little")
        bits = (8 * self._length) % (1 << 128)
        _, result = compress(bits.to_bytes(16, "little") + total.to_bytes(16, "little") + h)
        return result

    def hexdigest(self) -> str:
        return self.digest().hex()


def belt_hash(data: bytes) -> bytes:
    """belt-hash of `data`: 32 octets."""
    return BeltHash(data).digest()
