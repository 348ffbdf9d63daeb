"""Every committed sample packet gives its annotated result through the real `smdo validate`."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from format_fixtures import SAMPLES, load_regenerate

from cli.main import main
from signing.errors import InvalidSignature
from signing.keys import certificate_fingerprint
from signing.trust import TrustStore
from signing.xmldsig import verify_enveloped
from smdo.xmlparse import parse_xml

regenerate = load_regenerate()


def samples(folder: str) -> list[Path]:
    return sorted((SAMPLES / folder).glob("*.xml"))


def smdo_validate(path: Path, *options: str):
    return CliRunner().invoke(main, ["validate", *options, str(path)])


@pytest.mark.parametrize("path", samples("valid") + samples("signed"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_samples_pass(path: Path) -> None:
    result = smdo_validate(path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("valid: msg_id=")
    as_json = smdo_validate(path, "--json")
    assert (as_json.exit_code, json.loads(as_json.output)) == (0, [])


@pytest.mark.parametrize("path", samples("invalid") + samples("hostile"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_invalid_samples_give_their_code(path: Path) -> None:
    expected = regenerate.expected_code(path.stem)
    result = smdo_validate(path)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines and all(line.startswith("code ") for line in lines), result.output
    assert lines[0].startswith(f"code {expected}: "), result.output
    problems = json.loads(smdo_validate(path, "--json").output)
    assert problems[0]["code"] == expected
    assert set(problems[0]) == {"code", "message", "path"}
    explained = smdo_validate(path, "--explain", "--json")
    assert (explained.exit_code, json.loads(explained.output)[0]["code"]) == (1, expected)


def test_every_message_type_has_a_valid_sample() -> None:
    kinds = set()
    for path in samples("valid"):
        root = parse_xml(path.read_bytes())
        msg_type = int(root.find("Header").get("msg_type"))
        zone = root.find("Body")[0]
        kinds.add((msg_type, zone.tag, zone.get("ack_type")))
    assert kinds >= {
        (1, "Document", None), (2, "AddDocuments", None), (3, "Document", None), (4, "AddDocuments", None),
        (1, "Task", None), (0, "Acknowledgement", "1"), (0, "Acknowledgement", "2"), (0, "Acknowledgement", "4"),
    }


def test_committed_samples_are_what_the_script_writes(tmp_path: Path) -> None:
    regenerate.write_unsigned(tmp_path)
    for folder in ("valid", "invalid", "hostile"):
        written = {p.name: p.read_bytes() for p in (tmp_path / folder).glob("*.xml")}
        committed = {p.name: p.read_bytes() for p in samples(folder)}
        assert committed == written, f"sample_packets/{folder} is stale: run python sample_packets/regenerate.py"


def test_the_readme_lists_every_sample() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for folder in ("valid", "invalid", "hostile", "signed"):
        for path in samples(folder):
            row = next((line for line in readme.splitlines() if line.startswith(f"| `{folder}/{path.name}` |")), None)
            assert row is not None, f"{folder}/{path.name} missing from sample_packets/README.md"
            if folder in ("invalid", "hostile"):
                assert f"| code {regenerate.expected_code(path.stem)} |" in row, row


def signed_trust() -> TrustStore:
    return TrustStore.from_paths(SAMPLES / "signed" / "trust")


@pytest.mark.parametrize("path", [p for p in samples("signed") if not p.stem.startswith("code-")], ids=lambda p: p.stem)
def test_signed_samples_verify_against_the_committed_trust(path: Path) -> None:
    root = parse_xml(path.read_bytes())
    verified = verify_enveloped(root)
    # Check the chain as of a day after issue, so the committed samples stay checkable after expiry.
    signed_at = verified.certificate.not_valid_before_utc + timedelta(days=1)
    chain = signed_trust().validate(verified.certificate, at=signed_at)
    assert chain[0] == verified.certificate
    assert root.find("Header/Sender").get("id") in verified.certificate.subject.rfc4514_string()
    assert certificate_fingerprint(verified.certificate)


def test_the_tampered_signed_sample_gives_minus_21() -> None:
    root = parse_xml((SAMPLES / "signed" / "code--21-tampered-document.xml").read_bytes())
    with pytest.raises(InvalidSignature) as caught:
        verify_enveloped(root)
    assert caught.value.code == -21
