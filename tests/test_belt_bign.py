"""Known-answer tests for belt and bign: the standards' own tables (STB 34.101.31 appendix A,
STB 34.101.45 appendix Г), as the English rendition and the reference implementation give them."""
from __future__ import annotations

import pytest

from signing import belt, bign


def beltH(start: int, count: int) -> bytes:
    return belt.H[start:start + count]


def _c_belt():
    try:
        from signing import _belt
    except ImportError as error:  # a failed build must show here, not pass silently
        pytest.fail(f"the C belt extension (signing._belt) is not built: {error}; run pip install -e .")
    return _belt.BeltHash, _belt.encrypt_block


# Both implementations of belt-hash and belt-block: the pure-Python one and the C extension.
IMPLEMENTATIONS = {"python": lambda: (belt.PythonBeltHash, belt.python_encrypt_block), "c": _c_belt}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def implementation(request):
    """(hash class, encrypt_block function) of one implementation."""
    return IMPLEMENTATIONS[request.param]()


def test_belt_block_a1(implementation) -> None:
    _, encrypt_block = implementation
    assert encrypt_block(beltH(0, 16), beltH(128, 32)).hex().upper() == "69CCA1C93557C9E3D66BC3E0FA88FA6E"


def test_belt_block_inverse_a4() -> None:
    assert belt.decrypt_block(bytes.fromhex("69CCA1C93557C9E3D66BC3E0FA88FA6E"), beltH(128, 32)) == beltH(0, 16)
    assert belt.decrypt_block(beltH(64, 16), beltH(160, 32)).hex().upper() == "0DC5300600CAB840B38448E5E993F421"


def test_belt_compress_a8() -> None:
    s, y = belt.compress(beltH(0, 64))
    assert s.hex().upper() == "46FE7425C9B181EB41DFEE3E72163D5A"
    assert y.hex().upper() == "ED2F5481D593F40D87FCE37D6BC1A2E1B7D1A2CC975C82D3C0497488C90D99D8"


@pytest.mark.parametrize("length, expected", [
    (13, "ABEF9725D4C5A83597A367D14494CC2542F20F659DDFECC961A3EC550CBA8C75"),
    (32, "749E4C3653AECE5E48DB4761227742EB6DBE13F4A80F7BEFF1A9CF8D10EE7786"),
    (48, "9D02EE446FB6A29FE5C982D4B13AF9D3E90861BC4CEF27CF306BFB0B174A154A"),
])
def test_belt_hash_a23(implementation, length: int, expected: str) -> None:
    new_hash, _ = implementation
    assert new_hash(beltH(0, length)).hexdigest().upper() == expected
    assert belt.belt_hash(beltH(0, length)).hex().upper() == expected  # the public function


def test_belt_hash_incremental_equals_one_shot(implementation) -> None:
    new_hash, _ = implementation
    data = beltH(0, 256) * 3
    hasher = new_hash()
    for start in range(0, len(data), 37):
        hasher.update(data[start:start + 37])
    assert hasher.digest() == new_hash(data).digest() == belt.belt_hash(data)


D = bytes.fromhex("1F66B5B84B7339674533F0329C74F21834281FED0732429E0C79235FC273E269")
Q = bytes.fromhex("BD1A5650179D79E03FCEE49D4C2BD5DDF54CE46D0CF11E4FF87BF7A890857FD0"
                  "7AC6A60361E8C8173491686D461B2826190C2EDA5909054A9AB84D2AB9D99A90")
SIG_G2 = bytes.fromhex("E36B7F0377AE4C524027C387FADF1B20CE72F1530B71F2B5FD3A8C584FE2E1AE"
                       "D20082E30C8AF65011F4FB54649DFD3D")
SIG_G3 = bytes.fromhex("47A63C8B9C936E94B5FAB3D9CBD78366290F3210E163EEC8DB4E921E8479D413"
                       "8F112CC23E6DCE65EC5FF21DF4231C28")


def test_bign_public_key_from_private_g1() -> None:
    assert bign.BignPrivateKey(D).public_key().encoded == Q


def test_bign_sign_with_the_standards_k_g2() -> None:
    k = int.from_bytes(bytes.fromhex("4C0E74B2CD5811AD21F23DE7E0FA742C3ED6EC483C461CE15C33A77AA308B7D2"), "little")
    assert bign.sign_hash(bign.BignPrivateKey(D), belt.belt_hash(beltH(0, 13)), k=k) == SIG_G2


@pytest.mark.parametrize("message, signature", [(beltH(0, 13), SIG_G2), (beltH(0, 48), SIG_G3)])
def test_bign_verify_g2_g3_and_refuse_any_changed_bit(message: bytes, signature: bytes) -> None:
    public = bign.BignPublicKey(Q)
    assert bign.verify(public, signature, message)
    assert not bign.verify(public, bytes([signature[0] ^ 1]) + signature[1:], message)
    assert not bign.verify(public, signature[:-1] + bytes([signature[-1] ^ 0x80]), message)
    assert not bign.verify(public, signature, message + b"\0")
    other = bign.BignPrivateKey(bytes([D[0] ^ 1]) + D[1:]).public_key()
    assert not bign.verify(other, signature, message)


@pytest.mark.parametrize("message, extra, expected", [
    (beltH(0, 13), b"", "829614D8411DBBC4E1F2471A4004586440FD8C9553FAB6A1A45CE417AE97111E"),
    (beltH(0, 48), beltH(192, 23), "7ADC8713283EBFA547A2AD9CDFB245AE0F7B968DF0F91CB785D1F932A3583107"),
])
def test_bign_genk_g6_g7(message: bytes, extra: bytes, expected: str) -> None:
    k = bign.generate_k(bign.BignPrivateKey(D), belt.belt_hash(message), extra)
    assert k.to_bytes(32, "little").hex().upper() == expected


def test_bign_deterministic_signature_is_reproducible_and_verifies() -> None:
    key = bign.BignPrivateKey(D)
    first = bign.sign(key, b"a packet")
    assert first == bign.sign(key, b"a packet") and len(first) == 48
    assert bign.verify(key.public_key(), first, b"a packet")


def test_bign_generated_keys_sign_and_verify() -> None:
    key = bign.BignPrivateKey.generate()
    signature = bign.sign(key, b"document")
    assert bign.verify(key.public_key(), signature, b"document")
    assert not bign.verify(bign.BignPrivateKey.generate().public_key(), signature, b"document")


def test_bign_rejects_malformed_keys_and_signatures() -> None:
    with pytest.raises(ValueError):
        bign.BignPublicKey(Q[:32] + bytes(32))  # not on the curve
    with pytest.raises(ValueError):
        bign.BignPrivateKey(bytes(32))  # d = 0
    assert not bign.verify(bign.BignPublicKey(Q), SIG_G2[:47], beltH(0, 13))
    too_big = SIG_G2[:16] + b"\xff" * 32  # S1 >= q
    assert not bign.verify(bign.BignPublicKey(Q), too_big, beltH(0, 13))
