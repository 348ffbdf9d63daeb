"""A large file (300 MB; SMDO_LARGE_PART_MB to change) crosses a real `smdo serve` process to a push
and a pull receiver with its digest intact, while the hub's own peak memory (VmHWM) stays under
150 MB: the file is made on the fly by the test and streamed, never held whole by anyone."""
from __future__ import annotations

import os

from smdo.registry import Registry

from parts_fixtures import GeneratedFile, PartsReceiver, client_session, fetch_parts, upload, with_part
from router_fixtures import ServeProcess, ack_of, document, edms_server_ssl, eventually, register, sign

SIZE = int(os.environ.get("SMDO_LARGE_PART_MB", "300")) * 1024 * 1024
HWM_LIMIT_KB = 150 * 1024


def peak_rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_a_large_file_crosses_push_and_pull_in_bounded_memory(tmp_path, test_pki, trust_store, monkeypatch):
    monkeypatch.setenv("SMDO_PUSH_TIMEOUT", "10m")  # the push receiver downloads the part before it answers
    receiver = await PartsReceiver("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                   test_pki, tmp_path / "org-b").start()
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, test_pki, "ORG-A")
    register(registry, test_pki, "ORG-B", push_url=receiver.url)
    register(registry, test_pki, "ORG-C")
    registry.close()
    hub = await ServeProcess(tmp_path / "data", test_pki).ready()
    receiver.hub_url = hub.url
    sender, puller = client_session(test_pki, "ORG-A"), client_session(test_pki, "ORG-C")
    try:
        file = GeneratedFile(SIZE, seed=b"large")
        digest = file.digest
        status, answer = await upload(sender, hub.url, digest, file.stream())
        assert (status, answer.get("size")) == (201, SIZE), answer
        env = with_part(document("ORG-A", ["ORG-B", "ORG-C"]), "archive.zip", digest)
        async with sender.post(f"{hub.url}/smdo/v1/packets", data=sign(env, test_pki.signer("ORG-A"))) as r:
            assert r.status == 200 and ack_of(await r.read()).ack_codes == (100,)

        async def mailbox() -> list:
            async with puller.get(f"{hub.url}/smdo/v1/mailbox") as r:
                return (await r.json())["packets"]

        [item] = await eventually(mailbox, timeout=60)
        import base64

        got = await fetch_parts(puller, hub.url, base64.b64decode(item["packet"]), tmp_path / "org-c")
        assert got == {"archive.zip": digest}
        await eventually(lambda: env.msg_id in receiver.received, timeout=600, interval=0.5)
        assert receiver.received[env.msg_id] == {"archive.zip": digest}

        peak = peak_rss_kb(hub.proc.pid)
        assert peak < HWM_LIMIT_KB, f"hub VmHWM {peak} kB for a {SIZE >> 20} MB file"
    finally:
        await sender.close()
        await puller.close()
        hub.terminate()
        await receiver.stop()
