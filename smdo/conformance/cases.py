"""The named conformance cases, in the order they run.

Each case sends real packets to the EDMS under test and checks what comes back; a failure says
what the EDMS did and what it should do instead. Two facts gate the rest: whether the EDMS's
acknowledgements are validly signed (case delivery-ack), and whether it sends registration
acknowledgements at all (case registration-ack). When one is missing, the cases that depend on
it are skipped with that reason rather than failing too, so a fault shows up in one place.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import date
from dataclasses import dataclass, field

from smdo import packet as p
from smdo.conformance.counterpart import Counterpart, Received, describe, registration_of
from smdo.conformance.packets import Outgoing, PacketFactory, parent_of, referred_to
from smdo.conformance.routes import Route, RouteError
from smdo.errors import RegistrationResult
from smdo.registry import TEST_COUNTERPART_CODE

SIGNED_ACKS = "signed-acks"
REGISTRATION_ACKS = "registration-acks"
# fact -> (the case that establishes it, what it means)
FACTS = {
    SIGNED_ACKS: ("delivery-ack", "valid signed acknowledgements from the EDMS"),
    REGISTRATION_ACKS: ("registration-ack", "registration acknowledgements from the EDMS"),
}
RESULT_NAMES = {0: "registered", 1: "not registrable", 2: "refused", 3: "signature not trusted"}


@dataclass(frozen=True)
class Timing:
    delivery: float = 1.0  # a delivery acknowledgement must come within this (the "in time" of the spec)
    registration: float = 10.0  # and the registration acknowledgement within this
    patience: float = 30.0  # how long other cases wait for an answer before calling it missing
    document: float = 60.0  # how long the suite waits for the EDMS's own document
    repeat_window: float = 2.0  # after a repeat was answered, how long to watch for a second registration
    large_bytes: int = 20 * 1024 * 1024
    large_wait: float = 120.0


class CaseFailed(Exception):
    """The EDMS did not do what the case requires; the message says what to fix."""


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
    say: Callable[[str], None] = lambda line: None
    facts: dict[str, bool] = field(default_factory=dict)
    first: Outgoing | None = None
    first_sent_at: float = 0.0
    first_registration: Received | None = None
    edms_document: Received | None = None


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    needs: tuple[str, ...]
    run: Callable[[Context], Awaitable[str]]  # returns what passed; raises CaseFailed


CASES: list[Case] = []


def case(name: str, title: str, *needs: str) -> Callable[[Callable[[Context], Awaitable[str]]], Callable[[Context], Awaitable[str]]]:
    def register(fn: Callable[[Context], Awaitable[str]]) -> Callable[[Context], Awaitable[str]]:
        CASES.append(Case(name, title, tuple(needs), fn))
        return fn
    return register


# -- helpers ----------------------------------------------------------------------------------

async def registration(ctx: Context, out: Outgoing, wait: float) -> tuple[Received, int, str]:
    """The EDMS's registration acknowledgement of `out`: (packet, result code, text). Fails if none."""
    found = await ctx.counterpart.wait_for(registration_of(out.msg_id, ctx.code), wait)
    if found is None:
        raise CaseFailed(f"no registration acknowledgement (ack_type 2) of msg {out.msg_id} arrived within "
                         f"{wait:.0f} s: every delivered document must be answered with one, addressed to "
                         f"{TEST_COUNTERPART_CODE}")
    if found.problems:
        raise CaseFailed(f"the registration acknowledgement fails the checks: {describe(found.problems)}")
    if found.signer_fingerprint not in ctx.fingerprints:
        raise CaseFailed("the registration acknowledgement is not signed with the EDMS's registered certificate")
    result = found.acknowledgement.results[0]
    return found, result.errorcode, result.text


def result_name(code: int) -> str:
    return f"{code} ({RESULT_NAMES.get(code, 'unknown result')})"


async def expect_registered(ctx: Context, out: Outgoing, what: str, wait: float | None = None) -> str:
    _, code, text = await registration(ctx, out, wait or ctx.timing.patience)
    if code != RegistrationResult.REGISTERED:
        raise CaseFailed(f"the EDMS answered {what} with registration result {result_name(code)}: {text!r}; a "
                         f"well-formed, correctly signed {what} must be registered (0)")
    return text


# -- the cases --------------------------------------------------------------------------------

@case("delivery-ack", "A valid document gets a signed delivery acknowledgement in time")
async def delivery_ack(ctx: Context) -> str:
    ctx.first = ctx.factory.document("Conformance: valid document")
    ctx.first_sent_at = time.monotonic()
    await ctx.route.send(ctx.first)
    got = await ctx.route.confirmation(ctx.first.msg_id, ctx.timing.patience)
    ctx.facts[SIGNED_ACKS] = got.ok
    if not got.ok:
        raise CaseFailed(f"no valid delivery acknowledgement: {got.reason}. The EDMS must answer each delivered "
                         "packet with an acknowledgement (ack_type 1, code 101) signed with its registered "
                         "certificate's key")
    if got.seconds is not None and got.seconds > ctx.timing.delivery:
        raise CaseFailed(f"the delivery acknowledgement came after {got.seconds:.2f} s; the limit is "
                         f"{ctx.timing.delivery:.1f} s. Answer the delivery as soon as the packet is stored; "
                         "register it afterwards")
    return f"acknowledged in {got.seconds:.2f} s (limit {ctx.timing.delivery:.1f} s)"


@case("registration-ack", "The valid document gets a registration acknowledgement in time", SIGNED_ACKS)
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


@case("incoming-number", "A registration acknowledgement carries the incoming number", REGISTRATION_ACKS)
async def incoming_number(ctx: Context) -> str:
    found = ctx.first_registration
    if found is None:
        raise CaseFailed("the valid document was not registered, so there is no number to check")
    inc = found.acknowledgement.inc_number
    if inc is None or not inc.number.strip():
        raise CaseFailed("the registration acknowledgement has no IncNumber: a 'registered' answer must carry "
                         "the incoming registration number and date the EDMS assigned")
    return f"incoming number {inc.number} of {inc.regdate.isoformat()}"


@case("tampered-signature", "A tampered signature gets 'signature not trusted'", REGISTRATION_ACKS)
async def tampered_signature(ctx: Context) -> str:
    out = ctx.factory.tampered("Conformance: tampered signature")
    await ctx.route.send_unchecked(out)
    _, code, text = await registration(ctx, out, ctx.timing.patience)
    if code != RegistrationResult.SIGNATURE_NOT_TRUSTED:
        harm = " It registered a document whose signature does not verify." if code == 0 else ""
        raise CaseFailed(f"the document was changed after signing, yet the EDMS answered {result_name(code)}: "
                         f"{text!r}.{harm} Verify every incoming signature and answer 3 when it fails")
    return f"answered 3: {text}"


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


@case("outgoing-document", "The EDMS's own document is schema-valid, signed and correctly addressed", SIGNED_ACKS)
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
    elif found.signer_fingerprint not in ctx.fingerprints:
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


@case("reply", "A reply (DocParent) is understood and registered", REGISTRATION_ACKS)
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


@case("task", "A task (Task zone) is understood and registered", REGISTRATION_ACKS)
async def task(ctx: Context) -> str:
    assert ctx.first is not None
    out = ctx.factory.task(referred_to(ctx.first.envelope), "Conformance: confirm receipt of the letter.")
    await ctx.route.send(out)
    return await expect_registered(ctx, out, "task")


@case("supplement", "A supplement (AddDocuments) is understood and registered", REGISTRATION_ACKS)
async def supplement(ctx: Context) -> str:
    assert ctx.first is not None
    out = ctx.factory.supplement(referred_to(ctx.first.envelope), "Conformance: annex to the letter")
    await ctx.route.send(out)
    return await expect_registered(ctx, out, "supplement (msg_type 2)")


@case("large-attachment", "A document with a 20 MB attachment (a ~28 MB packet) is handled", REGISTRATION_ACKS)
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
