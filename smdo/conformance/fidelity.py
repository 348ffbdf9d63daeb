"""Content fidelity: what the suite sent, as the test-adapter card should show it, and the differences.

`expected_card(envelope)` says, in the contract's terms (smdo/conformance/adapter.py), what a
correct EDMS registers for a packet; `differences(expected, card)` names every field that differs
with the SDIP field it came from, so the integrator knows which mapping to fix.
"""
from __future__ import annotations

import hashlib
from datetime import date

from smdo import packet as p
from smdo.parts import digest_of_reference


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _files(files: tuple[p.DocTransfer, ...], part_sizes: dict[str, int]) -> list[dict]:
    """Name, size and SHA-256 of each file: inline ones from their bytes, parts (named by their
    digest) from the digest and the size the suite uploaded."""
    out = []
    for f in files:
        digest = digest_of_reference(f.reference_id) if f.reference_id else None
        if digest is not None:
            out.append({"name": f.name, "size": part_sizes.get(digest), "sha256": digest})
        else:
            out.append({"name": f.name, "size": len(f.data or b""), "sha256": hashlib.sha256(f.data or b"").hexdigest()})
    return out


# card field -> where it comes from in the packet (for the "which field to fix" part of a reason)
SOURCES = {
    "title": "Document@title (Envelop@subject for a task or supplement)",
    "files": "DocTransfer (@name and the decoded Data)",
    "parent": "DocParent (@idnumber, @parorg_id, RegNumber)",
    "task": "Task (TaskNumber, @task_text, @deadline, Executor)",
    "supplement": "AddDocuments/Folder (Referred, Note)",
}


def expected_card(env: p.Envelope, part_sizes: dict[str, int] | None = None) -> dict:
    sizes = part_sizes or {}
    zone = env.body
    if isinstance(zone, p.Document):
        card: dict = {"title": zone.title or env.subject or "", "files": _files(zone.files, sizes)}
        parent = zone.doc_parent
    elif isinstance(zone, p.Task):
        executor = zone.executors[0].organization.id if zone.executors else None
        card = {"title": env.subject or "", "files": _files(zone.files, sizes),
                "task": {"number": zone.task_number.number, "date": _day(zone.task_number.taskdate),
                         "text": zone.task_text, "deadline": _day(zone.deadline),
                         "executor": {"code": executor} if executor else None}}
        parent = zone.doc_parent
    elif isinstance(zone, p.AddDocuments):
        folder = zone.folders[0]
        ref = folder.referred[0]
        ref_date = ref.number.regdate if isinstance(ref.number, p.RegNumber) else ref.number.taskdate
        return {"title": env.subject or "", "files": _files(folder.files, sizes),
                "supplement": {"idnumber": ref.idnumber, "number": ref.number.number, "date": _day(ref_date),
                               "note": folder.note or ""}}
    else:
        raise ValueError(f"a {type(zone).__name__} is not registered as a card")
    if parent is not None:
        card["parent"] = {"idnumber": parent.idnumber, "organisation": parent.parorg_id,
                          "number": parent.reg_number.number, "date": _day(parent.reg_number.regdate)}
    return card


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _file_differences(sent: list[dict], got: object) -> list[str]:
    if not isinstance(got, list):
        return [f"files: sent {len(sent)} file(s), the card lists {_short(got)}"]
    found = []
    by_name = {f.get("name"): f for f in got if isinstance(f, dict)}
    for f in sent:
        match = by_name.get(f["name"])
        if match is None:
            same_bytes = [g.get("name") for g in got if isinstance(g, dict) and g.get("sha256") == f["sha256"]]
            where = f" (its bytes are registered as {_short(same_bytes[0])}: the name was changed)" if same_bytes \
                else ""
            found.append(f"file {f['name']!r} ({f['size']} bytes) is not on the card{where}")
        elif match.get("sha256") != f["sha256"]:
            found.append(f"file {f['name']!r}: sent {f['size']} bytes (sha256 {f['sha256'][:16]}...), registered "
                         f"{match.get('size')} bytes (sha256 {str(match.get('sha256'))[:16]}...): store every "
                         "byte of the decoded Data")
    if len(got) > len(sent):
        found.append(f"the card lists {len(got)} files, {len(sent)} were sent")
    return found


def differences(expected: dict, card: dict, path: str = "") -> list[str]:
    """Every field of `expected` that the card does not show as sent (fields the card adds are fine)."""
    found: list[str] = []
    for key, want in expected.items():
        name = f"{path}{key}"
        got = card.get(key) if isinstance(card, dict) else None
        if key == "files":
            found.extend(_file_differences(want, got))
        elif isinstance(want, dict):
            if not isinstance(got, dict):
                found.append(f"{name}: sent {_short(want)}, the card has {_short(got)}")
            else:
                found.extend(differences(want, got, f"{name}."))
        elif want != got:
            found.append(f"{name}: sent {_short(want)}, registered {_short(got)}")
    return found


def fix_hint(problems: list[str]) -> str:
    fields = [field for field in SOURCES
              if any(pr.startswith(field) or (field == "files" and pr.startswith("file ")) for pr in problems)]
    if not fields:
        return ""
    return " Check the mapping of " + "; ".join(SOURCES[f] for f in fields) + "."
