"""The named conformance cases, in the order they run.

Each case sends real packets to the EDMS under test and checks what comes back; a failure says
what was sent, what came back, what the format requires and which field to fix.

Cases are as independent as the protocol allows, so one defect does not hide another. Only one
fact gates others: whether the EDMS sends valid registration acknowledgements at all (case
registration-ack); the cases judged only by those acknowledgements are skipped with that reason
when it does not. A bad delivery acknowledgement gates nothing. Cases that need something only the
integrator can provide (the test adapter, a restart hook, the certification PKI) are skipped,
saying what to provide, when it is missing; certification needs every case to pass.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date
from dataclasses import dataclass, field

from signing.keys import Signer
from smdo import packet as p
from smdo.conformance.adapter import AdapterClient, AdapterError
from smdo.conformance.counterpart import Counterpart, Received, describe, registration_of
from smdo.conformance.fidelity import differences, expected_card, fix_hint
from smdo.conformance.packets import Outgoing, PacketFactory, parent_of, referred_to
from smdo.conformance.routes import PartRefused, Route, RouteError
from smdo.conformance.trust_kit import TrustKit
from smdo.errors import RegistrationResult
from smdo.receipts import REGISTRATION_TEXTS
from smdo.registry import TEST_COUNTERPART_CODE

REGISTRATION_ACKS = "registration-acks"
# fact -> (the case that establishes it, what it means)
FACTS = {
    REGISTRATION_ACKS: ("registration-ack", "valid registration acknowledgements from the EDMS"),
}
RESULT_NAMES = {0: "registered", 1: "not registrable", 2: "refused", 3: "signature not trusted"}
NO_ADAPTER = ("needs the test adapter (--adapter URL, README 'The test adapter') to see what the EDMS "
              "registered")


@dataclass(frozen=True)
class Timing:
    delivery: float = 1.0  # a delivery acknowledgement must come within this (the "in time" of the spec)
    registration: float = 10.0  # and the registration acknowledgement within this
    patience: float = 30.0  # how long other cases wait for an answer before calling it missing
    document: float = 60.0  # how long the suite waits for the EDMS's own document
    repeat_window: float = 2.0  # after a repeat was answered, how long to watch for a second registration
    large_bytes: int = 20 * 1024 * 1024
    large_wait: float = 120.0
    part_bytes: int = 300 * 1024 * 1024  # the file beside the envelope (large-part)
    part_wait: float = 600.0  # its upload, delivery (the EDMS downloads it) and registration
    tampered_part_bytes: int = 1024 * 1024  # the changed / mismatched parts (held whole: it is signed)
    restart: float = 60.0  # how long the EDMS may take to come back after the restart hook


class CaseFailed(Exception):
    """The EDMS did not do what the case requires; the message says what to fix."""


class CaseSkipped(Exception):
    """The case cannot be judged without something the integrator provides; the message says what."""


@dataclass
class Context:
    code: str  # the subscriber under test
    route: Route
    counterpart: Counterpart
    factory: PacketFactory
    fingerprints: frozenset[str]  # the EDMS's registered certificates (sha256)
    sys_id: str | None = None  # its registered EDMS GUID, when known
    timing: Timing = field(default_factory=Timing)
    # Asks the EDMS for a document to the counterpart, e.g. a reply to this msg_id (see cli --reply-hook).
    ask_for_document: Callable[[str], Awaitable[None]] | None = None
    adapter: AdapterClient | None = None  # the integrator's test adapter (--adapter)
    restart: Callable[[], Awaitable[None]] | None = None  # restarts the EDMS (--restart-hook)
    trust_kit: TrustKit | None = None  # keys the trust cases sign with
    say: Callable[[str], None] = lambda line: None
    facts: dict[str, bool] = field(default_factory=dict)
    first: Outgoing | None = None
    first_sent_at: float = 0.0
    first_registration: Received | None = None
    edms_document: Received | None = None
    # The EDMS is registered in the classic profile: its envelopes come unsigned (the hub knew it by
    # its channel), its files signed; the counterpart checked those.
    classic: bool = False
    # It receives by e-mail (pull mode with a mail address, router/mail_out.py): the mail route
    # carries files as the mail's own attachments and no parts, so the part cases do not apply.
    receives_by_mail: bool = False

    def signed_by_edms(self, found: Received) -> bool:
        return found.signer_fingerprint in self.fingerprints or (self.classic and found.signer_fingerprint is None)


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    needs: tuple[str, ...]
    run: Callable[[Context], Awaitable[str]]  # returns what passed; raises CaseFailed or CaseSkipped


CASES: list[Case] = []


def case(name: str, title: str, *needs: str) -> Callable[[Callable[[Context], Awaitable[str]]], Callable[[Context], Awaitable[str]]]:
    def register(fn: Callable[[Context], Awaitable[str]]) -> Callable[[Context], Awaitable[str]]:
        CASES.append(Case(name, title, tuple(needs), fn))
        return fn
    return register


# -- helpers ----------------------------------------------------------------------------------

async def hub_refusals(ctx: Context, since: float) -> str:
    """In hub mode: what the hub refused from the EDMS since `since` (wall clock), as a sentence."""
    refused = await ctx.route.refusals(ctx.code, since)
    if not refused:
        return ""
    return (f" Meanwhile the hub refused what {ctx.code} sent: {'; '.join(refused)} (see `smdo journal show "
            "MSG_ID`); an acknowledgement the hub refuses never arrives: fix what the code says (35: a required "
            "attribute or element is missing, e.g. the reason of a refusal)")


async def registration(ctx: Context, out: Outgoing, wait: float) -> tuple[Received, int, str]:
    """The EDMS's registration acknowledgement of `out`: (packet, result code, text). Fails if none."""
    since = time.time()
    found = await ctx.counterpart.wait_for(registration_of(out.msg_id, ctx.code), wait)
    if found is None:
        raise CaseFailed(f"no registration acknowledgement (ack_type 2) of msg {out.msg_id} arrived within "
                         f"{wait:.0f} s: every delivered document must be answered with one, addressed to "
                         f"{TEST_COUNTERPART_CODE}." + await hub_refusals(ctx, since - 5))
    if found.problems:
        raise CaseFailed(f"the registration acknowledgement of msg {out.msg_id} fails the checks: "
                         f"{describe(found.problems)}")
    if not ctx.signed_by_edms(found):
        raise CaseFailed("the registration acknowledgement is not signed with the EDMS's registered certificate")
    result = found.acknowledgement.results[0]
    return found, result.errorcode, result.text


def result_name(code: int) -> str:
    return f"{code} ({RESULT_NAMES.get(code, 'unknown result')})"


def need_adapter(ctx: Context) -> AdapterClient:
    if ctx.adapter is None:
        raise CaseSkipped(NO_ADAPTER)
    return ctx.adapter


async def card_now(ctx: Context, msg_id: str) -> dict | None:
    try:
        return await need_adapter(ctx).card(msg_id)
    except AdapterError as exc:
        raise CaseFailed(f"the test adapter did not answer as the contract says: {exc}") from None


async def registered_card(ctx: Context, out: Outgoing, what: str, wait: float | None = None) -> dict:
    """The card the EDMS registered for `out` (test adapter), waiting for it to appear."""
    adapter = need_adapter(ctx)
    wait = wait or ctx.timing.patience
    deadline = time.monotonic() + wait
    while True:
        card = await card_now(ctx, out.msg_id)
        if (card is not None and card.get("status")) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    if card is None:
        raise CaseFailed(f"the test adapter has no card of the {what} (msg {out.msg_id}, GET {adapter.url}/cards/"
                         f"{out.msg_id}) {wait:.0f} s after it was delivered: register every delivered document")
    if card.get("status") != "registered":
        raise CaseFailed(f"the {what} (msg {out.msg_id}) is on a card with status {card.get('status')!r} "
                         f"({card.get('reason') or 'no reason given'}); a well-formed, correctly signed {what} "
                         "must be registered")
    return card


def check_fidelity(out: Outgoing, card: dict, what: str) -> str:
    """Fail unless the card shows every field as sent; returns what was checked."""
    expected = expected_card(out.envelope, {part.digest: part.size for part in out.parts})
    problems = differences(expected, card)
    if problems:
        raise CaseFailed(f"the {what} (msg {out.msg_id}) was registered as {card.get('incoming_number')}, but not as "
                         f"sent: {'; '.join(problems)}.{fix_hint(problems)}")
    checked = [key for key in ("title", "parent", "task", "supplement") if key in expected]
    return f"{', '.join(checked)} and {len(expected['files'])} file(s) as sent"


async def expect_registered(ctx: Context, out: Outgoing, what: str, wait: float | None = None) -> str:
    """Registered, by its acknowledgement (when the EDMS sends them) and its card (when there is an adapter),
    and the card shows what was sent."""
    said = []
    if ctx.facts.get(REGISTRATION_ACKS):
        _, code, text = await registration(ctx, out, wait or ctx.timing.patience)
        if code != RegistrationResult.REGISTERED:
            raise CaseFailed(f"the EDMS answered the {what} with registration result {result_name(code)}: "
                             f"{text!r}; a well-formed, correctly signed {what} must be registered (0)")
        said.append(text)
    if ctx.adapter is not None:
        card = await registered_card(ctx, out, what, wait)
        said.append(check_fidelity(out, card, what))
    if not said:
        raise CaseSkipped(f"{NO_ADAPTER}, and the EDMS sends no valid registration acknowledgements "
                          "(case registration-ack)")
    return "; ".join(said)


_GENERIC = {"", *(t.lower() for t in REGISTRATION_TEXTS.values()), *RESULT_NAMES.values()}


async def expect_untrusted(ctx: Context, out: Outgoing, sent: str, requires: str, *, checked: bool = False) -> str:
    """A conforming EDMS answers 3 (signature not trusted) saying why, and registers nothing.
    `checked`: the packet goes through the hub's checks (which take it), not in unchecked."""
    if checked:
        await ctx.route.send(out)
    else:
        await ctx.route.send_unchecked(out)
    _, code, text = await registration(ctx, out, ctx.timing.patience)
    wrong = []
    if code != RegistrationResult.SIGNATURE_NOT_TRUSTED:
        wrong.append(f"it answered {result_name(code)} ({text!r}), not 3 (signature not trusted)")
    elif text.strip().lower().rstrip(".") in _GENERIC:
        wrong.append(f"it answered 3 but gave no reason ({text!r}): say what failed, in AckResult's text")
    if ctx.adapter is not None:
        card = await card_now(ctx, out.msg_id)
        if card is not None and card.get("status") == "registered":
            wrong.append(f"the test adapter shows it registered as {card.get('incoming_number')}")
    if wrong:
        raise CaseFailed(f"sent msg {out.msg_id}, {sent}: {'; '.join(wrong)}. {requires}")
    return f"answered 3: {text}"


def kit_signer(ctx: Context, which: str) -> Signer:
    signer = getattr(ctx.trust_kit, which, None) if ctx.trust_kit is not None else None
    if signer is None:
        raise CaseSkipped("needs the certification PKI (--pki DIR): the suite issues this certificate there, "
                          "from a CA the EDMS under test trusts")
    return signer


# -- the cases --------------------------------------------------------------------------------

@case("delivery-ack", "A valid document gets a signed delivery acknowledgement in time")
async def delivery_ack(ctx: Context) -> str:
    ctx.first = ctx.factory.document("Conformance: valid document")
    ctx.first_sent_at = time.monotonic()
    await ctx.route.send(ctx.first)
    got = await ctx.route.confirmation(ctx.first.msg_id, ctx.timing.patience)
    if not got.ok:
        raise CaseFailed(f"no valid delivery acknowledgement: {got.reason}. The EDMS must answer each delivered "
                         "packet with an acknowledgement (ack_type 1, code 101) signed with its registered "
                         "certificate's key")
    if got.seconds is not None and got.seconds > ctx.timing.delivery:
        raise CaseFailed(f"the delivery acknowledgement came after {got.seconds:.2f} s; the limit is "
                         f"{ctx.timing.delivery:.1f} s. Answer the delivery as soon as the packet is stored; "
                         "register it afterwards")
    return f"acknowledged in {got.seconds:.2f} s (limit {ctx.timing.delivery:.1f} s)"



@case("registration-ack", "The valid document gets a registration acknowledgement in time")
async def registration_ack(ctx: Context) -> str:
    assert ctx.first is not None
    try:
        found, code, text = await registration(ctx, ctx.first, ctx.timing.patience)
    except CaseFailed:
        ctx.facts[REGISTRATION_ACKS] = False
        raise
    ctx.facts[REGISTRATION_ACKS] = True
    ctx.first_registration = found
    if code != RegistrationResult.REGISTERED:
        raise CaseFailed(f"the valid document was answered with {result_name(code)}: {text!r}; it must be "
                         f"registered (0). Check the EDMS accepts letters (kind 01) from {TEST_COUNTERPART_CODE}")
    seconds = found.at - ctx.first_sent_at
    if seconds > ctx.timing.registration:
        raise CaseFailed(f"the registration acknowledgement came {seconds:.1f} s after sending; the limit is "
                         f"{ctx.timing.registration:.0f} s")
    return f"registered in {seconds:.2f} s: {text}"




@case("incoming-number", "A registration acknowledgement carries the incoming number the EDMS registered",
      REGISTRATION_ACKS)
async def incoming_number(ctx: Context) -> str:
    found = ctx.first_registration
    if found is None:
        raise CaseFailed("the valid document was not registered, so there is no number to check")
    inc = found.acknowledgement.inc_number
    if inc is None or not inc.number.strip():
        raise CaseFailed("the registration acknowledgement has no IncNumber: a 'registered' answer must carry "
                         "the incoming registration number and date the EDMS assigned")
    assert ctx.first is not None
    sent = ctx.first.envelope.body.reg_number
    if inc.number == sent.number:
        raise CaseFailed(f"IncNumber is {inc.number}, the sender's own number (RegNumber of msg "
                         f"{ctx.first.msg_id}): IncNumber is the number the receiving EDMS assigned")
    if ctx.adapter is None:
        return f"incoming number {inc.number} of {inc.regdate.isoformat()} (not compared: {NO_ADAPTER})"
    card = await registered_card(ctx, ctx.first, "valid document")
    if card.get("incoming_number") != inc.number:
        raise CaseFailed(f"the registration acknowledgement of msg {ctx.first.msg_id} says IncNumber {inc.number}, "
                         f"but the EDMS registered it as {card.get('incoming_number')!r} (test adapter): report the "
                         "number the document was registered under")
    return f"incoming number {inc.number} of {inc.regdate.isoformat()}, as registered"


@case("tampered-signature", "A tampered signature gets 'signature not trusted'", REGISTRATION_ACKS)
async def tampered_signature(ctx: Context) -> str:
    return await expect_untrusted(
        ctx, ctx.factory.tampered("Conformance: tampered signature"), "changed after signing",
        "Verify every incoming signature and answer 3 when it fails")


@case("foreign-ca", "A signature from an unknown CA gets 'signature not trusted'", REGISTRATION_ACKS)
async def foreign_ca(ctx: Context) -> str:
    signer = kit_signer(ctx, "foreign")
    return await expect_untrusted(
        ctx, ctx.factory.signed_by("Conformance: signed under a foreign CA", signer),
        f"signed by {signer.certificate.subject.rfc4514_string()}, issued by a CA that is not a trusted one",
        "Check that the signer's certificate chains to a trusted root (the national CA) and answer 3 naming "
        "the unknown issuer")


@case("revoked-certificate", "A signature by a revoked certificate gets 'signature not trusted'",
      REGISTRATION_ACKS)
async def revoked_certificate(ctx: Context) -> str:
    signer = kit_signer(ctx, "revoked")
    crl = ctx.trust_kit.crl if ctx.trust_kit else None
    return await expect_untrusted(
        ctx, ctx.factory.signed_by("Conformance: signed with a revoked certificate", signer),
        f"signed with certificate serial {signer.certificate.serial_number:x}, revoked on the CA's CRL ({crl})",
        "Check every signer against the CRL of its CA, and re-read a CRL when it is re-published")


@case("expired-certificate", "A signature by an expired certificate gets 'signature not trusted'",
      REGISTRATION_ACKS)
async def expired_certificate(ctx: Context) -> str:
    signer = kit_signer(ctx, "expired")
    return await expect_untrusted(
        ctx, ctx.factory.signed_by("Conformance: signed with an expired certificate", signer),
        f"signed with a certificate valid until {signer.certificate.not_valid_after_utc:%Y-%m-%d %H:%M}Z",
        "Check the certificate's validity period at the time the packet arrives")


@case("not-yet-valid-certificate", "A signature by a not yet valid certificate gets 'signature not trusted'",
      REGISTRATION_ACKS)
async def not_yet_valid_certificate(ctx: Context) -> str:
    signer = kit_signer(ctx, "not_yet_valid")
    return await expect_untrusted(
        ctx, ctx.factory.signed_by("Conformance: signed with a not yet valid certificate", signer),
        f"signed with a certificate valid only from {signer.certificate.not_valid_before_utc:%Y-%m-%d %H:%M}Z",
        "Check the certificate's validity period (both ends) at the time the packet arrives")


@case("unsigned", "A packet with no signature gets 'signature not trusted'", REGISTRATION_ACKS)
async def unsigned(ctx: Context) -> str:
    return await expect_untrusted(
        ctx, ctx.factory.unsigned("Conformance: unsigned document"), "with no ds:Signature at all",
        "Every packet must carry an enveloped ds:Signature (the format's -22 when missing); answer 3")


@case("file-signature", "A file whose signature does not match it gets 'signature not trusted'",
      REGISTRATION_ACKS)
async def file_signature(ctx: Context) -> str:
    return await expect_untrusted(
        ctx, ctx.factory.file_signature_mismatch("Conformance: file signature does not match"),
        "correctly signed, but its file's DocTransfer/Signature (detached CMS) was made over other bytes",
        "Verify each DocTransfer/Signature against the decoded file and its signer's certificate path; "
        "answer 3 when one fails")


@case("schema-invalid", "A schema-invalid packet is refused, not registered", REGISTRATION_ACKS)
async def schema_invalid(ctx: Context) -> str:
    out = ctx.factory.schema_invalid("Conformance: schema-invalid document")
    await ctx.route.send_unchecked(out)
    _, code, text = await registration(ctx, out, ctx.timing.patience)
    if code == RegistrationResult.REGISTERED:
        raise CaseFailed("the EDMS registered a packet whose Document has no 'pages' attribute (format code 35): "
                         "validate incoming packets against the SDIP schema and answer 1 (not registrable)")
    if code not in (RegistrationResult.NOT_REGISTRABLE, RegistrationResult.REFUSED):
        raise CaseFailed(f"answered {result_name(code)} ({text!r}); a schema-invalid packet should get 1 "
                         "(not registrable) or 2 (refused)")
    return f"answered {result_name(code)}: {text}"



@case("duplicate", "A repeated packet is acknowledged again, not registered twice", REGISTRATION_ACKS)
async def duplicate(ctx: Context) -> str:
    out = ctx.factory.document("Conformance: sent twice")
    await ctx.route.send(out)
    first, code, _ = await registration(ctx, out, ctx.timing.patience)
    await ctx.route.send_unchecked(out, repeat=True)
    answered = await ctx.route.confirmation(out.msg_id, ctx.timing.patience, repeat=True)
    if not answered.ok:
        raise CaseFailed(f"the repeated packet was not acknowledged: {answered.reason}. A packet that arrives "
                         "again must be acknowledged again (101), without registering it again")
    second = await ctx.counterpart.wait_for(
        lambda r: registration_of(out.msg_id, ctx.code)(r) and r is not first, ctx.timing.repeat_window)
    if second is not None:
        numbers = [x.acknowledgement.inc_number.number if x.acknowledgement.inc_number else "-"
                   for x in (first, second)]
        raise CaseFailed(f"the EDMS registered msg {out.msg_id} twice (numbers {numbers[0]} and {numbers[1]}): "
                         "recognise a repeated msg_id and keep the first registration")
    if ctx.adapter is not None:
        card = await card_now(ctx, out.msg_id)
        if card is not None and int(card.get("registrations", 1)) > 1:
            raise CaseFailed(f"the test adapter shows msg {out.msg_id} registered {card['registrations']} times: "
                             "recognise a repeated msg_id and keep the first registration")
    return "acknowledged again; registered once"


async def _wait_counting_down(ctx: Context, match: Callable[[Received], bool], seconds: float) -> Received | None:
    """counterpart.wait_for, saying every few seconds how long the suite still waits."""
    step = max(1.0, min(10.0, seconds / 6))
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        found = await ctx.counterpart.wait_for(match, min(step, remaining))
        if found is not None:
            return found
        if deadline - time.monotonic() > 0:
            ctx.say(f"    still waiting for {ctx.code}'s document: {deadline - time.monotonic():.0f} s left")
    return None


@case("outgoing-document", "The EDMS's own document is schema-valid, signed and correctly addressed")
async def outgoing_document(ctx: Context) -> str:
    asked = ctx.first or ctx.factory.document("Conformance: please reply")
    since = time.time()
    ctx.say(f"    waiting up to {ctx.timing.document:.0f} s for {ctx.code} to send a document to "
            f"{TEST_COUNTERPART_CODE} (e.g. a reply to msg {asked.msg_id})")
    if ctx.ask_for_document is not None:
        await ctx.ask_for_document(asked.msg_id)

    def from_edms(r: Received) -> bool:
        return r.header is not None and r.header.sender_id == ctx.code and r.header.msg_type in (
            p.DOCUMENT, p.SUPPLEMENT, p.REPLY, p.REPLY_SUPPLEMENT)

    def from_this_run(r: Received) -> bool:  # a late reply to an earlier run's message is not this run's answer
        parent = getattr(r.envelope.body if r.envelope else None, "doc_parent", None)
        return from_edms(r) and (parent is None or not parent.parmsg_id or parent.parmsg_id in ctx.factory.sent)

    found = await _wait_counting_down(ctx, from_this_run, ctx.timing.document)
    found = found or next(iter(ctx.counterpart.find(from_edms)), None)  # only a stray one: say what is wrong
    if found is None:
        refused = await ctx.route.refusals(ctx.code, since)
        if refused:
            raise CaseFailed(f"the hub refused what {ctx.code} sent: {'; '.join(refused)} (see `smdo journal show "
                             f"MSG_ID`); fix that and send a document to {TEST_COUNTERPART_CODE} again")
        raise CaseFailed(f"no document from {ctx.code} reached {TEST_COUNTERPART_CODE} within "
                         f"{ctx.timing.document:.0f} s: send one (for instance reply to msg {asked.msg_id}) "
                         f"addressed to {TEST_COUNTERPART_CODE}")
    ctx.edms_document = found
    wrong = []
    if found.problems:
        wrong.append(f"it fails the checks: {describe(found.problems)}")
    elif not ctx.signed_by_edms(found):
        wrong.append("it is not signed with the EDMS's registered certificate")
    header = found.header
    if header.receiver_ids != (TEST_COUNTERPART_CODE,):
        wrong.append(f"it is addressed to {', '.join(header.receiver_ids)}, not only {TEST_COUNTERPART_CODE}")
    if ctx.sys_id and header.sender_sys_id.lower() != ctx.sys_id.lower():
        wrong.append(f"Sender@sys_id is {header.sender_sys_id}, not the registered EDMS GUID {ctx.sys_id}")
    body = found.envelope.body if found.envelope else None
    parent = getattr(body, "doc_parent", None)
    if parent is not None and parent.parmsg_id and parent.parmsg_id not in ctx.factory.sent:
        wrong.append(f"it replies to msg {parent.parmsg_id} (DocParent@parmsg_id), which the suite never sent")
    if wrong:
        raise CaseFailed(f"msg {header.msg_id} from {ctx.code}: " + "; ".join(wrong))
    # Answer like any counterpart would, so the EDMS sees its document registered.
    try:
        await ctx.route.send(ctx.factory.registered(header.msg_id, ctx.code))
    except RouteError as exc:
        ctx.say(f"    (the suite's own registration acknowledgement did not go out: {exc})")
    kind = {p.DOCUMENT: "document", p.REPLY: "reply", p.SUPPLEMENT: "supplement",
            p.REPLY_SUPPLEMENT: "reply supplement"}[header.msg_type]
    return f"{kind} {header.msg_id}: schema-valid, signed with the registered certificate, addressed to " \
           f"{TEST_COUNTERPART_CODE}"




@case("reply", "A reply (DocParent) is registered linked to its parent")
async def reply(ctx: Context) -> str:
    original = ctx.edms_document.envelope if ctx.edms_document and ctx.edms_document.envelope else None
    if original is not None and isinstance(original.body, (p.Document, p.Task)):
        parent = parent_of(original)
    else:  # the EDMS sent nothing to answer: reply to a document of its that the suite makes up
        parent = p.DocParent(delivery_type=1, idnumber=f"{ctx.code}-OUT-1", parorg_id=ctx.code,
                             reg_number=p.RegNumber("OUT-1", date.today()))
    out = ctx.factory.reply(parent, "Conformance: reply")
    await ctx.route.send(out)
    return await expect_registered(ctx, out, "reply (msg_type 3 with DocParent)")


@case("task", "A task (Task zone) is registered with its fields")
async def task(ctx: Context) -> str:
    out = ctx.factory.task(referred_to(_sent_document(ctx).envelope),
                           "Conformance: подтвердите получение письма (confirm receipt of the letter).")
    await ctx.route.send(out)
    return await expect_registered(ctx, out, "task")


@case("supplement", "A supplement (AddDocuments) is registered with its files and reference")
async def supplement(ctx: Context) -> str:
    out = ctx.factory.supplement(referred_to(_sent_document(ctx).envelope), "Conformance: annex to the letter")
    await ctx.route.send(out)
    return await expect_registered(ctx, out, "supplement (msg_type 2)")


@case("content-fidelity", "Non-ASCII titles and file names and every file byte are registered as sent")
async def content_fidelity(ctx: Context) -> str:
    out = ctx.factory.non_ascii_document()
    await ctx.route.send(out)
    if ctx.adapter is None:
        raise CaseSkipped(NO_ADAPTER)
    return await expect_registered(ctx, out, "document with Cyrillic and other non-ASCII text")


@case("durability", "A document acknowledged just before a restart is still there, registered once")
async def durability(ctx: Context) -> str:
    if ctx.restart is None:
        raise CaseSkipped("needs --restart-hook CMD: a command that restarts the EDMS (a real process kill)")
    adapter = need_adapter(ctx)
    before = await adapter.boot_id()
    if before is None:
        raise CaseFailed(f"the test adapter at {adapter.url}/status gives no boot_id, so a restart cannot be seen")
    out = ctx.factory.document("Conformance: survives a restart")
    await ctx.route.send(out)
    got = await ctx.route.confirmation(out.msg_id, ctx.timing.patience)
    if not got.ok:
        raise CaseFailed(f"no valid delivery acknowledgement of msg {out.msg_id}, so nothing to restart after: "
                         f"{got.reason}")
    await ctx.restart()  # right after the delivery acknowledgement
    deadline = time.monotonic() + ctx.timing.restart
    while (now := await adapter.boot_id()) in (None, before):
        if time.monotonic() >= deadline:
            raise CaseFailed(f"the EDMS did not come back with a new boot_id within {ctx.timing.restart:.0f} s "
                             "of the restart hook: the hook must restart it (and /status must answer again)")
        await asyncio.sleep(0.2)
    card = await card_now(ctx, out.msg_id)
    for _ in range(int(ctx.timing.patience / 0.2)):
        if card is not None:
            break
        await asyncio.sleep(0.2)
        card = await card_now(ctx, out.msg_id)
    if card is None:
        raise CaseFailed(f"the EDMS acknowledged msg {out.msg_id} as delivered (101), was restarted, and has no "
                         "trace of it: store the document durably (committed, on disk) before answering 101; the "
                         "sender will not send it again")
    if card.get("status") != "registered":
        card = await registered_card(ctx, out, "document acknowledged before the restart")
    numbers = {r.acknowledgement.inc_number.number for r in ctx.counterpart.find(registration_of(out.msg_id, ctx.code))
               if r.acknowledgement.inc_number is not None}
    if int(card.get("registrations", 1)) > 1 or len(numbers) > 1:
        raise CaseFailed(f"msg {out.msg_id} was registered more than once across the restart (numbers "
                         f"{sorted(numbers) or card.get('registrations')}): keep one registration per msg_id")
    return f"still registered as {card.get('incoming_number')} after the restart (boot {before[:8]} -> {now[:8]})"


def _sent_document(ctx: Context) -> Outgoing:
    """The suite's first document (what tasks and supplements refer to); a new one if it was never sent."""
    if ctx.first is None:
        ctx.first = ctx.factory.document("Conformance: valid document")
    return ctx.first


@case("large-attachment", "A document with a 20 MB attachment (a ~28 MB packet) is handled")
async def large_attachment(ctx: Context) -> str:
    out = ctx.factory.large_document(ctx.timing.large_bytes)
    await ctx.route.send(out)
    got = await ctx.route.confirmation(out.msg_id, ctx.timing.large_wait)
    if not got.ok:
        raise CaseFailed(f"the {len(out.raw) // (1024 * 1024)} MB packet was not delivered: {got.reason}. Accept "
                         "packets up to the hub's size limit (30 MB)")
    text = await expect_registered(ctx, out, f"document with a {ctx.timing.large_bytes / (1024 * 1024):.0f} MB "
                                              "attachment", ctx.timing.large_wait)
    return f"{len(out.raw) / 1e6:.1f} MB packet delivered in {got.seconds:.1f} s and registered: {text}"


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


NO_PARTS_BY_MAIL = ("not applicable: {code} receives by e-mail (the classic mail route), which carries files as "
                    "the mail's own attachments; files beside the envelope (parts) reach HTTPS push and mailbox "
                    "receivers only")


PART_RULE = ("Download every part the envelope names (GET /smdo/v1/parts/{sha256} from the hub, Range to resume), "
             "check its SHA-256 is the one in Data@referenceid, and only then answer 101")


@case("large-part", "A document with a large file beside the envelope (a part) is delivered intact and registered")
async def large_part(ctx: Context) -> str:
    if ctx.receives_by_mail:
        return NO_PARTS_BY_MAIL.format(code=ctx.code)
    out = ctx.factory.part_document(ctx.timing.part_bytes)
    what = f"document with a {_mb(ctx.timing.part_bytes)} file beside the envelope"
    started = time.monotonic()
    for part in out.parts:
        await ctx.route.upload_part(part)
    uploaded = time.monotonic() - started
    await ctx.route.send(out)
    got = await ctx.route.confirmation(out.msg_id, ctx.timing.part_wait)
    if not got.ok:
        raise CaseFailed(f"the {what} (msg {out.msg_id}, part sha256-{out.parts[0].digest}) was not delivered: "
                         f"{got.reason}. {PART_RULE}")
    text = await expect_registered(ctx, out, what, ctx.timing.part_wait)
    return (f"{_mb(out.parts[0].size)} uploaded in {uploaded:.1f} s, delivered in {got.seconds:.1f} s and "
            f"registered: {text}")


@case("tampered-part", "A file beside the envelope changed after its official signed it gets 'signature not "
                       "trusted'", REGISTRATION_ACKS)
async def tampered_part(ctx: Context) -> str:
    if ctx.receives_by_mail:
        return NO_PARTS_BY_MAIL.format(code=ctx.code)
    out = ctx.factory.swapped_part_document(ctx.timing.tampered_part_bytes)
    for part in out.parts:
        await ctx.route.upload_part(part)
    return await expect_untrusted(
        ctx, out, f"correctly signed, with a {_mb(out.parts[0].size)} file beside the envelope whose bytes were "
                  "changed after its official signed them (its DocTransfer/Signature is over the bytes before)",
        "Verify each DocTransfer/Signature over the whole downloaded part, as over an inline file; answer 3 "
        "naming the file when one fails", checked=True)


@case("part-digest-mismatch", "A part whose bytes are not the digest the envelope names is not registered")
async def part_digest_mismatch(ctx: Context) -> str:
    if ctx.receives_by_mail:
        return NO_PARTS_BY_MAIL.format(code=ctx.code)
    named = ctx.factory.part_document(ctx.timing.tampered_part_bytes)
    [part] = named.parts
    other = part.swapped(part.size // 3)  # served under the first one's digest
    if ctx.route.checks_parts:
        # Through the hub the EDMS cannot meet such a part: the hub hashes every part as it arrives.
        try:
            await ctx.route.upload_part(other, named=part.digest)
        except PartRefused as exc:
            if exc.status == 400:
                return ("through the hub an EDMS never receives such a part: the hub refused the changed bytes "
                        f"itself ({exc}); run with --endpoint to test the EDMS's own check")
            raise
        raise CaseFailed(f"the hub took bytes whose SHA-256 is {other.digest} as part {part.digest}")
    await ctx.route.upload_part(other, named=part.digest)
    await ctx.route.send(named)
    got = await ctx.route.confirmation(named.msg_id, ctx.timing.patience)
    found = await ctx.counterpart.wait_for(registration_of(named.msg_id, ctx.code),
                                           ctx.timing.patience if got.ok else ctx.timing.repeat_window)
    card = await card_now(ctx, named.msg_id) if ctx.adapter is not None else None
    sent = (f"sent msg {named.msg_id} naming part sha256-{part.digest}, and served other bytes for it "
            f"(SHA-256 {other.digest})")
    code = found.acknowledgement.results[0].errorcode if found is not None and found.acknowledgement else None
    if code == RegistrationResult.REGISTERED or (card is not None and card.get("status") == "registered"):
        raise CaseFailed(f"{sent}: the EDMS registered it. {PART_RULE}")
    if got.ok and code is None:
        raise CaseFailed(f"{sent}: the EDMS confirmed its delivery (101) and reported nothing within "
                         f"{ctx.timing.patience:.0f} s. {PART_RULE}")
    if code is not None:
        return f"answered {result_name(code)}: {found.acknowledgement.results[0].text}"
    return f"did not take it: {got.reason}"
