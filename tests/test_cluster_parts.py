"""Files beside the envelope in a cluster: two `smdo serve` nodes on one real PostgreSQL, each with
its own data folder, naming one shared parts folder (`--parts-dir`). A part uploaded to one node is
named by an envelope posted to the other, pushed to one receiver and pulled by another, whose
download broken off at one node resumes at the other with the same bytes. Without the shared
folder the second node cannot see the part, which is what the setting is for."""
from __future__ import annotations

import base64
import hashlib

import pytest

from smdo.registry import registry_store

from parts_fixtures import GeneratedFile, PartsReceiver, client_session, download_hashed, upload, with_part
from router_fixtures import ServeProcess, ack_of, document, edms_server_ssl, eventually, register, sign

SIZE = 3 * 1024 * 1024 + 12345  # a few 1 MiB blocks and a tail, so a resume starts mid-block


@pytest.fixture
async def setting(tmp_path, test_pki, trust_store, postgres_url):
    receiver = await PartsReceiver("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                   test_pki, tmp_path / "org-b").start()
    with registry_store(postgres_url) as registry:
        register(registry, test_pki, "ORG-A")
        register(registry, test_pki, "ORG-B", push_url=receiver.url)
        register(registry, test_pki, "ORG-C")
    sessions = [client_session(test_pki, code) for code in ("ORG-A", "ORG-C")]
    nodes: list[ServeProcess] = []

    async def start(*parts_dirs: str) -> list[ServeProcess]:
        for i, parts_dir in enumerate(parts_dirs, 1):
            nodes.append(await ServeProcess(tmp_path / f"node{i}", test_pki, "--db", postgres_url, "--node", f"n{i}",
                                            "--parts-dir", parts_dir).ready())
        receiver.hub_url = nodes[-1].url  # the push receiver fetches from the node that did not take the upload
        return nodes

    yield start, receiver, sessions
    for session in sessions:
        await session.close()
    for node in nodes:
        node.terminate()
    await receiver.stop()


async def test_a_part_uploaded_to_one_node_is_carried_by_the_other(setting, tmp_path, test_pki):
    start, receiver, (sender, puller) = setting
    shared = str(tmp_path / "shared-parts")
    one, two = await start(shared, shared)
    file = GeneratedFile(SIZE, seed=b"cluster")
    digest = file.digest
    status, answer = await upload(sender, one.url, digest, file.stream())
    assert (status, answer.get("size")) == (201, SIZE), answer

    env = with_part(document("ORG-A", ["ORG-B", "ORG-C"]), "scan.pdf", digest)
    async with sender.post(f"{two.url}/smdo/v1/packets", data=sign(env, test_pki.signer("ORG-A"))) as r:
        assert r.status == 200 and ack_of(await r.read()).ack_codes == (100,)

    await eventually(lambda: env.msg_id in receiver.received, timeout=60, interval=0.2)
    assert receiver.received[env.msg_id] == {"scan.pdf": digest}

    async def mailbox() -> list:
        async with puller.get(f"{one.url}/smdo/v1/mailbox") as r:
            return (await r.json())["packets"]

    [item] = await eventually(mailbox, timeout=30)
    assert env.msg_id.encode() in base64.b64decode(item["packet"])
    target = tmp_path / "org-c" / digest
    target.parent.mkdir()
    status, _ = await download_hashed(puller, two.url, digest, target, stop_after=SIZE // 2)
    assert status == 200 and 0 < target.stat().st_size < SIZE  # broken off at node 2
    status, _ = await download_hashed(puller, one.url, digest, target, start=target.stat().st_size)
    assert status == 206  # resumed at node 1
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest


async def test_without_a_shared_parts_folder_the_other_node_does_not_see_the_part(setting, tmp_path, test_pki):
    start, _, (sender, _) = setting
    one, two = await start(str(tmp_path / "parts-1"), str(tmp_path / "parts-2"))
    file = GeneratedFile(SIZE, seed=b"apart")
    status, _ = await upload(sender, one.url, file.digest, file.stream())
    assert status == 201
    env = with_part(document("ORG-A", ["ORG-B"]), "scan.pdf", file.digest)
    async with sender.post(f"{two.url}/smdo/v1/packets", data=sign(env, test_pki.signer("ORG-A"))) as r:
        assert r.status == 400
        assert ack_of(await r.read()).ack_codes == (-21,)


def test_two_nodes_archiving_one_part_move_it_once(tmp_path):
    """Both nodes' archivers may pick the same finished part: one moves it, the other finds it gone."""
    from smdo.parts import PartStore

    root, to = tmp_path / "shared-parts", tmp_path / "archive"
    node1, node2 = PartStore(root), PartStore(root)
    file = GeneratedFile(SIZE, seed=b"archive")
    upload = node1.begin("ORG-A", file.digest, SIZE)
    upload.write_all(list(file.chunks()))
    upload.finish()
    msg_id = "0b7e7c8e-1f2a-4c3d-9e8f-001122334455"
    node1.commit("ORG-A", [file.digest], ["ORG-B"], msg_id)
    assert node2.may_read("ORG-B", file.digest)

    assert node1.move_out(file.digest, to, finished=[msg_id]) == to / file.digest
    assert node2.move_out(file.digest, to, finished=[msg_id]) is None
    assert hashlib.sha256((to / file.digest).read_bytes()).hexdigest() == file.digest
    assert [p.name for p in to.iterdir()] == [file.digest]  # no temporary left behind
    assert not node2.may_read("ORG-B", file.digest)


def test_a_commit_and_an_archive_move_of_one_part_exclude_each_other(tmp_path):
    """The archiver decided from the journal that every packet naming a part is finished; meanwhile a
    sender names the stored part again. Whichever comes second sees the first whole: a commit after
    the move reports the part gone (the packet is refused, -21), a move after the commit keeps it."""
    from smdo.parts import PartStore

    store, to = PartStore(tmp_path / "parts"), tmp_path / "archive"
    file = GeneratedFile(SIZE, seed=b"race")
    upload = store.begin("ORG-A", file.digest, SIZE)
    upload.write_all(list(file.chunks()))
    upload.finish()
    first, second, third = ("0b7e7c8e-1f2a-4c3d-9e8f-00112233445" + str(i) for i in range(3))
    assert store.commit("ORG-A", [file.digest], ["ORG-B"], first) == []
    assert store.has("ORG-A", file.digest)  # stored, and the sender may read it: no new upload needed

    assert store.commit("ORG-A", [file.digest], ["ORG-C"], second) == []
    assert store.move_out(file.digest, to, finished=[first]) is None  # `second` named it since: kept
    assert store.may_read("ORG-C", file.digest)

    assert store.move_out(file.digest, to, finished=[first, second]) == to / file.digest
    assert store.commit("ORG-A", [file.digest], ["ORG-B"], third) == [file.digest]  # gone: refuse
    assert store.naming(file.digest) == []  # the refused packet pins nothing


def test_the_part_lock_holds_between_threads_of_one_hub(tmp_path):
    """Commits and archive moves run in worker threads of one process: the lock must exclude those
    too (a classic POSIX lock belongs to the process and would let them through)."""
    import threading
    import time

    from smdo.parts import PartStore

    store = PartStore(tmp_path / "parts")
    digest = GeneratedFile(10, seed=b"lock").digest
    entered = threading.Event()

    def other() -> None:
        with store.locked(digest):
            entered.set()

    with store.locked(digest):
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        assert not entered.is_set()
    thread.join(10)
    assert entered.is_set()


async def test_a_node_on_postgresql_without_a_parts_folder_says_so(tmp_path, test_pki, postgres_url):
    told = []
    for extra in ((), ("--parts-dir", str(tmp_path / "shared"))):
        node = await ServeProcess(tmp_path / f"node{len(told)}", test_pki, "--db", postgres_url, *extra).ready()
        assert node.terminate() == 0
        told.append("must also share parts_dir" in node.proc.stderr.read().decode())
    assert told == [True, False]
