"""The few DER encoders the certificate and CRL builder needs (X.690), written out: asn1crypto's
builders would need every extension re-described in its types, while cryptography already
encodes names and extension values for us (`public_bytes()`)."""
from __future__ import annotations

import datetime as dt


def tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """DER SET OF: the encodings sorted (X.690 11.6)."""
    return tlv(0x31, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    size = value.bit_length() // 8 + 1  # room for the sign bit
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


NULL = b"\x05\x00"


def boolean(value: bool) -> bytes:
    return b"\x01\x01\xff" if value else b"\x01\x01\x00"


def octet_string(data: bytes) -> bytes:
    return tlv(0x04, data)


def bit_string(data: bytes) -> bytes:
    return tlv(0x03, b"\x00" + data)  # whole octets: no unused bits


def explicit(number: int, content: bytes) -> bytes:
    """[number] EXPLICIT, or [number] IMPLICIT of a constructed type given its contents."""
    return tlv(0xA0 | number, content)


def time(value: dt.datetime) -> bytes:
    """UTCTime until 2049, GeneralizedTime after, as RFC 5280 section 4.1.2.5 requires."""
    value = value.astimezone(dt.timezone.utc)
    if value.year < 2050:
        return tlv(0x17, value.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, value.strftime("%Y%m%d%H%M%SZ").encode())
