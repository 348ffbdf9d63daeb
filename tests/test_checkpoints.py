"""Journal checkpoints: a hub on real sockets writes signed (and, with --tsa, timestamped by the
test TSA over HTTP) checkpoints; `smdo journal verify` then catches what the hash chain alone cannot:
a journal rolled back to an earlier copy, cut short, or rewritten with every later hash recomputed."""
from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from signing.tsa import TimestampError, timestamp_request, timestamp_response, verify_timestamp
from smdo.journal.chain import GENESIS, entry_hash
from smdo.journal.checkpoints import Checkpoint, read_checkpoints

from router_fixtures import REPO, document, eventually, sign, start_network


async def smdo_cli(*args: object) -> tuple[int, str]:
    """`smdo ...` in-process (in a thread: the command runs its own event loop)."""
    def run():
        result = CliRunner().invoke(main, [str(a) for a in args])
        return result.exit_code, result.output

    return await asyncio.to_thread(run)


async def verify(data: Path, pki, *extra: object) -> tuple[int, str]:
    return await smdo_cli("journal", "verify", "--data", data, "--hub-cert", pki.cert_path("HUB"),
                          "--trust", pki.trust_dir, *extra)


def checkpoints_of(data: Path) -> list[Checkpoint]:
    path = data / "checkpoints.jsonl"
    return read_checkpoints(path) if path.exists() else []


def backup(data: Path, to: Path) -> None:
    """A consistent copy of the live journal (SQLite's backup API: WAL content included)."""
    with closing(sqlite3.connect(data / "journal.db")) as src, closing(sqlite3.connect(to)) as dst:
        src.backup(dst)


def put_back(copy: Path, data: Path) -> None:
    for suffix in ("-wal", "-shm"):
        (data / f"journal.db{suffix}").unlink(missing_ok=True)
    shutil.copy(copy, data / "journal.db")


async def run_hub(tmp_path, pki, trust, packets: int, between=None, **overrides) -> Path:
    """A hub that journals `packets` documents (calling `between(i)` after each), then stops."""
    net = await start_network(tmp_path, pki, trust, checkpoint_interval=0.1, **overrides)
    data = tmp_path / "data"
    try:
        for i in range(packets):
            packet = document("ORG-A", ["ORG-B"], acknow=0)
            assert (await net.hub.post(sign(packet, pki.signer("ORG-A"))))[0] == 200
            await net.hub.post(b"<not a packet")  # a refusal too: its entry text is mirrored by no row
            await eventually(lambda: any(c.seq >= _head(data) for c in checkpoints_of(data)))
            if between:
                await between(i)
    finally:
        await net.stop()
    return data


def _head(data: Path) -> int:
    with closing(sqlite3.connect(data / "journal.db")) as db:
        return db.execute("SELECT seq FROM chain_head").fetchone()[0]


async def test_an_intact_journal_verifies_against_its_checkpoints(tmp_path, test_pki, trust_store):
    data = await run_hub(tmp_path, test_pki, trust_store, 2)
    code, out = await verify(data, test_pki)
    assert code == 0, out
    assert "checkpoints ok" in out and "signed by the hub's certificate" in out
    assert checkpoints_of(data)[-1].seq == _head(data)  # the shutdown checkpoint covers everything
    code, out = await smdo_cli("journal", "checkpoints", "--data", data)
    assert code == 0 and "checkpoint(s)" in out


async def test_a_journal_rolled_back_to_an_earlier_copy_fails_naming_the_checkpoint(tmp_path, test_pki, trust_store):
    early = tmp_path / "early.db"

    async def keep_first(i: int) -> None:
        if i == 0:
            backup(tmp_path / "data", early)

    data = await run_hub(tmp_path, test_pki, trust_store, 3, keep_first)
    assert (await verify(data, test_pki))[0] == 0
    put_back(early, data)
    code, out = await verify(data, test_pki)
    assert code == 1
    first_gone = next(n for n, c in enumerate(checkpoints_of(data), 1) if c.seq > _head(data))
    assert f"first at checkpoint #{first_gone} " in out and "replaced by an earlier copy" in out
    assert "journal broken" not in out  # the copy is a consistent chain: only the checkpoints tell


async def test_a_rewrite_with_every_later_hash_recomputed_fails_naming_the_checkpoint(tmp_path, test_pki, trust_store):
    data = await run_hub(tmp_path, test_pki, trust_store, 3)
    with closing(sqlite3.connect(data / "journal.db", isolation_level=None)) as db:
        seq, body = db.execute("SELECT seq, body FROM entries WHERE body LIKE '%\"kind\":\"rejected\"%'"
                               " ORDER BY seq LIMIT 1").fetchone()
        entry = json.loads(body)
        entry["message"] = "nothing was refused here"
        db.execute("UPDATE entries SET body = ? WHERE seq = ?",
                   (json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False), seq))
        _recompute_hashes(db)
    code, out = await verify(data, test_pki)
    assert code == 1 and "journal broken" not in out  # the chain itself is consistent again
    first = next(n for n, c in enumerate(checkpoints_of(data), 1) if c.seq >= seq)
    assert f"first at checkpoint #{first} " in out and "rewritten (hashes recomputed)" in out


async def test_a_cut_tail_and_an_edited_row_are_named(tmp_path, test_pki, trust_store):
    data = await run_hub(tmp_path, test_pki, trust_store, 2)
    last = _head(data)
    with closing(sqlite3.connect(data / "journal.db", isolation_level=None)) as db:
        db.execute("DELETE FROM entries WHERE seq = ?", (last,))
        db.execute("UPDATE chain_head SET seq = ?, hash = (SELECT hash FROM entries WHERE seq = ?)", (last - 1, last - 1))
    code, out = await verify(data, test_pki)
    assert code == 1 and "its tail was cut" in out
    with closing(sqlite3.connect(data / "journal.db", isolation_level=None)) as db:
        db.execute("UPDATE entries SET body = replace(body, '\"size\":', '\"size\":1') WHERE seq = 1")
    code, out = await verify(data, test_pki)
    assert code == 1 and "entries row 1: hash does not match" in out


async def test_a_forged_or_altered_checkpoint_does_not_verify(tmp_path, test_pki, trust_store):
    from signing.cms import sign_detached
    from smdo.journal.checkpoints import payload

    data = await run_hub(tmp_path, test_pki, trust_store, 1)
    path = data / "checkpoints.jsonl"
    good = path.read_text()
    last = checkpoints_of(data)[-1]
    # Signed by a subscriber, not the hub: the hash chain matches, the signer does not.
    data_bytes = payload(last.seq, last.head, last.at)
    forged = Checkpoint(last.seq, last.head, last.at, sign_detached(data_bytes, test_pki.signer("ORG-B")))
    path.write_text(good + forged.to_line())
    code, out = await verify(data, test_pki)
    assert code == 1 and "not by the hub's certificate" in out
    # An altered head under the hub's signature.
    altered = Checkpoint(last.seq, "0" * 64, last.at, last.signature)
    path.write_text(good + altered.to_line())
    code, out = await verify(data, test_pki)
    assert code == 1 and "signature does not verify" in out


# ----------------------------------------------------------------------------- RFC 3161


@pytest.fixture
def tsa_url(test_pki):
    """`smdo pki tsa serve` on a free port: the test PKI's TSA over real HTTP."""
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "pki", "tsa", "serve", "--dir", str(test_pki.directory),
                             "--listen", "127.0.0.1:0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("READY "), proc.stderr.read().decode()[-2000:]
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(10)


async def test_with_tsa_every_checkpoint_carries_a_verified_timestamp(tmp_path, test_pki, trust_store, tsa_url):
    data = await run_hub(tmp_path, test_pki, trust_store, 2, tsa=tsa_url)
    checkpoints = checkpoints_of(data)
    assert checkpoints and all(c.timestamp for c in checkpoints)
    code, out = await verify(data, test_pki)
    assert code == 0 and f"{len(checkpoints)} timestamped" in out, out
    # A timestamp of other data put on a checkpoint: refused, naming the timestamp.
    other = checkpoints[1] if len(checkpoints) > 1 else checkpoints[0]
    swapped = Checkpoint(checkpoints[0].seq, checkpoints[0].head, checkpoints[0].at, checkpoints[0].signature,
                         other.timestamp if other is not checkpoints[0] else other.timestamp[:-1] + b"\0")
    (data / "checkpoints.jsonl").write_text(swapped.to_line())
    code, out = await verify(data, test_pki)
    assert code == 1 and "timestamp does not verify" in out


def test_the_test_tsas_tokens_verify_with_openssl_too(test_pki, tmp_path):
    """An independent implementation (openssl ts) accepts what our TSA answers."""
    from cli.pki import TSA_CODE
    from signing.pki import issue_certificate
    import datetime as dt

    if not test_pki.cert_path(TSA_CODE).exists():
        issue_certificate(test_pki.directory, TSA_CODE, "smdo-hub Test TSA", timestamping=True)
    request = timestamp_request(b"checkpoint payload", 42)
    answer = timestamp_response(request, test_pki.signer(TSA_CODE), dt.datetime.now(dt.timezone.utc), 1)
    (tmp_path / "q.tsq").write_bytes(request)
    (tmp_path / "r.tsr").write_bytes(answer)
    result = subprocess.run(["openssl", "ts", "-verify", "-in", str(tmp_path / "r.tsr"), "-queryfile",
                             str(tmp_path / "q.tsq"), "-CAfile", str(test_pki.ca_bundle_path)],
                            capture_output=True, text=True)
    assert "Verification: OK" in result.stdout, result.stdout + result.stderr
    # A subscriber's certificate is no TSA's: a token signed with it is refused.
    forged = timestamp_response(request, test_pki.signer("ORG-A"), dt.datetime.now(dt.timezone.utc), 2)
    from asn1crypto import tsp

    token = tsp.TimeStampResp.load(forged)["time_stamp_token"].dump()
    with pytest.raises(TimestampError, match="timeStamping"):
        verify_timestamp(token, b"checkpoint payload", test_pki.trust_store())


def _recompute_hashes(db: sqlite3.Connection) -> None:
    """What an attacker with write access does: make the chain consistent again."""
    prev = GENESIS
    for seq, body in db.execute("SELECT seq, body FROM entries ORDER BY seq").fetchall():
        prev = entry_hash(prev, body.encode())
        db.execute("UPDATE entries SET hash = ? WHERE seq = ?", (prev, seq))
    db.execute("UPDATE chain_head SET hash = ?", (prev,))


async def test_a_tsa_that_is_down_leaves_checkpoints_signed_but_unstamped(tmp_path, test_pki, trust_store):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    data = await run_hub(tmp_path, test_pki, trust_store, 1, tsa=dead)
    checkpoints = checkpoints_of(data)
    assert checkpoints and not any(c.timestamp for c in checkpoints)
    code, out = await verify(data, test_pki)
    assert code == 0 and "0 timestamped" in out


async def test_a_damaged_checkpoint_file_is_named(tmp_path, test_pki, trust_store):
    data = await run_hub(tmp_path, test_pki, trust_store, 1)
    with (data / "checkpoints.jsonl").open("a") as f:
        f.write("{not json\n")
    code, out = await verify(data, test_pki)
    assert code == 1 and "checkpoints.jsonl line" in out and "is not a checkpoint" in out


async def test_a_daily_verify_starts_after_the_last_valid_checkpoint(tmp_path, test_pki, trust_store):
    data = await run_hub(tmp_path, test_pki, trust_store, 2)
    last = checkpoints_of(data)[-1]
    code, out = await verify(data, test_pki, "--since-checkpoint")
    assert code == 0 and f"starting after checkpoint at entry {last.seq}" in out, out
    assert "entries/s" in out  # the rate it ran at
    # A row older than the checkpoint is not read again by the daily verify; a full verify names it.
    with closing(sqlite3.connect(data / "journal.db")) as db, db:
        db.execute("UPDATE transactions SET sender = 'Z' WHERE id = 1")
    assert (await verify(data, test_pki, "--since-checkpoint"))[0] == 0
    code, out = await verify(data, test_pki)
    assert code == 1 and "transactions row 1" in out, out
    # A checkpoint the journal no longer matches is not started from.
    with closing(sqlite3.connect(data / "journal.db")) as db, db:
        db.execute("UPDATE entries SET hash = ? WHERE seq = ?", ("0" * 64, last.seq))
    code, out = await verify(data, test_pki, "--since-checkpoint")
    assert code == 1 and f"starting after checkpoint at entry {last.seq}" not in out, out
