"""Packets built like the real SMDO clients' (tests/fixtures/real_clients) validate, read into the
model, and the canonical form the hub writes from them validates too; strict where the format is."""
from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from smdo.kinds import kind_code
from smdo.packet import Document, TaskList, build, from_element, parse
from smdo.validation import explain, is_obsolete_version, validate
from smdo.xmlparse import parse_xml

FIXTURES = Path(__file__).parent / "fixtures" / "real_clients"
ALL = sorted(FIXTURES.glob("*.xml"))


def test_there_is_a_fixture_for_every_kind_of_packet() -> None:
    names = {p.stem for p in ALL}
    for needed in ("laiss-document", "laiss-reply", "laiss-document-with-tasks", "laiss-supplement",
                   "laiss-registration-ack", "laiss-not-registrable-ack", "laiss-delivery-ack",
                   "azdoc-document", "azdoc-delivery-ack", "azdoc-registration-ack", "router-accepted-ack"):
        assert needed in names


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_real_client_packet_validates_and_its_canonical_form_too(path: Path) -> None:
    data = path.read_bytes()
    assert validate(parse_xml(data)) == []
    assert explain(data) == []  # the second validator agrees
    env = parse(data)
    canonical = build(env)
    assert validate(parse_xml(canonical)) == []
    assert parse(canonical) == env  # nothing the model keeps is lost in the canonical form


def test_the_model_reads_the_clients_forms() -> None:
    env = parse((FIXTURES / "laiss-document.xml").read_bytes())
    doc = env.body
    assert isinstance(doc, Document)
    assert env.header.receivers[0].name == "Районный исполнительный комитет"
    assert env.header.receivers[0].official_person.name == "Ковалёв Андрей Петрович"
    assert doc.confident.text == "общий" and kind_code(doc.kind) == "01"
    assert doc.files[0].type is None and doc.files[0].reference_id == "attach1"
    author = doc.authors[0]
    assert author.organization.name == "Сельский исполнительный комитет"
    assert (author.official_person.name, author.official_person.position) == ("Петрова Мария Ивановна", "Председатель")
    assert str(author.signdate) == "2026-11-19"
    assert doc.validators[0].attestation == 1  # "Согласовано"

    tasks = parse((FIXTURES / "laiss-document-with-tasks.xml").read_bytes()).body
    assert isinstance(tasks, Document) and str(tasks.tasks[0].task_number.taskdate) == "2026-11-22"
    azdoc = parse((FIXTURES / "azdoc-document.xml").read_bytes()).body
    assert azdoc.files[0].signature_meta[0].signer.startswith("Министерство транспорта")
    folder = parse((FIXTURES / "laiss-supplement.xml").read_bytes()).body.folders[0]
    assert folder.contents == "Приложение к письму" and folder.note.count("\n") == 1


def mutated(name: str, change) -> etree._Element:
    root = parse_xml((FIXTURES / name).read_bytes())
    change(root)
    return parse_xml(etree.tostring(root))


@pytest.mark.parametrize(("name", "change", "code"), [
    # still strict: version, ids, enumerations, zone vs msg_type, names, dates
    ("laiss-document.xml", lambda r: r.set("type", "SDIP-1.0"), 2),
    ("laiss-document.xml", lambda r: r.set("msg_id", "not-a-guid"), 33),
    ("laiss-document.xml", lambda r: r.find("Body/Document").set("kind", "Открытка"), 33),
    ("laiss-document.xml", lambda r: r.find("Body/Document/Validator").set("attestation", "Может быть"), 33),
    ("laiss-document.xml", lambda r: r.find("Header").set("msg_type", "2"), 21),
    ("laiss-document.xml", lambda r: r.find("Body/Document/Author/OrganizationWithSign")
     .attrib.pop("organization_string"), 35),
    ("laiss-document.xml", lambda r: r.find("Body/Document/Author/OrganizationWithSign/OfficialPersonWithSign")
     .append(etree.fromstring("<Name>Второе имя</Name>")), 32),
    ("laiss-document-with-tasks.xml", lambda r: r.find(".//TaskNumber").attrib.pop("TaskDate"), 35),
    ("laiss-document-with-tasks.xml", lambda r: r.find(".//TaskNumber").set("taskdate", "2026-11-22"), 30),
    ("laiss-document-with-tasks.xml", lambda r: r.find(".//Task").remove(r.find(".//AuthorOrganization")), 32),
    ("laiss-supplement.xml", lambda r: r.find(".//Folder").remove(r.find(".//Folder/Referred")), 32),
    ("laiss-delivery-ack.xml", lambda r: r.find(".//Acknowledgement").set("ack_type", "3"), 33),
    ("laiss-delivery-ack.xml", lambda r: r.find(".//Acknowledgement").set("ack_type", "106"), 33),
    ("laiss-reply.xml", lambda r: r.find(".//DocParent").set("lastmsg_id", "xyz"), 33),
])
def test_still_strict(name: str, change, code: int) -> None:
    problems = validate(mutated(name, change))
    assert code in {p.code for p in problems}, problems


def test_sdip_1_0_is_refused_as_obsolete() -> None:
    problems = validate(mutated("laiss-document.xml", lambda r: r.set("type", "SDIP-1.0")))
    assert is_obsolete_version(problems)


def test_a_task_list_alone_is_a_zone_and_its_tasks_must_refer_to_something() -> None:
    def tasks_alone(root: etree._Element) -> None:
        root.find("Body").remove(root.find("Body/Document"))
    root = mutated("laiss-document-with-tasks.xml", tasks_alone)
    assert [p.code for p in validate(root)] == [32]  # no Referred: a task alone must say what it is about
    task = root.find("Body/TaskList/Task")
    task.insert(2, etree.fromstring('<Referred idnumber="1207" retype="1"><RegNumber regdate="2026-11-19">01-05/33'
                                    '</RegNumber></Referred>'))
    root = parse_xml(etree.tostring(root))
    assert validate(root) == []
    assert isinstance(from_element(root).body, TaskList)
