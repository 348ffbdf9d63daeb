"""Hostile XML: refused with code -1, without reading files, using the network or exhausting memory.

The end-to-end cases run the real `smdo validate` in a child process, so that its own peak RSS
(from /proc/self/status VmHWM) and its own clock measure only that packet.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
from format_fixtures import ROOT, SAMPLES

from smdo.errors import PacketRejected
from smdo.xmlparse import Limits, parse_xml

MAX_RSS_BYTES = 200 * 1024 * 1024

# Runs the real command (the console script's entry point) and reports the CPU time the check took
# (CPU, not wall-clock, time: a loaded machine does not make an expansion look slow, nor hide one)
# and its own peak RSS. VmHWM counts only this process image: ru_maxrss (getrusage or wait4) would
# also count the copy of the parent made by fork before exec, i.e. the whole pytest process.
CHILD = textwrap.dedent("""
    import re, sys, time
    from cli.main import main
    start = time.process_time()
    try:
        main(["validate", "--json", sys.argv[1]])
    except SystemExit as exc:
        code = exc.code
    sys.stderr.write("elapsed=%f\\n" % (time.process_time() - start))
    with open("/proc/self/status") as status:
        sys.stderr.write("peak_kib=%s\\n" % re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
    sys.exit(code)
""")


def run_validate(path: Path, timeout: float = 60) -> tuple[int, list[dict], float, int]:
    """(exit status, problems, seconds spent checking, peak RSS in bytes) of `smdo validate --json`."""
    output = Path(tempfile.mkdtemp(prefix="smdo-validate-"))
    stdout, stderr = output / "stdout", output / "stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, stdout=out, stderr=err)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        process.wait()
    finally:
        timer.cancel()
    if process.returncode < 0:
        pytest.fail(f"smdo validate {path.name} was killed after {timeout} s (blocked on a file or socket?)")
    problems = json.loads(stdout.read_bytes() or b"[]")
    report = stderr.read_bytes()
    seconds, peak_kib = _reported(report, "elapsed"), _reported(report, "peak_kib")
    shutil.rmtree(output)
    return process.returncode, problems, seconds, int(peak_kib) * 1024


def _reported(stderr: bytes, name: str) -> float:
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith(f"{name}="):
            return float(line.split("=", 1)[1])
    raise AssertionError(f"child did not report {name}: {stderr.decode(errors='replace')}")


def assert_refused_cheaply(path: Path, *, code: int = -1) -> list[dict]:
    status, problems, seconds, peak_rss = run_validate(path)
    assert status == 1, problems
    assert problems and problems[0]["code"] == code, problems
    assert seconds < 1.0, f"{path.name}: {seconds:.3f} s"
    assert peak_rss < MAX_RSS_BYTES, f"{path.name}: peak RSS {peak_rss / 2**20:.0f} MB"
    return problems


# ---------------------------------------------------------------- the committed hostile samples


@pytest.mark.parametrize("path", sorted((SAMPLES / "hostile").glob("*.xml")), ids=lambda p: p.stem)
def test_committed_hostile_samples_are_refused_quickly_in_little_memory(path: Path) -> None:
    problems = assert_refused_cheaply(path)
    text = json.dumps(problems)
    assert "root:" not in text  # nothing of /etc/passwd


# ---------------------------------------------------------------- files and network never touched


@pytest.fixture
def canary(tmp_path: Path) -> tuple[Path, str]:
    secret = f"CANARY-{uuid.uuid4()}"
    path = tmp_path / "canary.txt"
    path.write_text(secret)
    return path, secret


@pytest.fixture
def listener():
    """A TCP port that records whether anything connected to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server, f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def nobody_connected(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


def envelope_with(prolog: str, subject: str = "x", body: str = "") -> bytes:
    return (f'<?xml version="1.0"?>\n{prolog}\n<Envelop type="SDIP-2.1" '
            f'msg_id="00000000-0000-4000-8000-000000000001" dtstamp="2026-11-20T09:30:00Z" '
            f'subject="{subject}"><Header msg_type="1" msg_acknow="2"/><Body>{body}</Body></Envelop>\n').encode()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_xxe_never_reads_the_file(tmp_path: Path, canary, encoding: str) -> None:
    path, secret = canary
    data = envelope_with(f'<!DOCTYPE Envelop [<!ENTITY xxe SYSTEM "file://{path}">]>', subject="&xxe;")
    if encoding == "utf-16":
        data = data.decode().replace('version="1.0"?>', 'version="1.0" encoding="UTF-16"?>').encode("utf-16")
    packet = tmp_path / "xxe.xml"
    packet.write_bytes(data)
    problems = assert_refused_cheaply(packet)
    assert secret not in json.dumps(problems)


def test_xxe_on_a_fifo_does_not_block(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until someone writes: a parser that opened the entity's
    # file would hang here, and run_validate would fail on its timeout.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    packet = tmp_path / "xxe-fifo.xml"
    packet.write_bytes(envelope_with(f'<!DOCTYPE Envelop [<!ENTITY xxe SYSTEM "file://{fifo}">]>', subject="&xxe;"))
    status, problems, _, _ = run_validate(packet, timeout=20)
    assert status == 1 and problems[0]["code"] == -1


def test_xinclude_is_not_processed(tmp_path: Path, canary) -> None:
    path, secret = canary
    body = (f'<Document xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file://{path}" '
            'parse="text"/></Document>')
    packet = tmp_path / "xinclude.xml"
    packet.write_bytes(envelope_with("", body=body))
    status, problems, _, _ = run_validate(packet)
    assert status == 1
    assert secret not in json.dumps(problems)


@pytest.mark.parametrize("prolog", [
    '<!DOCTYPE Envelop SYSTEM "{url}/sdip.dtd">',
    '<!DOCTYPE Envelop [<!ENTITY % remote SYSTEM "{url}/evil.dtd"> %remote;]>',
    '<!DOCTYPE Envelop [<!ENTITY ext SYSTEM "{url}/entity">]>',
], ids=["external-dtd", "parameter-entity", "external-entity"])
def test_no_network_is_used(tmp_path: Path, listener, prolog: str) -> None:
    server, url = listener
    packet = tmp_path / "network.xml"
    packet.write_bytes(envelope_with(prolog.format(url=url), subject="&ext;" if "ext " in prolog else "x"))
    assert_refused_cheaply(packet)
    assert nobody_connected(server)


# ---------------------------------------------------------------- size and depth, generated here


def test_ten_thousand_levels_of_nesting(tmp_path: Path) -> None:
    packet = tmp_path / "deep.xml"
    packet.write_bytes(b'<Envelop type="SDIP-2.1">' + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</Envelop>")
    problems = assert_refused_cheaply(packet)
    assert "nested too deeply" in problems[0]["message"]


def test_a_100_mb_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    packet = tmp_path / "huge.xml"
    with open(packet, "wb") as out:
        out.write(envelope_with("").split(b"<Body>")[0] + b"<Body><Document><DocTransfer><Data>")
        chunk = b"QUJD" * (256 * 1024)  # 1 MiB of base64
        for _ in range(100):
            out.write(chunk)
        out.write(b"</Data></DocTransfer></Document></Body></Envelop>")
    problems = assert_refused_cheaply(packet)
    assert "too large" in problems[0]["message"]


def big_text_packet(megabytes: int) -> str:
    return envelope_with("", body="<Document><DocTransfer><Data>" + "QUJD" * (megabytes * 256 * 1024)
                         + "</Data></DocTransfer></Document>").decode()


def test_a_utf8_packet_may_carry_a_text_node_over_10_mb(tmp_path: Path) -> None:
    # A 20 MB attachment is ~27 MB of base64 in one Data element: the byte limit bounds it, not
    # libxml2's 10 MB text-node cap. The packet is parsed (and then refused by the schema for the
    # missing header parts), cheaply.
    packet = tmp_path / "big-text.xml"
    packet.write_bytes(big_text_packet(12).encode())
    status, problems, seconds, peak_rss = run_validate(packet)
    assert status == 1 and problems and all(p["code"] != -1 for p in problems), problems
    assert peak_rss < MAX_RSS_BYTES, f"peak RSS {peak_rss / 2**20:.0f} MB"


def test_a_utf16_packet_keeps_the_parsers_text_node_cap_and_gets_advice(tmp_path: Path) -> None:
    # In UTF-16 the byte scan cannot prove there is no DTD, so libxml2 keeps all of its own caps.
    text = big_text_packet(11).replace('version="1.0"?>', 'version="1.0" encoding="UTF-16"?>')
    packet = tmp_path / "big-text-utf16.xml"
    packet.write_bytes(text.encode("utf-16"))
    problems = assert_refused_cheaply(packet)
    assert "UTF-8" in problems[0]["message"] and "referenceid" in problems[0]["message"]


# ---------------------------------------------------------------- parse_xml directly


def rejected(data: bytes, limits: Limits = Limits()) -> str:
    with pytest.raises(PacketRejected) as caught:
        parse_xml(data, limits)
    assert [p.code for p in caught.value.problems] == [-1]
    return caught.value.problems[0].message


def test_any_doctype_is_refused_with_its_line() -> None:
    assert rejected(b'<?xml version="1.0"?>\n\n<!DOCTYPE Envelop>\n<Envelop/>') == \
        "DTD not allowed: the packet contains a DOCTYPE declaration (line 3)"


def test_undeclared_entity_is_refused() -> None:
    assert "Entity 'xxe' not defined" in rejected(b"<Envelop>\n&xxe;</Envelop>")


def test_predefined_and_character_references_are_fine() -> None:
    assert parse_xml(b"<Envelop>&lt;&amp;&#1046;</Envelop>").text == "<&\u0416"


def test_depth_limit_is_exact() -> None:
    limits = Limits(max_depth=10)
    assert parse_xml(b"<a>" * 10 + b"</a>" * 10, limits) is not None
    assert "more than 10 levels" in rejected(b"<a>" * 11 + b"</a>" * 11, limits)


def test_byte_limit_is_checked_before_parsing() -> None:
    assert rejected(b"<Envelop>" + b" " * 100 + b"</Envelop>", Limits(max_bytes=100)) == \
        "packet too large: 119 bytes, the limit is 100"


def test_not_well_formed_names_the_line() -> None:
    message = rejected(b"<Envelop>\n<Header>\n</Envelop>")
    assert message.startswith("XML cannot be parsed:") and message.endswith("(line 3)")


def test_empty_input() -> None:
    assert rejected(b"") == "empty packet: no XML"
