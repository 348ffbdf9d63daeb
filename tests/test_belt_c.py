"""The C belt extension (signing/_belt.c) against the pure-Python belt (signing/belt.py): identical
results for many inputs, the same interface and errors, and the fallback when the extension is
missing. The standard's own vectors run against both in tests/test_belt_bign.py."""
from __future__ import annotations

import random
import subprocess
import sys

import pytest

from signing import belt


@pytest.fixture(scope="module")
def c_belt():
    try:
        from signing import _belt
    except ImportError as error:  # CI installs with gcc: a failed build must show here
        pytest.fail(f"the C belt extension (signing._belt) is not built: {error}; run pip install -e .")
    return _belt


def test_the_public_api_uses_the_extension_when_it_is_built(c_belt) -> None:
    assert belt.ACCELERATED
    assert belt.BeltHash is c_belt.BeltHash and belt.encrypt_block is c_belt.encrypt_block


def test_hashes_agree_for_every_length_up_to_300(c_belt) -> None:
    rng = random.Random(14)
    for length in range(301):
        data = rng.randbytes(length)
        assert c_belt.BeltHash(data).digest() == belt.PythonBeltHash(data).digest(), length


@pytest.mark.parametrize("length", [1023, 4096, 65_536 + 13])
def test_hashes_agree_for_large_inputs_in_one_piece_and_in_random_pieces(c_belt, length: int) -> None:
    rng = random.Random(length)
    data = rng.randbytes(length)
    expected = belt.PythonBeltHash(data).digest()
    assert c_belt.BeltHash(data).digest() == expected
    pieces = c_belt.BeltHash()
    start = 0
    while start < length:
        size = rng.choice([0, 1, 7, 31, 32, 33, 64, 100, 1000, 5000])
        pieces.update(data[start:start + size])
        start += size
    assert pieces.digest() == expected


def test_streaming_digest_and_copy_leave_the_state_usable(c_belt) -> None:
    data = random.Random(7).randbytes(200)
    for new in (c_belt.BeltHash, belt.PythonBeltHash):
        hasher = new(data[:50])
        assert hasher.digest() == belt.PythonBeltHash(data[:50]).digest()  # digest() does not finish it
        fork = hasher.copy()
        hasher.update(data[50:])
        fork.update(b"other")
        assert hasher.digest() == belt.PythonBeltHash(data).digest()
        assert fork.digest() == belt.PythonBeltHash(data[:50] + b"other").digest()
        hasher.update(memoryview(b"ab"))
        hasher.update(bytearray(b"cd"))
        assert hasher.hexdigest() == belt.PythonBeltHash(data + b"abcd").hexdigest()
        assert (hasher.name, hasher.digest_size, hasher.block_size) == ("belt-hash", 32, 32)


def test_block_encryption_agrees_and_refuses_wrong_sizes(c_belt) -> None:
    rng = random.Random(31)
    for _ in range(200):
        block, key = rng.randbytes(16), rng.randbytes(32)
        assert c_belt.encrypt_block(block, key) == belt.python_encrypt_block(block, key)
    for encrypt in (c_belt.encrypt_block, belt.python_encrypt_block):
        with pytest.raises(ValueError, match="16 octets, not 15"):
            encrypt(bytes(15), bytes(32))
        with pytest.raises(ValueError, match="32 octets, not 31"):
            encrypt(bytes(16), bytes(31))
    with pytest.raises(TypeError):
        c_belt.BeltHash().update("text")


def test_without_the_extension_belt_falls_back_to_python() -> None:
    # None in sys.modules makes the import fail exactly as when the build failed.
    program = (
        "import sys; sys.modules['signing._belt'] = None\n"
        "from signing import belt, bign\n"
        "assert not belt.ACCELERATED and belt.BeltHash is belt.PythonBeltHash\n"
        "assert belt.encrypt_block is belt.python_encrypt_block\n"
        "print(belt.belt_hash(belt.H[:13]).hex().upper())\n"
        "key = bign.BignPrivateKey.generate()\n"
        "print(bign.verify(key.public_key(), bign.sign(key, b'packet'), b'packet'))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ABEF9725D4C5A83597A367D14494CC2542F20F659DDFECC961A3EC550CBA8C75", "True"]
