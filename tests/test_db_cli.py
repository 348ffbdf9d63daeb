"""`smdo db upgrade` and the schema check at start: a hub refuses a database it does not know."""
from __future__ import annotations

from click.testing import CliRunner

from cli.main import main
from smdo.postgres.migrations import LATEST

from router_fixtures import serve_args, smdo


def test_upgrade_creates_then_finds_nothing_to_do(postgres_server):
    url = postgres_server.new_database()
    first = CliRunner().invoke(main, ["db", "upgrade", "--db", url])
    assert first.exit_code == 0 and f"schema version 0 -> {LATEST}" in first.output
    again = CliRunner().invoke(main, ["db", "upgrade", "--db", url])
    assert again.exit_code == 0 and f"already at version {LATEST}" in again.output
    listed = CliRunner().invoke(main, ["subscribers", "list", "--db", url])
    assert listed.exit_code == 0, listed.output


def test_commands_refuse_a_database_without_the_schema(postgres_server):
    url = postgres_server.new_database()
    for args in (["journal", "verify", "--db", url], ["subscribers", "list", "--db", url]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "smdo db upgrade" in result.stderr, result.output
        assert "Traceback" not in result.output


async def test_a_hub_refuses_to_start_on_a_schema_it_does_not_know(postgres_server, test_pki, tmp_path):
    url = postgres_server.new_database()
    code, _, err = await smdo(*serve_args(tmp_path, test_pki, "--db", url)[3:])
    assert code == 1 and err.lower().startswith("error: ") and "smdo db upgrade" in err, err
    assert "Traceback" not in err


def test_a_bad_storage_url_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["journal", "verify", "--db", "mysql://x/y"])
    assert result.exit_code == 1 and "unknown storage URL scheme" in result.stderr
