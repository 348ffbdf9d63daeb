"""Validation: each defect gets its format code and the path of what is wrong, on both backends."""
from __future__ import annotations

import copy
import json

import pytest
from format_fixtures import envelopes, load_regenerate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from smdo import kinds
from smdo.errors import PacketRejected
from smdo.packet import to_element
from smdo.validation import HEADER_ELEMENTS, _path_of, check_format, explain, is_obsolete_version, validate
from smdo.xmlparse import parse_xml

regenerate = load_regenerate()
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def problems_of(data: bytes) -> list:
    try:
        return validate(parse_xml(data))
    except PacketRejected as exc:
        return exc.problems


INVALID = regenerate.invalid_samples()


@pytest.mark.parametrize("name", sorted(INVALID))
def test_each_invalid_sample_gets_its_code_first_on_the_hot_path_and_in_explain(name: str) -> None:
    expected = regenerate.expected_code(name)
    hot = problems_of(INVALID[name])
    assert hot and hot[0].code == expected, hot
    rich = explain(INVALID[name])
    assert rich and rich[0].code == expected, rich


@pytest.mark.parametrize("name", sorted(regenerate.VALID))
def test_valid_samples_have_no_problems(name: str) -> None:
    data = regenerate.valid_samples()[name]
    assert validate(parse_xml(data)) == []
    assert explain(data) == []


def mutated(mutate, base: str = "document") -> etree._Element:
    root = to_element(regenerate.VALID[base]())
    mutate(root)
    return parse_xml(etree.tostring(root))


@pytest.mark.parametrize(("mutation", "code", "path"), [
    (lambda r: r.find("Header/Sender").attrib.pop("sys_id"), 12, "/Envelop/Header/Sender/@sys_id"),
    (lambda r: r.find("Header").set("msg_type", "5"), 3, "/Envelop/Header/@msg_type"),
    (lambda r: r.find("Header").remove(r.find("Header/Receiver")), 10, "/Envelop/Header/Receiver"),
    (lambda r: r.find("Body").remove(r.find("Body/Document")), 20, "/Envelop/Body"),
    (lambda r: r.find("Body/Document").set("pages", "-1"), 33, "/Envelop/Body/Document/@pages"),
    (lambda r: r.find("Body/Document").attrib.pop("kind"), 35, "/Envelop/Body/Document/@kind"),
    (lambda r: r.find("Body/Document/Author/Organization").attrib.pop("name"), 35,
     "/Envelop/Body/Document/Author/Organization/@name"),
    (lambda r: r.find("Body/Document/Author").append(etree.Element("Extra")), 30,
     "/Envelop/Body/Document/Author/Extra"),
    (lambda r: r.find("Body/Document/Addressee").append(etree.Element("Receiver")), 31,
     "/Envelop/Body/Document/Addressee/Receiver"),
    (lambda r: r.find("Body/Document/Writer").addnext(copy.deepcopy(r.find("Body/Document/Writer"))), 32,
     "/Envelop/Body/Document/Writer[2]"),
    (lambda r: setattr(r.find("Body/Document/Confident"), "text", "secret"), 34, "/Envelop/Body/Document/Confident"),
])
def test_codes_and_paths(mutation, code: int, path: str) -> None:
    problems = validate(mutated(mutation))
    assert (problems[0].code, problems[0].path) == (code, path), problems


def test_every_problem_is_reported_not_only_the_first() -> None:
    def two_defects(root: etree._Element) -> None:
        root.find("Header/Sender").attrib.pop("sys_id")
        root.find("Body/Document/RegNumber").set("regdate", "yesterday")

    problems = validate(mutated(two_defects))
    assert {(p.code, p.path) for p in problems} == {
        (12, "/Envelop/Header/Sender/@sys_id"), (33, "/Envelop/Body/Document/RegNumber/@regdate")}


def test_a_patch_level_of_2_1_is_the_same_format() -> None:
    assert validate(mutated(lambda r: r.set("type", "SDIP-2.1.7"))) == []


@pytest.mark.parametrize(("format_type", "code", "obsolete"), [
    ("SDIP-2.0", 2, True),
    ("SDIP-1.0", 2, True),
    ("SDIP-3.0", 2, False),
    ("SDIP-2.2", 2, False),
    ("SDIP-2.1.1.1", 2, False),
    ("SDIP-2.0.9", 2, True),
    ("MEDO-2.1", 1, False),
    ("sdip-2.1", 1, False),
    ("SDIP", 1, False),
])
def test_format_name_and_version(format_type: str, code: int, obsolete: bool) -> None:
    problems = validate(mutated(lambda r: r.set("type", format_type)))
    assert [(p.code, p.path) for p in problems] == [(code, "/Envelop/@type")]
    assert is_obsolete_version(problems) is obsolete
    if obsolete:
        assert "obsolete" in problems[0].message


def test_another_format_gets_no_schema_check() -> None:
    # A MEDO packet is wrong as a whole: one problem, not a list of SDIP schema complaints.
    root = etree.fromstring(b'<Envelop type="MEDO-2.7"><Whatever/></Envelop>')
    assert [p.code for p in validate(root)] == [1]
    assert check_format(etree.fromstring(b"<Envelop/>")) == []


@pytest.mark.parametrize("base", ["document", "task"])
def test_zone_must_match_msg_type(base: str) -> None:
    for msg_type in ("0", "2", "4"):
        problems = validate(mutated(lambda r: r.find("Header").set("msg_type", msg_type), base))
        assert problems[0].code == 21
        assert problems[0].path.startswith("/Envelop/Body/")
        assert f"msg_type {msg_type}" in problems[0].message


def test_a_task_reply_must_carry_docparent_too() -> None:
    problems = validate(mutated(lambda r: r.find("Header").set("msg_type", "3"), "task"))
    assert [(p.code, p.path) for p in problems] == [(32, "/Envelop/Body/Task/DocParent")]


def test_document_kind_must_be_in_the_directory(tmp_path, monkeypatch) -> None:
    root = mutated(lambda r: r.find("Body/Document").set("kind", "K-77"))
    problem = validate(root)[0]
    assert (problem.code, problem.path) == (33, "/Envelop/Body/Document/@kind")
    assert "directory" in problem.message and "K-77" in problem.message
    # The directory is data: publish another and the same packet passes.
    directory = tmp_path / "kinds.json"
    directory.write_text(json.dumps({"kinds": {"K-77": "Особый вид"}}), encoding="utf-8")
    monkeypatch.setenv(kinds.ENV_VARIABLE, str(directory))
    assert validate(root) == []
    assert kinds.document_kinds() == {"K-77": "Особый вид"}


def test_the_default_directory_is_the_packaged_json() -> None:
    directory = kinds.document_kinds()
    assert directory["01"] == "Письмо"
    assert len(directory) >= 10


@pytest.mark.parametrize(("mutation", "code"), [
    # A notification about a refusal needs its reason; a "registered" one needs the incoming number.
    (lambda r: r.find("Body/Acknowledgement/Notification").set("event", "refused"), 35),
    (lambda r: r.find("Body/Acknowledgement/Notification").set("event", "registered"), 32),
    (lambda r: r.find("Body/Acknowledgement").remove(r.find("Body/Acknowledgement/Notification")), 32),
])
def test_notification_rules(mutation, code: int) -> None:
    problems = validate(mutated(mutation, "notification-event"))
    assert problems[0].code == code, problems


def test_transport_signature_may_only_be_the_roots_last_child() -> None:
    signed = (regenerate.HERE / "signed" / "document.xml").read_bytes()
    root = parse_xml(signed)
    assert validate(root) == []
    signature = root[-1]
    root.insert(0, signature)  # moved before Header
    problems = validate(root)
    assert problems[0].code == 31 and problems[0].path == "/Envelop/ds:Signature"
    root = parse_xml(signed)
    root.append(copy.deepcopy(root[-1]))  # a second signature
    assert validate(root)[0].code == 32


def test_explain_uses_xmlschema_wording() -> None:
    data = INVALID["code-33-bad-date"]
    hot, rich = problems_of(data)[0], explain(data)[0]
    assert (hot.code, hot.path) == (rich.code, rich.path) == (33, "/Envelop/Body/Document/RegNumber/@regdate")
    assert "month must be in 1..12" in rich.message  # xmlschema's reason, not libxml2's


# ---------------------------------------------------------------- single defects in any packet

REQUIRED_ATTRIBUTES = {  # element -> required attributes, as the XSD says
    "Envelop": {"type", "msg_id", "dtstamp"}, "Header": {"msg_type", "msg_acknow"},
    "Sender": {"id", "sys_id", "system", "system_details"}, "Receiver": {"id"},
    "Document": {"idnumber", "type", "kind", "pages"}, "Task": {"idnumber", "task_reg", "task_copy", "task_text"},
    "Folder": {"add_type"}, "Acknowledgement": {"msg_id", "ack_type"}, "AckResult": {"errorcode"},
    "Notification": {"event"}, "RegNumber": {"regdate"}, "IncNumber": {"regdate"}, "OutNumber": {"regdate"},
    "TaskNumber": {"taskdate"}, "Organization": {"name"}, "OfficialPerson": {"name"},
    "Referred": {"idnumber", "retype"}, "DocParent": {"delivery_type", "idnumber", "parorg_id"},
    "DocTransfer": {"name", "type"}, "Confident": {"flag"}, "Validator": {"attestation"},
    "Executor": {"responsible"},
}


def element_path(element: etree._Element) -> str:
    return _path_of(element)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes(), st.data())
def test_a_missing_required_attribute_anywhere_is_named_with_its_path(env, data) -> None:
    root = to_element(env)
    candidates = [(e, a) for e in root.iter() for a in REQUIRED_ATTRIBUTES.get(e.tag, ()) if a in e.attrib]
    element, attribute = data.draw(st.sampled_from(candidates))
    del element.attrib[attribute]
    expected_path = f"{element_path(element)}/@{attribute}"
    expected_code = 10 if (element.tag, attribute) == ("Receiver", "id") else \
        12 if element.tag in HEADER_ELEMENTS else 35
    tree = parse_xml(etree.tostring(root))
    for problems in (validate(tree), explain(etree.tostring(root))):
        assert (expected_code, expected_path) in {(p.code, p.path) for p in problems}, problems


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes(), st.data())
def test_an_unknown_element_anywhere_is_code_30_with_its_path(env, data) -> None:
    root = to_element(env)
    # Elements with element content (not the simple-content ones, where any child is wrong anyway).
    parents = [e for e in root.iter() if len(e)]
    parent = data.draw(st.sampled_from(parents))
    parent.insert(data.draw(st.integers(0, len(parent))), etree.Element("Unexpected"))
    expected = (30, f"{element_path(parent)}/Unexpected")
    assert expected in {(p.code, p.path) for p in validate(parse_xml(etree.tostring(root)))}
    assert expected in {(p.code, p.path) for p in explain(etree.tostring(root))}


TYPED_ATTRIBUTES = {"msg_id", "dtstamp", "msg_type", "msg_acknow", "sys_id", "pages", "regdate", "taskdate",
                    "attestation", "retype", "add_type", "ack_type", "errorcode", "flag", "numcopy", "responsible",
                    "delivery_type", "deadline", "signdate", "date", "parmsg_id", "lastmsg_id", "event", "reason",
                    "task_reg", "task_copy", "unp", "referenceid"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes(), st.data())
def test_a_badly_typed_attribute_anywhere_is_code_33_with_its_path(env, data) -> None:
    root = to_element(env)
    candidates = [(e, a) for e in root.iter() for a in e.attrib
                  if a in TYPED_ATTRIBUTES or (e.tag, a) in {("Document", "type"), ("Document", "kind")}]
    element, attribute = data.draw(st.sampled_from(candidates))
    element.set(attribute, "?!")
    expected = (3 if (element.tag, attribute) == ("Header", "msg_type") else 33,
                f"{element_path(element)}/@{attribute}")
    assert expected in {(p.code, p.path) for p in validate(parse_xml(etree.tostring(root)))}
    assert expected in {(p.code, p.path) for p in explain(etree.tostring(root))}


def test_threads_validating_at_once_each_get_their_own_problems() -> None:
    from concurrent.futures import ThreadPoolExecutor

    valid = parse_xml(regenerate.valid_samples()["document"])
    invalid_data = INVALID["code-12-missing-sys_id"]

    def check(i: int) -> bool:
        if i % 2:
            return validate(valid) == []
        return [p.code for p in validate(parse_xml(invalid_data))] == [12]

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(check, range(400)))


def test_a_refused_registration_ack_without_its_reason_is_code_35() -> None:
    """errorcode 2 (refused) with no Notification at all: the reason is missing just the same."""
    from datetime import date

    from smdo.errors import RegistrationResult
    from smdo.packet import RegNumber, Sender
    from smdo.receipts import registration_ack

    sender = Sender(id="ORG-B", sys_id="4e0a8f52-0000-4000-8000-000000000001", system="test", system_details="1.0")
    env = registration_ack(acknowledged_msg_id="4e0a8f52-0000-4000-8000-000000000002", sender=sender,
                           receiver_id="ORG-A", result=RegistrationResult.REFUSED, reason="no_text")
    root = to_element(env)
    assert validate(root) == []
    ack = root.find("Body/Acknowledgement")
    ack.remove(ack.find("Notification"))
    assert [p.code for p in validate(root)] == [35]
    registered = to_element(registration_ack(acknowledged_msg_id="4e0a8f52-0000-4000-8000-000000000002",
                                             sender=sender, receiver_id="ORG-A",
                                             result=RegistrationResult.REGISTERED,
                                             inc_number=RegNumber("IN-1", date(2026, 1, 5))))
    assert validate(registered) == []
