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

    Without huge_tree, libxml2 itself also refuses nesting beyond 256 levels and any single
    text node over 10 MB, so a file larger than that travels as a part beside the envelope.
    """

    max_bytes: int = 30 * 1024 * 1024
    max_depth: int = 64


_PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,  # libxml2 then caps depth at 256 and text nodes at 10 MB
    remove_comments=False,
    remove_pis=False,
    collect_ids=False,
)


# lxml parsers are not thread-safe: keep one per thread, made on first use.
_local = threading.local()


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(**_PARSER_OPTIONS)
        _local.parser = parser
    return parser


def _reject(message: str, line: int | None = None) -> PacketRejected:
    where = f" (line {line})" if line else ""
    return PacketRejected([Problem(int(ErrorCode.XML_UNPARSABLE), message + where, None)])


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def parse_xml(data: bytes, limits: Limits = Limits()) -> etree._Element:
    """Parse untrusted packet bytes into an element tree, or raise PacketRejected (code -1)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse_xml expects bytes")
    size = len(data)
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
    parser = _parser()
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
        return ("XML nested too deeply: the parser's hard limit (256 levels) was exceeded; "
                f"packets may nest at most {limits.max_depth} levels ({text})")
    if "text node too long" in lowered:
        return ("a text node is longer than the parser's 10 MB limit: send a large file as a part "
                f"beside the envelope (Data/@referenceid) ({text})")
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

    The parser is already bounded (no huge_tree: at most 256 levels), so this is too.
    """
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _reject("DTD not allowed: the packet contains a DOCTYPE declaration")
    if _depth_probe(limits.max_depth)(root):
        deepest = root.xpath("/" + "/".join(["*"] * (limits.max_depth + 1)))[0]
        raise _reject(f"XML nested too deeply: more than {limits.max_depth} levels",
                      deepest.sourceline)
