"""`smdo subscribers ...`: the administrators' commands for the subscriber registry.

Every command opens `<data>/registry.db`, makes one change in one transaction (the registry
records who, when and why), and on any refusal prints a one-line `error: ...` and exits 1.
"""
from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from cli.tables import table
from smdo.datadir import require_data_dir
from smdo.dialects import DIALECTS, ENVELOPE, HUB, PROFILES
from smdo.registry import Registry, RegistryError, Subscriber, SubscriberStatus, registry_store
from smdo.storage import StorageError, parse_storage

S = SubscriberStatus


class CommandError(Exception):
    """A refusal the CLI reports as `error: <message>` with exit status 1."""


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid-{os.getuid()}"


def data_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data and --actor on every command; turns refusals into `error: ...` and exit 1."""

    @click.option("--data", "data_dir", envvar="SMDO_DATA", default="./var", show_default=True,
                  type=click.Path(file_okay=False, path_type=Path), help="Data folder holding registry.db.")
    @click.option("--db", envvar="SMDO_DB", default=None,
                  help="The hub's storage: sqlite:///folder or postgresql://... [SMDO_DB; default: --data].")
    @click.option("--actor", envvar="SMDO_ACTOR", default=None,
                  help="Who makes the change (default: $SMDO_ACTOR, else the OS user).")
    @functools.wraps(command)
    def wrapper(data_dir: Path, db: str | None, actor: str | None, **kwargs: Any) -> None:
        try:
            where = parse_storage(db, data_dir)
            if where.kind == "sqlite":
                require_data_dir(where.folder)  # a typo in --data must not start an empty registry
            with registry_store(where) as registry:
                command(registry=registry, actor=actor or default_actor(), **kwargs)
        except (CommandError, RegistryError, StorageError, ValueError) as exc:
            fail(str(exc))

    return wrapper


def trust_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--trust and --crl where a certificate is bound: it must chain to a trusted CA, unexpired, unrevoked."""

    @click.option("--trust", envvar="SMDO_TRUST", required=True,
                  help="Trusted CA certificates: a PEM bundle or a folder of *.pem (or $SMDO_TRUST).")
    @click.option("--crl", "crls", multiple=True, help="A CRL file to check revocation against (repeatable).")
    @functools.wraps(command)
    def wrapper(trust: str, crls: Sequence[str], **kwargs: Any) -> None:
        command(check_certificate=certificate_checker(trust, crls), **kwargs)

    return wrapper


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def certificate_checker(trust: str, crls: Sequence[str]) -> Callable[[str], x509.Certificate]:
    """A function that loads a certificate file and refuses it unless the trust store accepts it now."""
    # signing is imported here, not at module level, so `smdo subscribers list` needs no PKI.
    from signing.errors import SignatureError
    from signing.keys import load_certificate
    from signing.trust import TrustStore

    try:
        store = TrustStore.from_paths(trust, crls)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot load trust anchors from {trust}: {exc}") from None

    def check(path: str) -> x509.Certificate:
        try:
            cert = load_certificate(path)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read certificate {path}: {exc}") from None
        now = datetime.now(timezone.utc)
        subject = cert.subject.rfc4514_string()
        if cert.not_valid_after_utc < now:
            raise CommandError(f"certificate {path} ({subject}) expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        if cert.not_valid_before_utc > now:
            raise CommandError(f"certificate {path} ({subject}) is not valid before "
                               f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        try:
            store.validate(cert, at=now)
        except SignatureError as exc:
            raise CommandError(f"certificate {path} ({subject}) is not trusted: {exc}") from None
        return cert

    return check


def when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def delivery(sub: Subscriber) -> str:
    return f"push {sub.push_url}" if sub.delivery_mode == "push" else "pull"


@click.group("subscribers")
def subscribers() -> None:
    """Register and manage the subscribers (agencies) of the hub."""


@subscribers.command("add")
@click.argument("code")
@click.option("--name", required=True, help="Organisation name.")
@click.option("--unp", required=True, help="Taxpayer number: 9 digits with its check digit.")
@click.option("--cert", "certs", multiple=True, required=True, help="Signing certificate PEM (repeatable).")
@click.option("--push", "push_url", help="Push delivery: the EDMS endpoint URL.")
@click.option("--pull", is_flag=True, help="Pull delivery: the EDMS fetches its mailbox.")
@click.option("--edms-product", default="", help="EDMS product name.")
@click.option("--edms-version", default="", help="EDMS product version.")
@click.option("--sys-id", default="", help="EDMS system GUID (Sender@sys_id).")
@click.option("--contact", default="", help="Contact person, e-mail or phone.")
@click.option("--ack-dialect", type=click.Choice(DIALECTS), default=HUB, show_default=True,
              help="System acknowledgements its EDMS understands: hub (ack_type 1 + code) or router "
                   "(ack_type 100-105, errorcode 0 = success, as the real SMDO router).")
@click.option("--profile", type=click.Choice(PROFILES), default=ENVELOPE, show_default=True,
              help="envelope: packets signed as a whole; classic: envelope unsigned, each file's CMS "
                   "signature checked, the sender known by its TLS certificate or mail address.")
@click.option("--mail-address", default=None, help="The EDMS's mail address (classic mail route).")
@click.option("--reason", default="", help="Why (recorded in the history).")
@data_options
@trust_options
def add(registry: Registry, actor: str, check_certificate: Callable[[str], x509.Certificate], code: str,
        certs: Sequence[str], **fields: Any) -> None:
    """Register subscriber CODE (status: registered)."""
    if registry.get(code) is not None:  # say so before reading any certificate
        raise CommandError(f"subscriber code {code!r} is already registered")
    certificates = [check_certificate(path) for path in certs]
    sub = registry.add_subscriber(code, certificates=certificates, actor=actor, **fields)
    click.echo(f"registered {sub.code} ({sub.name}), status {sub.status.value}, {delivery(sub)}, "
               f"{len(sub.cert_fingerprints)} certificate(s)")


@subscribers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--status", type=click.Choice([s.value for s in S]), help="Only subscribers with this status.")
@data_options
def list_(registry: Registry, actor: str, as_json: bool, status: str | None) -> None:
    """List subscribers."""
    subs = [s for s in registry.subscribers() if status is None or s.status.value == status]
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in subs], indent=2, ensure_ascii=False))
        return
    rows = [(s.code, s.name, s.unp, s.status.value, delivery(s), len(s.cert_fingerprints),
             f"{s.edms_product} {s.edms_version}".strip()) for s in subs]
    click.echo(table(["code", "name", "unp", "status", "delivery", "certs", "edms"], rows))
    click.echo(f"{len(subs)} subscriber(s)")


@subscribers.command("show")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_options
def show(registry: Registry, actor: str, code: str, as_json: bool) -> None:
    """Show everything about subscriber CODE."""
    sub = registry.require(code)
    certs = registry.certificates(code)
    conclusion = registry.latest_conclusion(code)
    if as_json:
        data = sub.as_dict()
        data["certificates"] = [{"fingerprint": c.fingerprint, "subject": c.subject, "issuer": c.issuer,
                                 "not_before": c.not_before.isoformat(), "not_after": c.not_after.isoformat()}
                                for c in certs]
        data["conformance"] = None if conclusion is None else {
            "at": conclusion.at.isoformat(), "suite_version": conclusion.suite_version,
            "passed": conclusion.passed, "summary": conclusion.summary}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for label, value in [("code", sub.code), ("name", sub.name), ("unp", sub.unp), ("status", sub.status.value),
                         ("delivery", delivery(sub)), ("edms", f"{sub.edms_product} {sub.edms_version}".strip()),
                         ("sys_id", sub.sys_id), ("contact", sub.contact), ("ack dialect", sub.ack_dialect),
                         ("profile", sub.profile), ("mail", sub.mail_address or "-")]:
        click.echo(f"{label:<12}{value}")
    if conclusion is None:
        click.echo(f"{'conformance':<12}never run")
    else:
        outcome = "passed" if conclusion.passed else "FAILED"
        failed = conclusion.summary.get("failed_cases") or []
        cases = f" (failed: {', '.join(map(str, failed))})" if failed else ""  # type: ignore[arg-type]
        click.echo(f"{'conformance':<12}{outcome}{cases}, suite {conclusion.suite_version}, {when(conclusion.at)} UTC")
    click.echo("certificates:")
    click.echo(table(["fingerprint (sha256)", "subject", "valid from", "valid to"],
                     [(c.fingerprint, c.subject, when(c.not_before), when(c.not_after)) for c in certs]))


@subscribers.command("update")
@click.argument("code")
@click.option("--name")
@click.option("--unp")
@click.option("--push", "push_url", help="Switch to push delivery at this URL.")
@click.option("--pull", is_flag=True, default=None, help="Switch to pull delivery.")
@click.option("--edms-product")
@click.option("--edms-version")
@click.option("--sys-id")
@click.option("--contact")
@click.option("--ack-dialect", type=click.Choice(DIALECTS))
@click.option("--profile", type=click.Choice(PROFILES))
@click.option("--mail-address")
@click.option("--reason", default="", help="Why (recorded in the history).")
@data_options
def update(registry: Registry, actor: str, code: str, reason: str, **changes: Any) -> None:
    """Change subscriber CODE's descriptive fields or delivery mode."""
    sub = registry.update_subscriber(code, actor=actor, reason=reason, **changes)
    click.echo(f"updated {sub.code}: {delivery(sub)}")


def status_command(name: str, target: SubscriberStatus, needs: SubscriberStatus | None, reason_required: bool,
                   help_text: str) -> None:
    """One command per lifecycle step: they differ only in the target status and what they start from."""

    # Click counts an explicit default=None as a default, so a required option gets none at all.
    reason_option = {"required": True} if reason_required else {"default": name}

    @click.argument("code")
    @click.option("--reason", help="Why (recorded in the history).", **reason_option)
    @data_options
    def command(registry: Registry, actor: str, code: str, reason: str) -> None:
        current = registry.require(code).status
        if needs is not None and current is not needs:
            hint = (f" (it is certified by passing `smdo conformance run --subscriber {code}`)"
                    if needs is S.CERTIFIED and current in (S.REGISTERED, S.TESTING) else "")
            raise CommandError(f"{name} takes a {needs.value} subscriber; {code} is {current.value}{hint}")
        sub = registry.set_status(code, target, actor=actor, reason=reason)
        click.echo(f"{sub.code}: {current.value} -> {sub.status.value}")

    command.__doc__ = help_text
    subscribers.command(name)(command)


status_command("activate", S.ACTIVE, S.CERTIFIED, False,
               "Let certified subscriber CODE exchange production traffic (needs a passing conformance run).")
status_command("suspend", S.SUSPENDED, S.ACTIVE, True, "Block active subscriber CODE; its packets get code 104.")
status_command("resume", S.ACTIVE, S.SUSPENDED, True, "Unblock suspended subscriber CODE.")
status_command("revoke", S.REVOKED, None, True, "Remove subscriber CODE for good (its history stays).")


@subscribers.group("cert")
def cert() -> None:
    """Bind or unbind subscribers' signing certificates."""


@cert.command("add")
@click.argument("code")
@click.argument("pem")
@click.option("--reason", default="", help="Why (recorded in the history).")
@data_options
@trust_options
def cert_add(registry: Registry, actor: str, check_certificate: Callable[[str], x509.Certificate], code: str,
             pem: str, reason: str) -> None:
    """Bind the certificate in PEM to subscriber CODE."""
    registry.require(code)
    fp = registry.add_certificate(code, check_certificate(pem), actor=actor, reason=reason)
    click.echo(f"{code}: bound certificate {fp}")


@cert.command("remove")
@click.argument("code")
@click.argument("fingerprint")
@click.option("--reason", default="", help="Why (recorded in the history).")
@data_options
def cert_remove(registry: Registry, actor: str, code: str, fingerprint: str, reason: str) -> None:
    """Unbind the certificate with this sha256 FINGERPRINT from subscriber CODE."""
    registry.remove_certificate(code, fingerprint, actor=actor, reason=reason)
    click.echo(f"{code}: removed certificate {fingerprint.lower()}")


@subscribers.command("history")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@data_options
def history(registry: Registry, actor: str, code: str, as_json: bool) -> None:
    """Every change to subscriber CODE: who, when, what, why."""
    entries = registry.history(code)
    if as_json:
        click.echo(json.dumps([{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                "from": e.from_status.value if e.from_status else None,
                                "to": e.to_status.value if e.to_status else None,
                                "reason": e.reason, "details": e.details} for e in entries], indent=2, ensure_ascii=False))
        return
    rows = []
    for e in entries:
        change = f"{e.from_status.value if e.from_status else ''} -> {e.to_status.value}" if e.to_status else ""
        details = ""
        if e.action in ("update", "cert-add", "cert-remove"):
            details = ", ".join(f"{k}={v}" for k, v in e.details.items())
        elif e.action == "conformance" and e.details.get("failed_cases"):
            details = "failed: " + ", ".join(map(str, e.details["failed_cases"]))  # type: ignore[arg-type]
        rows.append((when(e.at), e.actor, e.action, change.strip(), e.reason, details))
    click.echo(table(["when (UTC)", "who", "action", "status", "why", "details"], rows))
