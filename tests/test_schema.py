"""The SDIP 2.1 XSD: local files only, precise attribute types, the transport signature's place."""
from __future__ import annotations

import socket

import pytest
from format_fixtures import load_regenerate
from lxml import etree

from smdo.packet import to_element
from smdo.validation import SCHEMA_DIR, SCHEMA_PATH, _LocalOnlyResolver, schema

regenerate = load_regenerate()
XS = "{http://www.w3.org/2001/XMLSchema}"


def test_schemas_reference_only_local_files_and_carry_no_dtd() -> None:
    for path in (SCHEMA_PATH, SCHEMA_DIR / "xmldsig-core-schema.xsd"):
        text = path.read_text(encoding="utf-8")
        assert "<!DOCTYPE" not in text and "<!ENTITY" not in text, path.name
        tree = etree.parse(str(path))
        for node in tree.iter(XS + "import", XS + "include", XS + "redefine"):
            location = node.get("schemaLocation")
            assert location and "/" not in location and (SCHEMA_DIR / location).is_file(), location


def test_sdip_elements_are_in_no_namespace_and_the_choice_is_documented() -> None:
    root = etree.parse(str(SCHEMA_PATH)).getroot()
    assert root.get("targetNamespace") is None
    assert [i.get("namespace") for i in root.iter(XS + "import")] == ["http://www.w3.org/2000/09/xmldsig#"]
    header_comment = root.getprevious()
    assert isinstance(header_comment, etree._Comment) and "Namespaces, decided deliberately" in header_comment.text


def test_the_resolver_refuses_anything_but_local_schema_files(tmp_path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/evil.xsd"
    elsewhere = tmp_path / "elsewhere.xsd"
    elsewhere.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>')
    try:
        for location in (url, str(elsewhere), "file:///etc/passwd"):
            xsd = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                   f'<xs:include schemaLocation="{location}"/></xs:schema>').encode()
            parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
            parser.resolvers.add(_LocalOnlyResolver())
            document = etree.fromstring(xsd, parser, base_url=str(SCHEMA_PATH)).getroottree()
            with pytest.raises((etree.XMLSchemaParseError, ValueError)):
                etree.XMLSchema(document)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    finally:
        server.close()


def test_the_schema_is_compiled_once() -> None:
    assert schema() is schema()


def document_root() -> etree._Element:
    return to_element(regenerate.document())


@pytest.mark.parametrize(("path", "attribute", "value"), [
    (".", "msg_id", "{4b0d9c1e-1111-4222-8333-444455556666}"),  # braces are not a GUID here
    (".", "msg_id", "4b0d9c1e11114222833344445555666"),
    (".", "dtstamp", "2026-11-20 09:30:00"),
    (".", "type", "SDIP-2.1-beta"),
    ("Header", "msg_acknow", "3"),
    ("Header/Sender", "id", "has space"),
    ("Header/Sender", "system", ""),
    ("Body/Document", "type", "3"),
    ("Body/Document", "pages", "-1"),
    ("Body/Document", "pages", "two"),
    ("Body/Document/Validator", "attestation", "5"),
    ("Body/Document/Author/Organization", "unp", "12345"),
    ("Body/Document/Confident", "flag", "true"),
])
def test_attribute_types_are_precise(path: str, attribute: str, value: str) -> None:
    root = document_root()
    (root if path == "." else root.find(path)).set(attribute, value)
    assert not schema().validate(root)


def test_the_transport_signature_is_optional_and_last() -> None:
    root = etree.fromstring((regenerate.HERE / "signed" / "document.xml").read_bytes())
    assert schema().validate(root)
    signature = root[-1]
    root.remove(signature)
    assert schema().validate(root)  # optional
    root.insert(1, signature)  # between Header and Body
    assert not schema().validate(root)


def test_a_signature_in_the_wrong_namespace_is_not_the_transport_signature() -> None:
    root = document_root()
    etree.SubElement(root, "Signature")
    assert not schema().validate(root)


def test_file_signatures_inside_doctransfer_are_base64() -> None:
    root = document_root()
    transfer = root.find("Body/Document/DocTransfer")
    etree.SubElement(transfer, "Signature").text = "MIIB"
    assert schema().validate(root)
    etree.SubElement(transfer, "Signature").text = "MII"  # not a whole base64 quantum
    assert not schema().validate(root)
