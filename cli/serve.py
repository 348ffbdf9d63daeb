"""`smdo serve`: run the hub."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from router.config import load_config
from router.logs import configure as configure_logging
from router.server import serve
from smdo.datadir import DataDirBusy, init_data_dir
from smdo.storage import StorageError


@click.command("serve")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with settings (a [hub] table); flags override SMDO_* env override the file.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), help="Data folder [SMDO_DATA; ./var].")
@click.option("--db", help="Journal and registry: sqlite:///folder or postgresql://user@host/db [SMDO_DB; --data].")
@click.option("--node", help="This node's name in a cluster sharing one PostgreSQL [host name].")
@click.option("--host", help="Address to listen on [127.0.0.1].")
@click.option("--port", type=int, help="Port [8443]; 0 picks a free one.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The hub's private key.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The hub's certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TLS key, when not --key (a bign signing key cannot do TLS) [--key].")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TLS certificate, when not --cert [--cert].")
@click.option("--trust", type=click.Path(exists=True, path_type=Path), help="CA certificates: PEM file or folder.")
@click.option("--crl", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CRL (repeatable); *.crl files in a --trust folder are loaded without it.")
@click.option("--operator-cert", "operator_certs", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An operator's TLS client certificate (PEM, repeatable): may read /metrics and every "
                   "transaction's status.")
@click.option("--client-auth", type=click.Choice(["none", "optional", "required"]), help="mTLS [optional].")
@click.option("--http", "http", is_flag=True, default=None, help="Plain HTTP, allowed on loopback only.")
@click.option("--workers", type=int, help="Worker processes sharing the port [1].")
@click.option("--hub-code", help="The hub's subscriber code on its acknowledgements [HUB].")
@click.option("--delivery-deadline", help="Give up delivering after this, e.g. 2s, 5m, 72h [72h].")
@click.option("--retry-base", help="First retry after about this [1s]; doubles per attempt, with jitter.")
@click.option("--retry-max", help="Longest wait between retries [10m].")
@click.option("--push-concurrency", type=int, help="Pushes in flight per receiver [8].")
@click.option("--claim-lease", help="A push delivery is another node's to take if not finished within this [2m].")
@click.option("--mailbox-visibility", help="Re-offer an unconfirmed pull delivery after this [60s].")
@click.option("--max-packet-bytes", type=int, help="Largest packet accepted [30 MB].")
@click.option("--mail-port", type=int, help="The classic clients' mail route: the hub's SMTP port (0: free) [off].")
@click.option("--mail-address", help="The hub's own mail address, for the mail route.")
@click.option("--smtp-relay", help="HOST:PORT of the mail server that takes the hub's outgoing mail [off].")
@click.option("--checkpoint-interval", help="Sign a journal checkpoint this often (and at shutdown) [1m].")
@click.option("--retention", help="Move finished packets and their parts older than this (e.g. 90d) to "
                                   "--archive-dir, hourly [unset: keep everything].")
@click.option("--archive-dir", help="Where --retention moves finished packets and parts (an archive volume).")
@click.option("--parts-dir", help="Where files beside the envelope are kept; in a cluster, a folder every node "
                                  "shares [SMDO_PARTS_DIR; DATA/parts].")
@click.option("--tsa", help="RFC 3161 time-stamping authority URL: timestamp every journal checkpoint.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              help="Least important level logged [warning]: refused packets and failed deliveries are warnings.")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="text, or one JSON object per line [text].")
@click.option("--access-log", is_flag=True, default=None, help="Log every HTTP request (level info).")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level (--log-level info).")
def command(config_file: Path | None, verbose: bool, crl: tuple[Path, ...], operator_certs: tuple[Path, ...],
            **flags: object) -> None:
    """Run the hub: accept, check, journal, deliver and acknowledge packets."""
    if crl:
        flags["crl"] = crl
    if operator_certs:
        flags["operator_certs"] = operator_certs
    if verbose and not flags.get("log_level"):
        flags["log_level"] = "info"
    try:
        config = load_config(config_file, flags=flags).check()
        configure_logging(config.log_level, config.log_format)
        if config.access_log and config.log_level not in ("debug", "info"):
            logging.getLogger("aiohttp.access").setLevel(logging.INFO)
        init_data_dir(config.data)  # the first serve makes the folder other commands then accept
        serve(config)
    except (ValueError, DataDirBusy, StorageError) as exc:
        raise click.ClickException(str(exc)) from exc
