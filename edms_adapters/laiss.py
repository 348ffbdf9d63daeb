"""LAIS-style EDMS: a classic SMDO client, as the open-source ЛАИС.СМДО client (uSMDO.pas) works.

- writes SDIP 2.1.1 the way that client does: Receiver@name, organisations as
  `organization_string`, signing authors as OrganizationWithSign/OfficialPersonWithSign with Name
  and Official children, Confident with its text, the document kind by name, DocParent before
  Confident, DocTransfer without @type (tests/fixtures/real_clients/README.md has the sources);
- the classic profile: the envelope unsigned, each file with a detached CMS signature;
- the router's acknowledgements (ack_type 100-105, errorcode 0 = success);
- the mail transport both ways (edms_adapters/mail.py).

Its native record is the SDIP envelope, as for Rekord.
"""
from __future__ import annotations

from lxml import etree

from edms_adapters.rekord import RekordAdapter
from smdo.kinds import document_kinds

FORMAT_TYPE = "SDIP-2.1.1"
PERSON_CHILDREN = (("name", "Name"), ("position", "Official"))
ATTESTATION_TEXTS = {"1": "Согласовано", "2": "Утверждено", "3": "Согласовано с замечаниями", "4": "Отклонено"}


class LaissAdapter(RekordAdapter):
    name = "laiss"
    product = "LAIS.SMDO-emulated"
    version = "2.1.1"
    inbound = "mail"
    outbound = "mail"
    number_letter = "L"
    profile = "classic"
    ack_dialect = "router"

    def client_form(self, root: etree._Element) -> None:
        root.set("type", FORMAT_TYPE)
        names = {}
        for receiver in root.iterfind("Header/Receiver"):
            organization = receiver.find("Organization")
            names[receiver.get("id")] = organization.get("name") if organization is not None else receiver.get("id")
            receiver.set("name", names[receiver.get("id")])
        for organization in root.iter("Organization"):
            _as_organization_string(organization)
        for tag in ("Author", "Validator", "AuthorOrganization"):
            for party in root.iter(tag):
                _with_sign(party)
        for person in list(root.iter("OfficialPerson")):
            _person_children(person)
        kinds = document_kinds()
        for zone in root.iter("Document", "Task"):
            if zone.tag == "Document" and zone.get("kind") in kinds:
                zone.set("kind", kinds[zone.get("kind")])
            confident = zone.find("Confident")
            if confident is None:
                confident = etree.Element("Confident", flag="0")
                zone.find("RegNumber" if zone.tag == "Document" else "TaskNumber").addnext(confident)
            if not (confident.text or "").strip():
                confident.text = "общий" if confident.get("flag") == "0" else "ДСП"
            parent = zone.find("DocParent")
            if parent is not None:  # uSMDO.pas writes DocParent before Confident
                confident.addprevious(parent)
        for number in root.iter("TaskNumber"):
            if number.get("taskdate") is not None:
                number.set("TaskDate", number.attrib.pop("taskdate"))
        for transfer in root.iter("DocTransfer"):
            transfer.attrib.pop("type", None)
        for validator in root.iter("Validator"):  # uSMDO.pas writes the attestation's text
            validator.set("attestation", ATTESTATION_TEXTS.get(validator.get("attestation"), "Согласовано"))


def _as_organization_string(organization: etree._Element) -> None:
    if organization.get("name") is not None:
        organization.set("organization_string", organization.attrib.pop("name"))


def _with_sign(party: etree._Element) -> None:
    """Organization (+ OfficialPerson beside it) -> OrganizationWithSign/OfficialPersonWithSign."""
    organization = party.find("Organization")
    if organization is None:
        return
    person = party.find("OfficialPerson")
    organization.tag = "OrganizationWithSign"
    for attribute in ("unp",):
        organization.attrib.pop(attribute, None)
    if person is not None:
        person.tag = "OfficialPersonWithSign"
        organization.append(person)  # nested, as GOST and uSMDO.pas write it
        _person_children(person)
        signdate = party.attrib.pop("signdate", None)
        if signdate is not None:
            etree.SubElement(person, "SignDate").text = signdate


def _person_children(person: etree._Element) -> None:
    for attribute, child in PERSON_CHILDREN:
        value = person.attrib.pop(attribute, None)
        if value is not None:
            etree.SubElement(person, child).text = value
    person.attrib.pop("department", None)
