"""Packet validation: the compiled XSD (lxml/libxml2) plus the rules an XSD cannot express.

Every problem carries a format code (packet-format.md) and the path of what is wrong, e.g.
`/Envelop/Header/Sender/@sys_id`. `validate` is the hot path (libxml2 only); `explain` runs
xmlschema for a richer report, off the hot path.

One mechanism maps errors to codes: each backend's error is reduced to a `_Fact` (what went
wrong, on which element/attribute/child), and `_classify` turns facts into codes.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lxml import etree

from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.kinds import is_known_kind
from smdo.xmlparse import parse_xml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_PATH = SCHEMA_DIR / "sdip-2.1.xsd"

FORMAT_NAME = "SDIP"
SUPPORTED_VERSION = (2, 1)

XSD_NS = "http://www.w3.org/2001/XMLSchema"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"

# Which zone each message type carries.
ZONES_FOR_MSG_TYPE: dict[int, frozenset[str]] = {
    0: frozenset({"Acknowledgement"}),
    1: frozenset({"Document", "Task"}),
    2: frozenset({"AddDocuments"}),
    3: frozenset({"Document", "Task"}),
    4: frozenset({"AddDocuments"}),
}
ZONE_NAMES = frozenset({"Document", "Task", "AddDocuments", "Acknowledgement"})
# Elements whose attributes are "header attributes" (code 12 when missing).
HEADER_ELEMENTS = frozenset({"Envelop", "Header", "Sender"})


# ---------------------------------------------------------------- schema loading


class _LocalOnlyResolver(etree.Resolver):
    """Resolve schema imports from the schemas/ folder only; refuse everything else."""

    def resolve(self, url, pubid, context):  # type: ignore[override]
        path = Path(url.removeprefix("file://")).resolve() if url else None
        if path is not None and path.parent == SCHEMA_DIR and path.suffix == ".xsd" and path.is_file():
            return self.resolve_filename(str(path), context)
        raise ValueError(f"schema resource refused (only local schemas/ files are allowed): {url!r}")


# One compiled schema per thread: an XMLSchema keeps its error log on the object, so two
# threads validating with one instance could read each other's errors.
_per_thread = threading.local()


def _safe_parser() -> etree.XMLParser:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_LocalOnlyResolver())
    return parser


def schema() -> etree.XMLSchema:
    """The compiled SDIP 2.1 schema, built once per thread from local files (never the network)."""
    compiled = getattr(_per_thread, "schema", None)
    if compiled is None:
        compiled = _per_thread.schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH), _safe_parser()))
    return compiled


@dataclass(frozen=True)
class _Structure:
    """Which child element names each SDIP element may contain, read from the XSD."""

    children: dict[str, frozenset[str]]
    required: dict[str, frozenset[str]]  # children a sequence requires (minOccurs >= 1, not in a choice)
    known: frozenset[str]


_structure: _Structure | None = None


def _schema_structure() -> _Structure:
    # Only needed to classify errors, so read lazily; a plain walk over the XSD's own tree.
    global _structure
    if _structure is None:
        xsd = etree.parse(str(SCHEMA_PATH), _safe_parser()).getroot()
        q = "{%s}" % XSD_NS
        types = {t.get("name"): t for t in xsd.iter(q + "complexType") if t.get("name")}

        def type_children(node: etree._Element, required_only: bool = False) -> set[str]:
            names: set[str] = set()
            for element in node.iter(q + "element"):
                if required_only and (element.get("minOccurs") == "0" or
                                      any(a.tag == q + "choice" for a in element.iterancestors())):
                    continue
                names.add(element.get("name") or element.get("ref", ""))  # refs: "ds:Signature", like _local
            for extension in node.iter(q + "extension"):
                base = types.get(extension.get("base", ""))
                if base is not None:
                    names |= type_children(base, required_only)
            return names

        children: dict[str, set[str]] = {}
        required: dict[str, set[str]] = {}
        for element in xsd.iter(q + "element"):
            name = element.get("name")
            if not name:
                continue
            declared = types.get(element.get("type", ""))
            if declared is None:
                declared = element.find(q + "complexType")
            children.setdefault(name, set()).update(type_children(declared) if declared is not None else ())
            required.setdefault(name, set()).update(type_children(declared, True) if declared is not None else ())
        _structure = _Structure(
            children={k: frozenset(v) for k, v in children.items()},
            required={k: frozenset(v) for k, v in required.items()},
            known=frozenset(children),
        )
    return _structure


# ---------------------------------------------------------------- public API


def validate(root: etree._Element) -> list[Problem]:
    """Every problem of a parsed packet, with format codes; [] if it is valid."""
    problems = check_format(root)
    if problems:
        return problems
    xsd = schema()
    if not xsd.validate(root):
        problems = [_classify(_fact_from_libxml2(entry), root) for entry in xsd.error_log]
    problems.extend(check_semantics(root))
    return _dedupe(problems)


def explain(data: bytes) -> list[Problem]:
    """A path-precise report from xmlschema (slow; for people and `smdo validate`).

    The hardened parser still reads the bytes (xmlschema never sees raw input), so a
    hostile packet gets the same -1 answer here as on the hot path.
    """
    try:
        root = parse_xml(data)
    except PacketRejected as exc:
        return exc.problems
    problems = check_format(root)
    if problems:
        return problems
    import xmlschema  # imported here: it costs ~0.2 s and the hot path never needs it

    # The tree is already parsed; the resource must not load anything else.
    resource = xmlschema.XMLResource(root, allow="none")
    problems = [_classify(_fact_from_xmlschema(error, root), root)
                for error in _xmlschema().iter_errors(resource)]
    problems.extend(check_semantics(root))
    return _dedupe(problems)


def check_format(root: etree._Element) -> list[Problem]:
    """Format name and version from the root, checked first: other formats get no XSD check."""
    if root.tag != "Envelop":
        name = _display_name(root.tag)
        return [Problem(int(ErrorCode.WRONG_FORMAT),
                        f"wrong format: the root element is {name}, an SDIP packet's root is Envelop "
                        "(in no namespace)", "/" + _local(name) if isinstance(root.tag, str) else None)]
    format_type = root.get("type")
    if format_type is None:
        return []  # the schema reports the missing attribute (code 12)
    match = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)-(\d+)\.(\d+)((?:\.\d+)*)\s*", format_type)
    if match is None or match.group(1) != FORMAT_NAME:
        return [Problem(int(ErrorCode.WRONG_FORMAT),
                        f"wrong format {format_type!r}: expected {FORMAT_NAME}-"
                        f"{SUPPORTED_VERSION[0]}.{SUPPORTED_VERSION[1]}", "/Envelop/@type")]
    version = (int(match.group(2)), int(match.group(3)))
    if version == SUPPORTED_VERSION and match.group(4).count(".") <= 1:  # 2.1 or 2.1.N (a patch level)
        return []
    if version < SUPPORTED_VERSION:  # obsolete: the router answers these with code 105
        message = (f"obsolete format version {format_type}: the hub accepts only "
                   f"{FORMAT_NAME}-{SUPPORTED_VERSION[0]}.{SUPPORTED_VERSION[1]}")
    else:
        message = (f"unsupported format version {format_type}: the hub accepts only "
                   f"{FORMAT_NAME}-{SUPPORTED_VERSION[0]}.{SUPPORTED_VERSION[1]}")
    return [Problem(int(ErrorCode.WRONG_VERSION), message, "/Envelop/@type")]


def is_obsolete_version(problems: Iterable[Problem]) -> bool:
    """True when the packet was refused for an obsolete version (the router answers 105)."""
    return any(p.code == ErrorCode.WRONG_VERSION and p.message.startswith("obsolete") for p in problems)


# ---------------------------------------------------------------- rules beyond the XSD

# Characters of base64 text. libxml2's xs:base64Binary silently skips characters outside the
# alphabet, and an XSD pattern over megabytes is slow, so the alphabet is checked here.
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n"


def _is_base64_text(text: str | None) -> bool:
    if not text:
        return True
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return False
    return not raw.translate(None, _B64_ALPHABET)


def check_semantics(root: etree._Element) -> list[Problem]:
    """Rules the XSD cannot express. Robust against a tree the XSD refused."""
    problems: list[Problem] = []
    header = root.find("Header")
    body = root.find("Body")
    zone = body.find("*") if body is not None else None  # the first element: comments may precede it
    if header is None or zone is None:
        return problems
    msg_type_text = header.get("msg_type")
    msg_type = int(msg_type_text) if msg_type_text in ("0", "1", "2", "3", "4") else None
    if msg_type is not None and zone.tag in ZONE_NAMES and zone.tag not in ZONES_FOR_MSG_TYPE[msg_type]:
        expected = " or ".join(sorted(ZONES_FOR_MSG_TYPE[msg_type]))
        problems.append(Problem(int(ErrorCode.WRONG_ZONE_TYPE),
                                f"msg_type {msg_type} carries {expected}, not {zone.tag}",
                                f"/Envelop/Body/{zone.tag}"))
    if zone.tag == "Document":
        kind = zone.get("kind")
        if kind is not None and not is_known_kind(kind):
            problems.append(Problem(int(ErrorCode.WRONG_ATTRIBUTE_TYPE),
                                    f"document kind {kind!r} is not in the hub's document-kind directory "
                                    "(an attribute value: code 33)", "/Envelop/Body/Document/@kind"))
    if msg_type == 3 and zone.tag in ("Document", "Task") and zone.find("DocParent") is None:
        problems.append(Problem(int(ErrorCode.WRONG_ELEMENT_COUNT),
                                "a reply (msg_type 3) must carry DocParent, the document it answers",
                                f"/Envelop/Body/{zone.tag}/DocParent"))
    if zone.tag == "Acknowledgement":
        problems.extend(_check_acknowledgement(zone))
        problems.extend(_check_refusal_reason(zone))
    for transfer in zone.iter("DocTransfer"):
        problems.extend(_check_doc_transfer(transfer))
    for referred in root.iter("Referred"):
        problems.extend(_check_referred(referred))
    return problems


# retype says what is referred to; the child must be that kind of number.
_NUMBER_FOR_RETYPE = {"1": "RegNumber", "2": "TaskNumber"}


def _check_referred(referred: etree._Element) -> list[Problem]:
    number = referred.find("*")
    expected = _NUMBER_FOR_RETYPE.get(referred.get("retype", ""))
    if number is None or expected is None or number.tag == expected:
        return []
    return [Problem(int(ErrorCode.WRONG_ATTRIBUTE_TYPE),
                    f"Referred retype {referred.get('retype')} refers to a "
                    f"{'document' if expected == 'RegNumber' else 'task'} by {expected}, but carries {number.tag}",
                    _path_of(referred) + "/@retype")]


def _check_acknowledgement(ack: etree._Element) -> list[Problem]:
    problems: list[Problem] = []
    path = "/Envelop/Body/Acknowledgement"
    ack_type = ack.get("ack_type")
    codes = {r.get("errorcode") for r in ack.iterfind("AckResult")}
    if ack_type == "2" and "0" in codes and ack.find("IncNumber") is None:
        problems.append(Problem(int(ErrorCode.WRONG_ELEMENT_COUNT),
                                "a registration acknowledgement saying 'registered' (errorcode 0) must carry "
                                "IncNumber, the recipient's incoming number and date", path + "/IncNumber"))
    notification = ack.find("Notification")
    if ack_type == "4" and notification is None:
        problems.append(Problem(int(ErrorCode.WRONG_ELEMENT_COUNT),
                                "an event notification (ack_type 4) must carry Notification", path + "/Notification"))
    if notification is not None:
        if notification.get("event") == "refused" and notification.get("reason") is None:
            problems.append(Problem(int(ErrorCode.REQUIRED_ATTRIBUTE_MISSING),
                                    "a 'refused' notification must name its reason from the closed list",
                                    path + "/Notification/@reason"))
        if notification.get("event") == "registered" and ack.find("IncNumber") is None:
            problems.append(Problem(int(ErrorCode.WRONG_ELEMENT_COUNT),
                                    "a 'registered' notification must carry IncNumber", path + "/IncNumber"))
    return problems


def _check_refusal_reason(ack: etree._Element) -> list[Problem]:
    """A registration acknowledgement saying 'refused' (errorcode 2) must say why: a 'refused'
    Notification with its reason from the closed list (code 35). Without this rule an ack with no
    Notification at all passed, since only a Notification that is present had its reason checked."""
    if ack.get("ack_type") != "2" or "2" not in {r.get("errorcode") for r in ack.iterfind("AckResult")}:
        return []
    if any(n.get("event") == "refused" for n in ack.iterfind("Notification")):
        return []  # present: its reason is checked with the other Notification rules
    return [Problem(int(ErrorCode.REQUIRED_ATTRIBUTE_MISSING),
                    "a registration acknowledgement saying 'refused' (errorcode 2) must carry a 'refused' "
                    "Notification naming its reason from the closed list", "/Envelop/Body/Acknowledgement/Notification")]


def _check_doc_transfer(transfer: etree._Element) -> list[Problem]:
    problems: list[Problem] = []
    data = transfer.find("Data")
    if data is not None:
        content = (data.text or "") if len(data) == 0 else "".join(data.itertext())  # comments may split it
        if data.get("referenceid") is not None and content.strip():
            problems.append(Problem(int(ErrorCode.WRONG_ELEMENT_TYPE),
                                    "Data carries both inline content and a referenceid; use one", _path_of(data)))
        elif not _is_base64_text(content):
            problems.append(Problem(int(ErrorCode.WRONG_ELEMENT_TYPE), "Data content is not base64", _path_of(data)))
    for signature in transfer.iterfind("Signature"):
        if not _is_base64_text("".join(signature.itertext())):
            problems.append(Problem(int(ErrorCode.WRONG_ELEMENT_TYPE),
                                    "the file's Signature is not base64", _path_of(signature)))
    return problems


# ---------------------------------------------------------------- error classification


@dataclass(frozen=True)
class _Fact:
    """One schema error, independent of the validator that found it."""

    kind: str  # missing_attribute | unexpected_attribute | bad_attribute | bad_content |
    #            unexpected_child | missing_child | content_not_allowed | wrong_root | other
    path: str  # of the element concerned (for unexpected_child: of the child)
    element: str
    attribute: str | None = None
    expected: tuple[str, ...] = ()
    detail: str = ""


_ELEMENT_ATTR = re.compile(r"^Element '(?P<el>[^']*)'(?:, attribute '(?P<attr>[^']*)')?: (?P<rest>.*)$", re.S)
_EXPECTED = re.compile(r"Expected is (?:one of )?\( (?P<names>[^)]*) \)")


def _fact_from_libxml2(entry: etree._LogEntry) -> _Fact:
    message = entry.message
    match = _ELEMENT_ATTR.match(message)
    element = _local(match.group("el")) if match else ""
    attribute = match.group("attr") if match else None
    rest = match.group("rest") if match else message
    path = entry.path or ""
    listed = _EXPECTED.search(rest)
    expected = tuple(n.strip() for n in listed.group("names").split(",")) if listed else ()
    type_name = entry.type_name
    if type_name == "SCHEMAV_CVC_COMPLEX_TYPE_4":
        attribute = re.search(r"attribute '([^']*)'", rest).group(1)
        kind = "missing_attribute"
    elif type_name == "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1" or (attribute and "is not allowed" in rest):
        kind = "unexpected_attribute"
    elif type_name == "SCHEMAV_CVC_ELT_1":
        kind = "wrong_root"
    elif type_name == "SCHEMAV_ELEMENT_CONTENT" and "Missing child" in rest:
        kind = "missing_child"
    elif type_name == "SCHEMAV_ELEMENT_CONTENT":
        kind = "unexpected_child"
    elif type_name == "SCHEMAV_CVC_COMPLEX_TYPE_2_1":
        kind = "content_not_allowed"  # element content inside an element declared empty
    elif attribute:
        kind = "bad_attribute"
    elif type_name.startswith("SCHEMAV_"):
        kind = "bad_content"
    else:
        kind = "other"
    return _Fact(kind, path, element, attribute, expected, rest.strip())


def _classify(fact: _Fact, root: etree._Element) -> Problem:
    path = _clean_path(fact.path)
    element = fact.element
    if fact.kind == "missing_attribute":
        where = f"{path}/@{fact.attribute}"
        if element == "Receiver" and fact.attribute == "id":
            return Problem(int(ErrorCode.RECIPIENT_NOT_DEFINED), "Receiver has no id: recipient not defined", where)
        code = ErrorCode.HEADER_ATTRIBUTE_MISSING if element in HEADER_ELEMENTS else ErrorCode.REQUIRED_ATTRIBUTE_MISSING
        return Problem(int(code), f"required attribute {fact.attribute} of {element} is missing", where)
    if fact.kind == "unexpected_attribute":
        return Problem(int(ErrorCode.INVALID_ELEMENTS),
                       f"attribute {fact.attribute} is not allowed on {element}", f"{path}/@{fact.attribute}")
    if fact.kind == "bad_attribute":
        where = f"{path}/@{fact.attribute}"
        if element == "Header" and fact.attribute == "msg_type":
            return Problem(int(ErrorCode.WRONG_MESSAGE_TYPE),
                           "msg_type must be 0 (acknowledgement), 1 (document), 2 (supplement), "
                           f"3 (reply) or 4 (supplement to a reply): {fact.detail}", where)
        return Problem(int(ErrorCode.WRONG_ATTRIBUTE_TYPE), f"bad value of {element}/@{fact.attribute}: "
                       f"{_strip_prefix(fact.detail)}", where)
    if fact.kind == "bad_content":
        return Problem(int(ErrorCode.WRONG_ELEMENT_TYPE), f"bad content of {element}: {_strip_prefix(fact.detail)}",
                       path)
    if fact.kind == "wrong_root":
        return Problem(int(ErrorCode.WRONG_FORMAT), f"wrong format: {fact.detail}", path)
    if fact.kind == "missing_child":
        return _missing_child(element, fact.expected, path)
    if fact.kind == "content_not_allowed":
        node = _node_at(root, fact.path)
        child = next((c for c in node if isinstance(c.tag, str)), None) if node is not None else None
        if child is not None:
            return _unexpected_child(_local(child.tag), element, _path_of(child), (), child)
        return Problem(int(ErrorCode.WRONG_ELEMENT_TYPE), f"{element} must be empty: it may not contain text", path)
    if fact.kind == "unexpected_child":
        parent_path = path.rsplit("/", 1)[0]
        parent = parent_path.rsplit("/", 1)[-1].split("[")[0] or "Envelop"
        return _unexpected_child(element, parent, path, fact.expected, _node_at(root, fact.path))
    return Problem(int(ErrorCode.WRONG_ELEMENT_TYPE), fact.detail or "schema violation", path)


def _missing_child(parent: str, expected: tuple[str, ...], path: str) -> Problem:
    names = ", ".join(expected) or "?"
    if parent == "Header" and "Receiver" in expected:
        return Problem(int(ErrorCode.RECIPIENT_NOT_DEFINED), "no Receiver: recipient not defined", path + "/Receiver")
    if parent == "Header" or (parent == "Envelop" and "Header" in expected):
        return Problem(int(ErrorCode.HEADER_ATTRIBUTE_MISSING), f"{parent} is missing {names}", f"{path}/{expected[0]}")
    if parent == "Body" or (parent == "Envelop" and "Body" in expected):
        return Problem(int(ErrorCode.ZONE_MISSING), "required zone missing: Body needs one of Document, Task, "
                       "AddDocuments or Acknowledgement", path if parent == "Body" else path + "/Body")
    return Problem(int(ErrorCode.WRONG_ELEMENT_COUNT), f"{parent} is missing a required element: expected {names}",
                   f"{path}/{expected[0]}" if len(expected) == 1 else path)


def _unexpected_child(name: str, parent: str, path: str, expected: tuple[str, ...],
                      node: etree._Element | None) -> Problem:
    structure = _schema_structure()
    allowed = structure.children.get(parent, frozenset())
    previous = node.getprevious() if node is not None else None
    while previous is not None and not isinstance(previous.tag, str):
        previous = previous.getprevious()
    siblings = {_local(c.tag) for c in node.getparent() if isinstance(c.tag, str)} \
        if node is not None and node.getparent() is not None else set()
    if parent == "Body" and name in ZONE_NAMES:
        return Problem(int(ErrorCode.DUPLICATE_ZONE), f"duplicate zone: Body already has a zone, {name} is another",
                       path)
    if name in allowed:
        # The element belongs here: one too many, something required missing before it, or out of order.
        if previous is not None and _local(previous.tag) == name:
            return Problem(int(ErrorCode.WRONG_ELEMENT_COUNT), f"too many {name} elements in {parent}", path)
        required = structure.required.get(parent, frozenset())
        missing = tuple(e for e in expected if e in required and e not in siblings)
        if missing:
            return _missing_child(parent, missing, _clean_path(path.rsplit("/", 1)[0]))
        return Problem(int(ErrorCode.WRONG_NESTING), f"{name} is out of order in {parent}"
                       + (f": expected {', '.join(expected)}" if expected else ""), path)
    if name in structure.known:
        return Problem(int(ErrorCode.WRONG_NESTING), f"{name} may not appear inside {parent}", path)
    return Problem(int(ErrorCode.INVALID_ELEMENTS), f"unknown element {name} in {parent}", path)


# ---------------------------------------------------------------- xmlschema (explain)

_xmlschema_schema = None


def _xmlschema():
    global _xmlschema_schema
    if _xmlschema_schema is None:
        import xmlschema

        # allow="sandbox": only files under schemas/ may be read while building the schema.
        _xmlschema_schema = xmlschema.XMLSchema10(str(SCHEMA_PATH), allow="sandbox")
    return _xmlschema_schema


def _fact_from_xmlschema(error, root: etree._Element) -> _Fact:
    import xmlschema.validators.exceptions as xe

    elem = error.elem if error.elem is not None else error.obj
    node = elem if isinstance(elem, etree._Element) else None
    path = _path_of(node) if node is not None else (error.path or "")
    element = _local(node.tag) if node is not None else ""
    reason = error.reason or ""
    if isinstance(error, xe.XMLSchemaChildrenValidationError):
        expected = tuple(_local(getattr(e, "name", None) or str(e)) for e in (error.expected or ()))
        if error.invalid_child is None or error.index >= len(node):
            return _Fact("missing_child", path, element, None, expected, reason)
        child = error.invalid_child
        return _Fact("unexpected_child", _path_of(child), _local(child.tag), None, expected, reason)
    if node is not None and node.getparent() is None and element != "Envelop":
        return _Fact("wrong_root", path, element, None, (), reason)
    if "content is empty" in reason and node is not None and any(isinstance(c.tag, str) for c in node):
        return _Fact("content_not_allowed", path, element, None, (), reason)
    match = re.search(r"missing required attribute '([^']+)'", reason)
    if match:
        return _Fact("missing_attribute", path, element, match.group(1), (), reason)
    match = re.search(r"'([^']+)' attribute not allowed", reason)
    if match:
        return _Fact("unexpected_attribute", path, element, match.group(1), (), reason)
    match = re.match(r"attribute ([^=\s]+)=", reason)
    if match:
        return _Fact("bad_attribute", path, element, match.group(1), (), reason)
    return _Fact("bad_content", path, element, None, (), reason)


# ---------------------------------------------------------------- helpers


def _local(tag: str) -> str:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return f"ds:{name}" if namespace == DS_NS else name
    return tag


def _display_name(tag: object) -> str:
    # Keep a foreign namespace visible: "{urn:x}Envelop" is exactly what is wrong.
    return tag if isinstance(tag, str) else str(tag)


def _strip_prefix(detail: str) -> str:
    return re.sub(r"^\[facet '[^']*'\] ", "", detail)


def _path_of(node: etree._Element) -> str:
    parts = []
    while node is not None:
        name = _local(node.tag)
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def _clean_path(path: str) -> str:
    # libxml2 writes the ds namespace as "ds:" only if declared so; normalise "ns0:" prefixes away.
    return re.sub(r"\bns\d+:", "", path)


def _node_at(root: etree._Element, path: str) -> etree._Element | None:
    if not path:
        return None
    try:
        found = root.getroottree().xpath(path, namespaces={"ds": DS_NS})
    except etree.XPathError:
        return None
    return found[0] if found and isinstance(found[0], etree._Element) else None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    # One problem per code and place: the schema and a rule in code may both see one defect.
    seen: set[tuple[int, str | None]] = set()
    unique = []
    for problem in problems:
        key = (problem.code, problem.path)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique
