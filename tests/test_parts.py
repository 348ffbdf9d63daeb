"""Files beside the envelope through a real hub (HTTPS, mTLS, SQLite): upload, envelope, push and
pull receivers downloading the parts; every bad-part case refused with its code and nothing kept;
who may download; a resumed (Range) download; the officials' signatures reported as 103."""
from __future__ import annotations

import hashlib
import os

import aiohttp
import pytest

from signing.cms import sign_detached
from smdo.registry import Registry, SubscriberStatus

from parts_fixtures import GeneratedFile, PartsReceiver, client_session, download, fetch_parts, file_digest, \
    upload, with_part
from router_fixtures import HubUnderTest, ack_of, delivery_state, document, edms_server_ssl, eventually, \
    hub_config, register, sign, smdo


@pytest.fixture
async def net(tmp_path, test_pki, trust_store):
    """ORG-A sends; ORG-B receives by push (downloading parts), ORG-C by pull."""
    receiver = await PartsReceiver("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                   test_pki, tmp_path / "org-b").start()
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, test_pki, "ORG-A")
    register(registry, test_pki, "ORG-B", push_url=receiver.url)
    register(registry, test_pki, "ORG-C")
    hub = await HubUnderTest(hub_config(tmp_path / "data", test_pki, part_ttl=3600.0), test_pki, registry).start()
    receiver.hub_url = hub.url
    sessions = {code: client_session(test_pki, code) for code in ("ORG-A", "ORG-B", "ORG-C")}
    yield hub, receiver, sessions
    for session in sessions.values():
        await session.close()
    await hub.stop()
    await receiver.stop()
    registry.close()


def parts_on_disk(hub: HubUnderTest) -> list[str]:
    root = hub.config.data / "parts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_a_part_crosses_push_and_pull_with_its_digest(net, test_pki, tmp_path):
    hub, receiver, sessions = net
    file = GeneratedFile(3 * 1024 * 1024 + 17)
    status, answer = await upload(sessions["ORG-A"], hub.url, file.digest, file.stream())
    assert (status, answer["stored"], answer["size"]) == (201, True, file.size)
    assert (await upload(sessions["ORG-A"], hub.url, file.digest, b""))[0] == 200  # again: already there

    env = with_part(document("ORG-A", ["ORG-B", "ORG-C"]), "scan.tiff", file.digest)
    status, body = await hub.post(sign(env, test_pki.signer("ORG-A")))
    assert status == 200 and ack_of(body).ack_codes == (100,)

    await eventually(lambda: env.msg_id in receiver.received)
    assert receiver.received[env.msg_id] == {"scan.tiff": file.digest}
    [item] = await eventually(lambda: hub.mailbox("ORG-C"))
    got = await fetch_parts(sessions["ORG-C"], hub.url, item["packet"], tmp_path / "org-c")
    assert got == {"scan.tiff": file.digest}
    assert await hub.confirm("ORG-C", item, test_pki.signer("ORG-C")) == 200
    assert await delivery_state(hub, env.msg_id, "ORG-C") == "delivered"
    assert await delivery_state(hub, env.msg_id, "ORG-B") == "delivered"


async def test_an_interrupted_download_resumes_with_range(net, test_pki, tmp_path):
    hub, receiver, sessions = net
    file = GeneratedFile(5 * 1024 * 1024 + 3, seed=b"range")
    assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201
    env = with_part(document("ORG-A", ["ORG-C"]), "drawing.dwg", file.digest)
    assert (await hub.post(sign(env, test_pki.signer("ORG-A"))))[0] == 200

    target = tmp_path / "partial"
    assert await download(sessions["ORG-C"], hub.url, file.digest, target, stop_after=1024 * 1024) == 200
    half = target.stat().st_size
    assert 0 < half < file.size
    assert await download(sessions["ORG-C"], hub.url, file.digest, target, start=half) == 206
    assert file_digest(target) == file.digest
    async with sessions["ORG-C"].get(f"{hub.url}/smdo/v1/parts/{file.digest}",
                                     headers={"Range": f"bytes={file.size + 10}-"}) as r:
        assert r.status == 416


async def test_who_may_download_a_part(net, test_pki):
    hub, receiver, sessions = net
    file = GeneratedFile(100_000, seed=b"who")
    assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201
    url = f"{hub.url}/smdo/v1/parts/{file.digest}"
    async with sessions["ORG-C"].get(url) as r:
        assert r.status == 404  # staged, not yet named by an accepted envelope: nobody else sees it
    env = with_part(document("ORG-A", ["ORG-C"]), "a.bin", file.digest)
    assert (await hub.post(sign(env, test_pki.signer("ORG-A"))))[0] == 200
    async with sessions["ORG-C"].get(url) as r:
        assert r.status == 200 and hashlib.sha256(await r.read()).hexdigest() == file.digest
    async with sessions["ORG-A"].get(url) as r:
        assert r.status == 200  # its sender
    async with sessions["ORG-B"].get(url) as r:
        assert r.status == 404  # not a receiver of it
    async with hub.session().get(url) as r:
        assert r.status == 401  # anonymous
    async with hub.session().put(url, data=b"x") as r:
        assert r.status == 401


async def test_a_packet_the_journal_refused_entitles_nobody_to_its_parts(net, test_pki):
    """Parts are granted before the journal commit; a packet refused there (a msg_id already used for
    other content: 409, code 40) must not let its would-be receiver download them."""
    hub, receiver, sessions = net
    first, second = GeneratedFile(50_000, seed=b"first"), GeneratedFile(50_000, seed=b"second")
    for file in (first, second):
        assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201
    accepted = with_part(document("ORG-A", ["ORG-B"]), "a.bin", first.digest)
    assert (await hub.post(sign(accepted, test_pki.signer("ORG-A"))))[0] == 200
    conflicting = with_part(document("ORG-A", ["ORG-C"], msg_id=accepted.msg_id), "b.bin", second.digest)
    status, body = await hub.post(sign(conflicting, test_pki.signer("ORG-A")))
    assert status == 409 and 40 in ack_of(body).ack_codes
    async with sessions["ORG-C"].get(f"{hub.url}/smdo/v1/parts/{second.digest}") as r:
        assert r.status == 404
    async with sessions["ORG-C"].get(f"{hub.url}/smdo/v1/parts/{first.digest}") as r:
        assert r.status == 404


async def test_a_suspended_subscriber_can_neither_upload_nor_download(net, test_pki):
    hub, receiver, sessions = net
    file = GeneratedFile(10_000, seed=b"suspended")
    assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201
    assert (await hub.post(sign(with_part(document("ORG-A", ["ORG-C"]), "a.bin", file.digest),
                                test_pki.signer("ORG-A"))))[0] == 200
    hub.registry.set_status("ORG-C", SubscriberStatus.SUSPENDED, actor="test", reason="unpaid")

    async def reloaded():
        async with hub.session().get(f"{hub.url}/healthz") as r:
            return (await r.json())["registry_version"] == hub.registry.data_version()

    await eventually(reloaded, timeout=5)
    async with sessions["ORG-C"].get(f"{hub.url}/smdo/v1/parts/{file.digest}") as r:
        assert r.status == 403 and "suspended" in await r.text()
    status, answer = await upload(sessions["ORG-C"], hub.url, file.digest, b"x")
    assert status == 403


async def test_a_mismatched_or_truncated_upload_is_refused_and_nothing_kept(net, test_pki):
    hub, receiver, sessions = net
    file = GeneratedFile(2 * 1024 * 1024, seed=b"bad")
    status, answer = await upload(sessions["ORG-A"], hub.url, file.digest, b"other bytes")
    assert status == 400 and answer["code"] == -21 and "not " + file.digest in answer["error"]

    async def truncated():
        yield b"x" * 100_000
        raise ConnectionResetError("the sender's line dropped")

    with pytest.raises((aiohttp.ClientError, ConnectionResetError)):
        await upload(sessions["ORG-A"], hub.url, file.digest, truncated())
    await eventually(lambda: not [p for p in parts_on_disk(hub) if ".incoming" in p])
    assert parts_on_disk(hub) == []

    env = with_part(document("ORG-A", ["ORG-B"]), "report.pdf", file.digest)
    status, body = await hub.post(sign(env, test_pki.signer("ORG-A")))
    assert status == 400 and ack_of(body).ack_codes == (-21,)
    assert b"a referenced file is missing" in body and b"report.pdf" in body


async def test_part_uploads_keep_the_receive_stage_bounds(net, test_pki):
    hub, receiver, sessions = net
    file = GeneratedFile(1000, seed=b"gzip")
    async with sessions["ORG-A"].put(f"{hub.url}/smdo/v1/parts/{file.digest}", data=b"x" * 100,
                                     headers={"Content-Encoding": "gzip"}) as r:
        assert r.status == 415
    assert parts_on_disk(hub) == []


async def test_missing_or_foreign_parts_refuse_the_packet(net, test_pki):
    hub, receiver, sessions = net
    file = GeneratedFile(50_000, seed=b"foreign")
    assert (await upload(sessions["ORG-C"], hub.url, file.digest, file.stream()))[0] == 201
    # ORG-A names a part only ORG-C uploaded: it is not ORG-A's, so it is missing for ORG-A.
    env = with_part(document("ORG-A", ["ORG-B"]), "theirs.bin", file.digest)
    status, body = await hub.post(sign(env, test_pki.signer("ORG-A")))
    assert status == 400 and ack_of(body).ack_codes == (-21,) and b"theirs.bin" in body
    status = (await hub.status(env.msg_id))
    assert status["outcome"] == "rejected" and status["codes"] == [-21]
    assert receiver.received == {}



async def test_an_extra_part_is_never_delivered_and_expires(net, test_pki):
    hub, receiver, sessions = net
    extra = GeneratedFile(10_000, seed=b"extra")
    assert (await upload(sessions["ORG-A"], hub.url, extra.digest, extra.stream()))[0] == 201
    env = document("ORG-A", ["ORG-C"])  # names no part
    assert (await hub.post(sign(env, test_pki.signer("ORG-A"))))[0] == 200
    async with sessions["ORG-C"].get(f"{hub.url}/smdo/v1/parts/{extra.digest}") as r:
        assert r.status == 404
    staged = hub.config.data / "parts" / "staged" / "ORG-A" / extra.digest
    old = staged.stat().st_mtime - 2 * 3600
    os.utime(staged, (old, old))  # older than part_ttl (1 h)
    other = GeneratedFile(10, seed=b"next")
    assert (await upload(sessions["ORG-A"], hub.url, other.digest, other.stream()))[0] == 201
    assert not staged.exists()


async def test_parts_are_bounded_per_subscriber(tmp_path, test_pki):
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, test_pki, "ORG-A")
    hub = await HubUnderTest(hub_config(tmp_path / "data", test_pki, part_max_bytes=1000, part_quota_count=2,
                                        part_quota_bytes=10_000), test_pki, registry).start()
    session = client_session(test_pki, "ORG-A")
    try:
        big = GeneratedFile(1001, seed=b"big")
        status, answer = await upload(session, hub.url, big.digest, b"\0" * 1001)
        assert status == 413
        status, answer = await upload(session, hub.url, big.digest, big.stream())  # no length announced
        assert status == 413
        for seed in (b"1", b"2"):
            small = GeneratedFile(10, seed=seed)
            assert (await upload(session, hub.url, small.digest, small.stream()))[0] == 201
        third = GeneratedFile(10, seed=b"3")
        status, answer = await upload(session, hub.url, third.digest, third.stream())
        assert status == 507 and "waiting for an envelope" in answer["error"]
    finally:
        await session.close()
        await hub.stop()
        registry.close()


async def test_officials_signatures_are_checked_and_reported_not_refused(net, test_pki, other_pki):
    hub, receiver, sessions = net
    file = GeneratedFile(300_000, seed=b"signed")
    content = b"".join(file.chunks())
    good = sign_detached(content, test_pki.signer("ORG-A"))
    assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201

    env = with_part(document("ORG-A", ["ORG-C"]), "order.pdf", file.digest, signatures=(good,))
    status, body = await hub.post(sign(env, test_pki.signer("ORG-A")))
    assert status == 200 and ack_of(body).ack_codes == (100,)

    other_content = sign_detached(b"another file", test_pki.signer("ORG-A"))
    untrusted = sign_detached(content, other_pki.signer("ORG-A"))
    env = with_part(document("ORG-A", ["ORG-C"]), "order.pdf", file.digest, signatures=(other_content, untrusted))
    status, body = await hub.post(sign(env, test_pki.signer("ORG-A")))
    assert status == 200 and ack_of(body).ack_codes == (103, -21, -23)
    assert b"order.pdf" in body and b"signature 2" in body
    assert (await hub.status(env.msg_id))["outcome"] == "accepted"  # recorded and forwarded


async def test_archive_moves_finished_packets_parts_out_and_the_journal_still_verifies(net, test_pki, tmp_path):
    hub, receiver, sessions = net
    done, pending = GeneratedFile(200_000, seed=b"done"), GeneratedFile(200_000, seed=b"pending")
    for file in (done, pending):
        assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201
    finished = with_part(document("ORG-A", ["ORG-B"], acknow=0), "done.bin", done.digest)
    waiting = with_part(document("ORG-A", ["ORG-C"], acknow=0), "pending.bin", pending.digest)
    for env in (finished, waiting):
        assert (await hub.post(sign(env, test_pki.signer("ORG-A"))))[0] == 200
    await eventually(lambda: finished.msg_id in receiver.received)
    await eventually(lambda: _state_is(hub, finished.msg_id, "ORG-B", "delivered"))

    data, archived = str(hub.config.data), tmp_path / "archive"
    code, out, err = await smdo("journal", "archive", "--data", data, "--to", str(archived), "--retention", "0s")
    assert code == 0, err
    assert "archived 1 part(s)" in out and done.digest in out
    assert file_digest(archived / done.digest) == done.digest
    assert not (hub.config.data / "parts" / "store" / done.digest).exists()
    assert (hub.config.data / "parts" / "store" / pending.digest).exists()  # ORG-C has not fetched it yet
    async with sessions["ORG-B"].get(f"{hub.url}/smdo/v1/parts/{done.digest}") as r:
        assert r.status == 404

    code, out, err = await smdo("journal", "verify", "--data", data)
    assert code == 0 and "journal ok" in out, err
    code, out, err = await smdo("journal", "archive", "--data", data, "--to", str(archived), "--retention", "30d")
    assert code == 0 and "archived 0 part(s)" in out


async def _state_is(hub, msg_id, receiver, state) -> bool:
    return await delivery_state(hub, msg_id, receiver) == state


async def test_byte_ranges_of_a_part(net, test_pki):
    """The hub's own range serving (router/part_download.py): a closed range, a suffix, a range
    clipped at the end, an If-Range naming another file (the whole file), a malformed header."""
    hub, receiver, sessions = net
    file = GeneratedFile(3 * 1024 * 1024 + 5, seed=b"ranges")
    whole = b"".join(file.chunks())
    assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201
    env = with_part(document("ORG-A", ["ORG-C"]), "ranges.bin", file.digest)
    assert (await hub.post(sign(env, test_pki.signer("ORG-A"))))[0] == 200
    url = f"{hub.url}/smdo/v1/parts/{file.digest}"
    cases = [
        ({"Range": "bytes=10-1048585"}, 206, whole[10:1048586], f"bytes 10-1048585/{file.size}"),
        ({"Range": "bytes=-7"}, 206, whole[-7:], f"bytes {file.size - 7}-{file.size - 1}/{file.size}"),
        ({"Range": f"bytes={file.size - 3}-{file.size + 100}"}, 206, whole[-3:], None),
        ({"Range": "bytes=5-", "If-Range": '"another"'}, 200, whole, None),
        ({"Range": "bytes=5-", "If-Range": f'"{file.digest}"'}, 206, whole[5:], None),
        ({"Range": "bytes=0-1,5-9"}, 200, whole, None),
        ({"Range": "lines=1-2"}, 200, whole, None),
    ]
    for headers, status, body, content_range in cases:
        async with sessions["ORG-C"].get(url, headers=headers) as r:
            got = await r.read()
            assert (r.status, len(got)) == (status, len(body)), headers
            assert got == body, headers
            assert r.headers["ETag"] == f'"{file.digest}"'
            if content_range:
                assert r.headers["Content-Range"] == content_range
    async with sessions["ORG-C"].get(url, headers={"Range": "bytes=-0"}) as r:
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{file.size}"


async def test_an_edms_resumes_a_partial_download_and_checks_the_whole(net, test_pki, tmp_path):
    """HubClient.download_part hashes as it downloads: a resumed download hashes the bytes it had
    first, so a `.partial` that is not the file's start is found out (and deleted)."""
    from edms_adapters.hub_client import HubClient, HubError

    hub, receiver, sessions = net
    file = GeneratedFile(2 * 1024 * 1024 + 9, seed=b"edms-resume")
    whole = b"".join(file.chunks())
    assert (await upload(sessions["ORG-A"], hub.url, file.digest, file.stream()))[0] == 201
    env = with_part(document("ORG-A", ["ORG-C"]), "resume.bin", file.digest)
    assert (await hub.post(sign(env, test_pki.signer("ORG-A"))))[0] == 200
    async with HubClient(hub.url, trust=test_pki.ca_bundle_path, cert=test_pki.cert_path("ORG-C"),
                         key=test_pki.key_path("ORG-C")) as client:
        target = tmp_path / "edms" / file.digest
        target.parent.mkdir()
        target.with_name(target.name + ".partial").write_bytes(whole[:700_000])
        await client.download_part(file.digest, target)
        assert target.read_bytes() == whole and not target.with_name(target.name + ".partial").exists()

        other = tmp_path / "edms" / "other"
        other.with_name("other.partial").write_bytes(b"x" * 700_000)  # not the file's first bytes
        with pytest.raises(HubError, match="not that digest"):
            await client.download_part(file.digest, other)
        assert not other.exists() and not other.with_name("other.partial").exists()
