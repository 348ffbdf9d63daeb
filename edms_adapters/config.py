"""What one emulated EDMS is told when it starts: who it is, where the hub is, how to misbehave."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Named faults: realistic defects an integration gets wrong, one switch each (`--fault NAME`). The
# conformance suite's mutation test (`python -m bench mutation`) runs the suite against each one.
FAULTS: dict[str, str] = {
    "no-registration-acks": "never sends registration acknowledgements",
    "wrong-key": "signs with a key that is not its certificate's (the hub answers -21)",
    "accept-invalid": "registers schema-invalid packets instead of answering 'not registrable'",
    "slow": "answers deliveries slowly (--slow-seconds, default 2 s)",
    "trusts-unknown-ca": "accepts a signature whose certificate chains to an unknown CA",
    "ignores-revocation": "does not check certificates against the CRLs",
    "accepts-expired": "accepts a signature made with an expired certificate",
    "accepts-not-yet-valid": "accepts a signature made with a certificate that is not yet valid",
    "accepts-unsigned": "registers a packet that carries no signature",
    "ignores-file-signatures": "does not verify the detached signatures of the files (DocTransfer/Signature)",
    "acks-before-store": "answers the delivery before the document is durably stored (stores it a moment later)",
    "wrong-incoming-number": "reports the sender's registration number as its incoming number",
    "refuses-without-reason": "answers every document it does not register with 'refused' and no reason",
    "garbles-cyrillic-titles": "stores non-ASCII titles in the wrong encoding",
    "garbles-file-names": "replaces non-ASCII characters of file names",
    "truncates-large-files": "keeps only the first 64 KiB of a file",
    "drops-parts": "registers a document without the files carried beside its envelope (parts)",
    "ignores-part-signatures": "verifies the signatures of inline files but not of files carried as parts",
    "trusts-part-digest": "does not check that a downloaded part's bytes are the digest the envelope names",
    "drops-task-zone": "registers a task as a plain document, without its Task fields",
    "drops-supplement-files": "registers a supplement without its files",
    "loses-reply-parent": "registers a reply without its link to the parent document",
    "mislinks-reply-parent": "links a reply to the wrong parent (its own number instead of the parent's)",
}


@dataclass(frozen=True)
class RegistrationRules:
    """Which incoming documents this agency refuses or does not register, by document kind."""

    refuse_kinds: frozenset[str] = frozenset()
    not_registrable_kinds: frozenset[str] = frozenset()
    refuse_reason: str = "is not accepted by this organisation"
    refuse_reason_code: str = "addressing_error"  # from the closed list (smdo.receipts.REFUSAL_REASONS)


@dataclass(frozen=True)
class EdmsConfig:
    kind: str  # rekord | smbusiness | directum
    code: str  # the agency's SMDO subscriber code
    hub_url: str
    data_dir: Path
    key: Path  # signs packets and acknowledgements; TLS too unless tls_key/tls_cert are given
    cert: Path
    trust: Path  # CA certificates (file or directory) for signatures and TLS
    name: str = ""
    hub_code: str = "HUB"  # Sender@id of the hub's own delivery acknowledgements (100/101/102)
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    faults: frozenset[str] = frozenset()
    rules: RegistrationRules = field(default_factory=RegistrationRules)
    number_prefix: str = ""  # incoming numbers; "" means the kind's default ("R-2026/")
    poll_interval: float = 0.3
    slow_seconds: float = 2.0
    crls: tuple[Path, ...] = ()  # CRL files to check signers against, re-read when they change
    # The mail transport (kinds with inbound/outbound "mail"): our address, our SMTP port, the hub's.
    mail_address: str = ""
    mail_port: int = 0
    hub_mail: str = ""
    hub_smtp: str = ""  # host:port of the hub's SMTP server
    # TLS server and client (mailbox) credentials when not the signing ones: OpenSSL has no bign,
    # so on a bign PKI they are an EC key and certificate from its TLS CA.
    tls_key: Path | None = None
    tls_cert: Path | None = None
    # A file larger than this travels beside the envelope as a part (edms_adapters/parts.py).
    part_threshold: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
        if (self.tls_key is None) != (self.tls_cert is None):
            raise ValueError("give both --tls-key and --tls-cert, or neither (TLS then uses --key/--cert)")

    @property
    def tls_key_path(self) -> Path:
        return self.tls_key or self.key

    @property
    def tls_cert_path(self) -> Path:
        return self.tls_cert or self.cert

    def has(self, fault: str) -> bool:
        return fault in self.faults
