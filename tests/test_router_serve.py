"""`smdo serve` and `smdo journal` as commands: configuration sources, loopback-only HTTP, several
workers on one port, graceful shutdown, and reading the journal afterwards."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from router.config import HubConfig, load_config, parse_duration
from smdo.registry import Registry

from router_fixtures import OPERATOR, ServeProcess, ack_of, document, hub_client, register, serve_args, sign, smdo


def test_durations():
    assert parse_duration("2s") == 2 and parse_duration("5m") == 300 and parse_duration("72h") == 259200
    assert parse_duration("250ms") == 0.25 and parse_duration(3) == 3.0
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_flags_override_environment_override_file(tmp_path):
    toml = tmp_path / "hub.toml"
    toml.write_text('[hub]\nport = 9000\nworkers = 3\ndelivery_deadline = "5m"\nhub_code = "FILE"\n')
    config = load_config(toml, env={"SMDO_PORT": "9100", "SMDO_HUB_CODE": "ENV", "SMDO_DATA": "/srv/x"},
                         flags={"port": 9200, "workers": None})
    assert (config.port, config.workers, config.delivery_deadline) == (9200, 3, 300.0)
    assert config.hub_code == "ENV" and config.data == Path("/srv/x")
    toml.write_text("[hub]\nprot = 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_config(toml, env={})


def test_plain_http_is_refused_off_loopback(tmp_path, test_pki):
    result = CliRunner().invoke(main, [
        "serve", "--http", "--host", "0.0.0.0", "--data", str(tmp_path), "--key", str(test_pki.key_path("HUB")),
        "--cert", str(test_pki.cert_path("HUB")), "--trust", str(test_pki.trust_dir)])
    assert result.exit_code != 0
    assert "allowed only on loopback" in result.output


def test_config_without_keys_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--key and --cert"):
        HubConfig(data=tmp_path).check()


async def test_two_workers_share_the_port_and_stop_gracefully(tmp_path, test_pki):
    data = tmp_path / "data"
    with Registry(data / "registry.db") as registry:
        register(registry, test_pki, "ORG-A")
        register(registry, test_pki, "ORG-B")  # pull: packets wait in its mailbox
    hub = await ServeProcess(data, test_pki, "--workers", "2").ready()
    signer = test_pki.signer("ORG-A")
    packets = [document("ORG-A", ["ORG-B"]) for _ in range(40)]
    try:
        async with hub_client(test_pki) as client:
            async def post(packet):
                async with client.post(f"{hub.url}/smdo/v1/packets", data=sign(packet, signer)) as r:
                    return r.status, ack_of(await r.read()).ack_codes

            results = await asyncio.gather(*(post(p) for p in packets))
        assert results == [(200, (100,))] * len(packets)
        async with hub_client(test_pki, OPERATOR) as operator, hub_client(test_pki) as anonymous:
            async with operator.get(f"{hub.url}/metrics") as r:  # --operator-cert (serve_args)
                assert r.status == 200
            async with anonymous.get(f"{hub.url}/metrics") as r:
                assert r.status == 401
        # A second hub on the same data folder is refused: the leases would not be safe.
        code, _, err = await smdo(*serve_args(data, test_pki)[3:])
        assert code != 0 and "another hub is already running" in err
    finally:
        assert hub.terminate() == 0

    code, out, _ = await smdo("journal", "list", "--data", str(data), "--json", "--limit", "1000")
    assert code == 0
    assert {t["msg_id"] for t in json.loads(out)} == {p.msg_id for p in packets}
    code, out, _ = await smdo("journal", "list", "--data", str(data), "--sender", "ORG-A", "--state", "accepted")
    assert code == 0 and "40 transaction(s)" in out and "ORG-B:accepted" in out
    code, out, _ = await smdo("journal", "show", packets[0].msg_id, "--data", str(data))
    assert code == 0 and "accepted (codes 100)" in out and "ORG-B" in out
    assert (await smdo("journal", "verify", "--data", str(data)))[0] == 0
    # Each worker wrote a signed checkpoint at shutdown; the last one covers the whole journal.
    code, out, err = await smdo("journal", "verify", "--data", str(data), "--hub-cert",
                                str(test_pki.cert_path("HUB")), "--trust", str(test_pki.trust_dir))
    assert code == 0 and "checkpoints ok" in out, err
    with sqlite3.connect(data / "journal.db") as db:
        head = db.execute("SELECT seq FROM chain_head").fetchone()[0]
    assert max(json.loads(line)["seq"] for line in (data / "checkpoints.jsonl").read_text().splitlines()) == head
    with sqlite3.connect(data / "journal.db") as db:
        db.execute("UPDATE transactions SET size = size + 1 WHERE id = 7")
    code, _, err = await smdo("journal", "verify", "--data", str(data))
    assert code == 1 and "transactions row 7" in err


async def test_client_auth_required_turns_away_clients_without_a_certificate(tmp_path, test_pki, trust_store):
    import aiohttp

    from router_fixtures import start_network

    net = await start_network(tmp_path, test_pki, trust_store, client_auth="required")
    try:
        with pytest.raises(aiohttp.ClientError):
            await net.hub.post(sign(document("ORG-A", ["ORG-B"]), test_pki.signer("ORG-A")))
        async with net.hub.session("ORG-A").post(f"{net.hub.url}/smdo/v1/packets",
                                                 data=sign(document("ORG-A", ["ORG-B"]), test_pki.signer("ORG-A"))) as r:
            assert r.status == 200 and ack_of(await r.read()).ack_codes == (100,)
    finally:
        await net.stop()
