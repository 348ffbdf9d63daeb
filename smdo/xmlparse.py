"""Hardened XML parsing: packets come from outside, so no DTD, entity, network or unbounded input.

Every failure is a PacketRejected with code -1 and a message naming the cause and the line.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree

from smdo.errors import ErrorCode, PacketRejected, Problem


@dataclass(frozen=True)
class Limits:
    """Bounds on what the hub is willing to parse.

    `max_bytes` bounds everything else: a UTF-8 packet is parsed with libxml2's huge-tree option
    (see `_parser`), so a single inline file may be as large as the packet allows (a 20 MB
    attachment is ~27 MB of base64). libxml2 still refuses nesting beyond 2048 levels itself;
    `max_depth` is ours.
    """

    max_bytes: int = 30 * 1024 * 1024
    max_depth: int = 64


_PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    remove_comments=False,
    remove_pis=False,
    collect_ids=False,
)


# lxml parsers are not thread-safe: keep one pair per thread, made on first use.
_local = threading.local()


def _parser(huge_tree: bool) -> etree.XMLParser:
    """huge_tree lifts libxml2's own caps (10 MB per text node, 256 levels, entity amplification
    checks). That is safe only where the byte scan in `parse_xml` has proved the packet carries no
    DTD and so no entities: the caller passes `byte_scan_is_conclusive(data)`. Other packets
    (UTF-16, or a declared encoding the scan cannot read) keep every libxml2 cap."""
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(huge_tree)
    if parser is None:
        parser = parsers[huge_tree] = etree.XMLParser(huge_tree=huge_tree, **_PARSER_OPTIONS)
    return parser


_XML_DECLARATION = re.compile(rb"<\?xml\s[^>]{0,200}?\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ASCII_ENCODINGS = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}


def byte_scan_is_conclusive(data: bytes) -> bool:
    """True when the packet is UTF-8 (or ASCII), so "<!DOCTYPE" would appear as those very bytes."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    declaration = _XML_DECLARATION.match(data, start)
    if declaration is None:
        # No declaration means UTF-8, unless UTF-16/32 bytes (zeros) or another BOM say otherwise.
        return data[start:start + 1] in (b"<", b" ", b"\t", b"\r", b"\n") and b"\x00" not in data[start:start + 4]
    encoding = _ENCODING.search(declaration.group())
    return encoding is None or encoding.group(1).lower() in _ASCII_ENCODINGS


def _reject(message: str, line: int | None = None) -> PacketRejected:
    where = f" (line {line})" if line else ""
    return PacketRejected([Problem(int(ErrorCode.XML_UNPARSABLE), message + where, None)])


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def parse_xml(data: bytes, limits: Limits = Limits(), *, size: int | None = None) -> etree._Element:
    """Parse untrusted packet bytes into an element tree, or raise PacketRejected (code -1).
    `size`: of the whole body, when `data` is its reduced form (smdo/inline_files.py)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse_xml expects bytes")
    size = len(data) if size is None else size
    if size > limits.max_bytes:
        raise _reject(f"packet too large: {size} bytes, the limit is {limits.max_bytes}")
    if size == 0:
        raise _reject("empty packet: no XML")
    data = bytes(data)  # no copy when it already is bytes
    # Refuse before libxml2 sees a DTD at all. (A "<!DOCTYPE" inside a comment or CDATA is
    # refused too: harmless for packets, which have no reason to carry one.) Searching for one
    # byte is memchr-fast, a 9-byte needle is ~40x slower, so most packets skip the long search.
    if b"!" in data:
        offset = data.find(b"<!DOCTYPE")
        if offset >= 0:
            raise _reject("DTD not allowed: the packet contains a DOCTYPE declaration",
                          _line_of(data, offset))
        offset = data.find(b"<!ENTITY")
        if offset >= 0:
            raise _reject("entity declarations are not allowed", _line_of(data, offset))
    parser = _parser(huge_tree=byte_scan_is_conclusive(data))
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise _reject(_syntax_message(exc, limits), exc.lineno) from None
    if root is None:
        raise _reject("no root element")
    _check_tree(root, limits)
    return root


def _syntax_message(exc: etree.XMLSyntaxError, limits: Limits) -> str:
    text = re.sub(r", line \d+, column \d+$", "", str(exc.msg or exc))
    lowered = text.lower()
    if "excessive depth" in lowered:
        return ("XML nested too deeply: the parser's hard limit was exceeded; "
                f"packets may nest at most {limits.max_depth} levels ({text})")
    if "text node too long" in lowered:
        return ("a text node is longer than 10 MB, which only a UTF-8 packet may carry: send the "
                f"packet in UTF-8, or the file as a part beside the envelope (Data/@referenceid) ({text})")
    if "amplification" in lowered:
        return f"entity expansion refused: the packet declares entities that expand exponentially ({text})"
    if "entity" in lowered:
        return f"entity references are not allowed ({text})"
    if "resource limit" in lowered:
        return f"XML exceeds a parser resource limit ({text})"
    return f"XML cannot be parsed: {text}"


def _depth_probe(max_depth: int) -> etree.XPath:
    # An element at depth max_depth + 1 exists iff this path matches; libxml2 evaluates it
    # in C, level by level, which costs far less than walking the tree in Python.
    probe = _DEPTH_PROBES.get(max_depth)
    if probe is None:
        probe = etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
        _DEPTH_PROBES[max_depth] = probe
    return probe


_DEPTH_PROBES: dict[int, etree.XPath] = {}


def _check_tree(root: etree._Element, limits: Limits) -> None:
    """Refuse a DOCTYPE the byte scan could not see (other encodings) and too deep nesting.

    The parser is already bounded (libxml2 stops at 256 levels, 2048 with huge_tree), so this is too.
    """
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _reject("DTD not allowed: the packet contains a DOCTYPE declaration")
    if _depth_probe(limits.max_depth)(root):
        deepest = root.xpath("/" + "/".join(["*"] * (limits.max_depth + 1)))[0]
        raise _reject(f"XML nested too deeply: more than {limits.max_depth} levels",
                      deepest.sourceline)
