"""`smdo backup` while packets flow through a running hub, `smdo restore` into a new data folder, and a
hub serving from the restored copy. Real hub, TLS, SQLite files; the receiving EDMS is a working fake."""
from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from cli.main import main
from smdo.registry import Registry

from router_fixtures import HubUnderTest, document, eventually, hub_config, sign, start_network


def smdo(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


async def in_thread(*args: str):
    """Run the command off the event loop, so the hub in this process keeps serving meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: smdo(*args))


async def test_backup_while_packets_flow_restores_into_a_folder_a_hub_serves_from(tmp_path, test_pki, trust_store):
    # signed checkpoints every 0.2 s: the copy's must each cover a prefix of the copied journal
    net = await start_network(tmp_path, test_pki, trust_store, checkpoint_interval=0.2)
    data, backup, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    signer = test_pki.signer("ORG-A")
    accepted: list[str] = []
    stop = asyncio.Event()

    async def flow() -> None:
        while not stop.is_set():
            env = document("ORG-A", ["ORG-B"])
            status, body = await net.hub.post(sign(env, signer))
            assert status == 200, body
            accepted.append(env.msg_id)

    sender = asyncio.create_task(flow())
    try:
        await eventually(lambda: len(accepted) >= 10 and (data / "checkpoints.jsonl").exists(), 60)
        before = len(accepted)
        result = await in_thread("backup", "--data", str(data), str(backup))
        after = len(accepted)
        await eventually(lambda: len(accepted) >= after + 5, 60)  # the hub kept accepting
    finally:
        stop.set()
        await sender
        await net.hub.stop()
        net.registry.close()
    assert result.exit_code == 0, result.output
    assert "journal copy verified" in result.output
    assert (backup / "checkpoints.jsonl").read_text().count("\n") >= 1

    restore = await in_thread("restore", "--data", str(restored), str(backup))
    assert restore.exit_code == 0, restore.output
    verified = await in_thread("journal", "verify", "--data", str(restored))
    assert verified.exit_code == 0 and "checkpoints ok" in verified.output, verified.output
    listed = await in_thread("journal", "list", "--data", str(restored), "--sender", "ORG-A", "--json",
                             "--limit", "100000")
    copied = {view["msg_id"] for view in json.loads(listed.output)}
    # one consistent moment: everything accepted before the backup began, nothing not yet sent
    assert set(accepted[:before]) <= copied <= set(accepted)
    assert (await in_thread("restore", "--data", str(restored), str(backup))).exit_code == 1  # never over a folder in use

    registry = Registry(restored / "registry.db")
    hub = await HubUnderTest(hub_config(restored, test_pki), test_pki, registry).start()
    try:
        env = document("ORG-A", ["ORG-B"])
        status, body = await hub.post(sign(env, signer))
        assert status == 200, body
        await eventually(lambda: env.msg_id in net.edms["ORG-B"].received(), 30)
        duplicate = document("ORG-A", ["ORG-B"], msg_id=accepted[0])
        status, body = await hub.post(sign(duplicate, signer))
        assert status == 409, (status, body)  # the restored journal knows it: refused as a repeat
    finally:
        await hub.stop()
        registry.close()
        for receiver in net.edms.values():
            await receiver.stop()
