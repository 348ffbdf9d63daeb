"""The subscriber registry: lifecycle, certificates, history, snapshots and authorisation."""
from __future__ import annotations

import sqlite3

import pytest

from smdo.errors import ErrorCode
from smdo.registry import (
    TEST_COUNTERPART_CODE, TRANSITIONS, DuplicateSubscriber, IllegalTransition, InvalidField, Registry,
    RegistryError, SubscriberStatus as S, UnknownSubscriber, fingerprint, registry_store,
)
from smdo.unp import InvalidUnp, make_unp, validate_unp

from registry_fixtures import UNP_A, UNP_B, quick_certificate


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path) -> str:
    """The registry's store contract runs on SQLite (a file) and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def registry(registry_url):
    with registry_store(registry_url) as reg:
        yield reg


def add(registry, code, status=S.REGISTERED, **kw):
    cert = kw.pop("cert", None) or quick_certificate(code)
    kw.setdefault("pull", "push_url" not in kw)
    return registry.add_subscriber(code, name=f"Org {code}", unp=kw.pop("unp", UNP_A), certificates=[cert],
                                   status=status, actor="tester", **kw), cert


# -- UNP -----------------------------------------------------------------------------------

def test_unp_published_example_is_valid_and_one_changed_digit_is_not():
    assert validate_unp(" 200988541 ") == "200988541"
    with pytest.raises(InvalidUnp, match="check digit is 2, but the first 8 digits give 1"):
        validate_unp("200988542")


@pytest.mark.parametrize("value, rule", [
    ("12345678", "exactly 9 digits"),
    ("1234567890", "exactly 9 digits"),
    ("MA1953684", "only digits"),
    ("800000000", "region code"),
])
def test_unp_errors_name_the_rule(value, rule):
    with pytest.raises(InvalidUnp, match=rule):
        validate_unp(value)


def test_unp_with_remainder_ten_is_never_valid():
    # Find eight digits whose weighted sum leaves 10: no check digit can complete them.
    first = next(f"1{n:07d}" for n in range(1000) if _weighted(f"1{n:07d}") % 11 == 10)
    for last in "0123456789":
        with pytest.raises(InvalidUnp, match="remainder 10"):
            validate_unp(first + last)
    with pytest.raises(InvalidUnp):
        make_unp(first)


def _weighted(digits):
    return sum(w * int(d) for w, d in zip((29, 23, 19, 17, 13, 7, 5, 3), digits))


# -- adding and reading --------------------------------------------------------------------

def test_add_stores_every_field_and_survives_reopening(registry_url):
    cert = quick_certificate("ORG-1")
    sys_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    with registry_store(registry_url) as reg:
        reg.add_subscriber("ORG-1", name="Ministry One", unp=UNP_B, certificates=[cert],
                           push_url="https://edms.one.example:8443/smdo", edms_product="Rekord",
                           edms_version="5.2", sys_id=sys_id, contact="ops@one.example", actor="alice", reason="new")
    with registry_store(registry_url) as reg:
        sub = reg.require("ORG-1")
        assert (sub.name, sub.unp, sub.status, sub.delivery_mode, sub.push_url) == (
            "Ministry One", UNP_B, S.REGISTERED, "push", "https://edms.one.example:8443/smdo")
        assert (sub.edms_product, sub.edms_version, sub.sys_id, sub.contact) == ("Rekord", "5.2", sys_id, "ops@one.example")
        assert sub.cert_fingerprints == {fingerprint(cert)}
        [bound] = reg.certificates("ORG-1")
        assert bound.certificate() == cert and bound.not_after > bound.not_before
        [entry] = reg.history("ORG-1")
        assert (entry.actor, entry.action, entry.to_status, entry.reason) == ("alice", "add", S.REGISTERED, "new")


@pytest.mark.parametrize("kwargs, message", [
    ({"unp": "200988542"}, "check digit"),
    ({"push_url": "ftp://x.example/in", "pull": False}, "http:// or https://"),
    ({"push_url": "https:///nohost", "pull": False}, "with a host"),
    ({"push_url": "https://x.example/in", "pull": True}, "not both"),
    ({"pull": False}, "delivery mode is required"),
    ({"sys_id": "not-a-guid"}, "must be a GUID"),
])
def test_add_refuses_bad_fields_and_writes_nothing(registry, kwargs, message):
    with pytest.raises(InvalidField, match=message):
        add(registry, "ORG-1", **kwargs)
    assert registry.get("ORG-1") is None and registry.subscribers() == []


def test_add_refuses_a_bad_code_and_a_duplicate(registry):
    with pytest.raises(InvalidField, match="subscriber code"):
        add(registry, "bad code!")
    add(registry, "ORG-1")
    with pytest.raises(DuplicateSubscriber, match="already registered"):
        add(registry, "ORG-1")


def test_a_certificate_speaks_for_one_subscriber_and_a_failed_add_leaves_nothing(registry):
    _, cert = add(registry, "ORG-1")
    version = registry.data_version()
    with pytest.raises(InvalidField, match="already bound to subscriber ORG-1"):
        add(registry, "ORG-2", cert=cert)
    assert registry.get("ORG-2") is None
    assert registry.history("ORG-1")[-1].action == "add"
    assert registry.data_version() == version  # the rolled-back change is invisible
    with pytest.raises(UnknownSubscriber):
        registry.history("ORG-2")


def test_update_records_what_changed(registry):
    add(registry, "ORG-1")
    sub = registry.update_subscriber("ORG-1", actor="bob", reason="moved", push_url="https://new.example/in",
                                     contact="x@y")
    assert (sub.delivery_mode, sub.push_url, sub.contact) == ("push", "https://new.example/in", "x@y")
    entry = registry.history("ORG-1")[-1]
    assert entry.action == "update" and entry.actor == "bob"
    assert entry.details["push_url"] == {"from": None, "to": "https://new.example/in"}
    with pytest.raises(InvalidField, match="check digit"):
        registry.update_subscriber("ORG-1", actor="bob", unp="200988542")
    assert registry.require("ORG-1").unp == UNP_A
    with pytest.raises(UnknownSubscriber):
        registry.update_subscriber("NOPE", actor="bob", contact="z")


# -- lifecycle -----------------------------------------------------------------------------

def test_transition_table_is_enforced_everywhere(tmp_path):
    # Every (from, to) pair: legal ones (other than certification) succeed, the rest name from/to.
    for old in S:
        for new in S:
            if old is new:
                continue
            with Registry(tmp_path / f"{old.value}-{new.value}.db") as reg:
                add(reg, "ORG", status=old)
                if new in TRANSITIONS[old] and new is not S.CERTIFIED and not (old is S.CERTIFIED and new is S.ACTIVE):
                    assert reg.set_status("ORG", new, actor="t", reason="r").status is new
                elif new not in TRANSITIONS[old]:
                    with pytest.raises(IllegalTransition, match=f"from {old.value} to {new.value}"):
                        reg.set_status("ORG", new, actor="t", reason="r")
                    assert reg.require("ORG").status is old


def test_certification_comes_only_from_a_passing_conclusion_and_gates_activation(registry):
    add(registry, "ORG-1")
    registry.set_status("ORG-1", S.TESTING, actor="t", reason="start tests")
    with pytest.raises(RegistryError, match="only a passing conformance run"):
        registry.set_status("ORG-1", S.CERTIFIED, actor="t", reason="")
    failed = registry.record_conclusion("ORG-1", suite_version="1.0", passed=False, summary={"failed": 2},
                                        document=b"<c/>", actor="suite")
    assert not failed.passed and registry.require("ORG-1").status is S.TESTING
    registry.record_conclusion("ORG-1", suite_version="1.0", passed=True, summary={"failed": 0},
                               document=b"<c/>", actor="suite")
    assert registry.require("ORG-1").status is S.CERTIFIED
    # A later failing re-run withdraws the right to activate.
    registry.set_status("ORG-1", S.TESTING, actor="t", reason="retest")
    registry.record_conclusion("ORG-1", suite_version="1.0", passed=True, summary={}, document=b"<c/>", actor="s")
    registry.record_conclusion("ORG-1", suite_version="1.1", passed=False, summary={}, document=b"<c/>", actor="s")
    with pytest.raises(RegistryError, match="without a passing conformance conclusion"):
        registry.set_status("ORG-1", S.ACTIVE, actor="t", reason="go")
    registry.record_conclusion("ORG-1", suite_version="1.1", passed=True, summary={}, document=b"<c/>", actor="s")
    assert registry.set_status("ORG-1", S.ACTIVE, actor="admin", reason="go live").status is S.ACTIVE
    statuses = [(e.from_status, e.to_status) for e in registry.history("ORG-1") if e.action == "status"]
    assert statuses == [(S.REGISTERED, S.TESTING), (S.TESTING, S.CERTIFIED), (S.CERTIFIED, S.TESTING),
                        (S.TESTING, S.CERTIFIED), (S.CERTIFIED, S.ACTIVE)]


def test_suspend_resume_revoke(registry):
    add(registry, "ORG-1", status=S.ACTIVE)
    registry.set_status("ORG-1", S.SUSPENDED, actor="a", reason="unpaid")
    registry.set_status("ORG-1", S.ACTIVE, actor="a", reason="paid")
    registry.set_status("ORG-1", S.REVOKED, actor="a", reason="closed")
    with pytest.raises(IllegalTransition, match="final status"):
        registry.set_status("ORG-1", S.ACTIVE, actor="a", reason="oops")
    assert [e.reason for e in registry.history("ORG-1")][1:] == ["unpaid", "paid", "closed"]


# -- certificates --------------------------------------------------------------------------

def test_certificates_are_added_and_removed_but_never_the_last(registry):
    _, first = add(registry, "ORG-1")
    second = quick_certificate("ORG-1 new key")
    fp2 = registry.add_certificate("ORG-1", second, actor="a", reason="key rollover")
    assert registry.require("ORG-1").cert_fingerprints == {fingerprint(first), fp2}
    registry.remove_certificate("ORG-1", fingerprint(first).upper(), actor="a", reason="old key retired")
    assert registry.require("ORG-1").cert_fingerprints == {fp2}
    with pytest.raises(RegistryError, match="only certificate"):
        registry.remove_certificate("ORG-1", fp2, actor="a")
    with pytest.raises(RegistryError, match="no certificate with fingerprint"):
        registry.remove_certificate("ORG-1", "ab" * 32, actor="a")
    assert [e.action for e in registry.history("ORG-1")] == ["add", "cert-add", "cert-remove"]


# -- snapshots and data_version ------------------------------------------------------------

def test_data_version_changes_when_another_process_commits(registry_url, tmp_path):
    with registry_store(registry_url) as hub, registry_store(registry_url) as admin:
        before = hub.data_version()
        snap = hub.snapshot()
        add(admin, "ORG-1")
        assert hub.data_version() != before
        assert snap.get("ORG-1") is None  # the old snapshot is immutable
        fresh = hub.snapshot()
        assert fresh.get("ORG-1").status is S.REGISTERED and fresh.version == hub.data_version()
    if registry_url.startswith("sqlite://"):
        # WAL mode is on for the file, so the hub's reads never block the CLI's writes.
        assert sqlite3.connect(tmp_path / "registry.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_changes_since_reads_only_the_changed_subscribers(registry_url):
    with registry_store(registry_url) as hub, registry_store(registry_url) as admin:
        for code in ("ORG-1", "ORG-2", "ORG-3"):
            add(admin, code)
        snap = hub.snapshot()
        read = hub.rows_read
        same = hub.changes_since(snap)
        assert hub.rows_read == read and same.version == snap.version  # nothing changed: nothing read
        admin.set_status("ORG-2", S.TESTING, actor="a", reason="tests")
        new_cert = quick_certificate("ORG-3 new key")
        admin.add_certificate("ORG-3", new_cert, actor="a")
        updated = hub.changes_since(snap)
        assert hub.rows_read - read == 2
        full = hub.snapshot()
        assert updated.version == full.version == hub.data_version()
        assert updated.subscribers() == full.subscribers()
        assert [c.fingerprint for c in updated.certificates("ORG-3")] == [c.fingerprint for c in full.certificates("ORG-3")]
        assert fingerprint(new_cert) in updated.get("ORG-3").cert_fingerprints
        assert updated.get("ORG-2").status is S.TESTING and snap.get("ORG-2").status is S.REGISTERED


# -- authorisation -------------------------------------------------------------------------

@pytest.fixture
def network(registry):
    certs = {}
    for code, status in [("A", S.ACTIVE), ("B", S.ACTIVE), ("T", S.TESTING), ("C", S.CERTIFIED),
                         ("SUS", S.SUSPENDED), ("REV", S.REVOKED), ("REG", S.REGISTERED),
                         (TEST_COUNTERPART_CODE, S.ACTIVE)]:
        certs[code] = fingerprint(add(registry, code, status=status)[1])
    return registry.snapshot(), certs


def codes(problems):
    return sorted(p.code for p in problems)


def test_active_subscribers_exchange(network):
    snap, fp = network
    assert snap.authorise(sender_id="A", signer_fingerprint=fp["A"], receiver_ids=["B"]) == []


def test_signer_must_be_bound_to_the_sender(network):
    snap, fp = network
    [problem] = snap.authorise(sender_id="A", signer_fingerprint=fp["B"], receiver_ids=["B"])
    assert problem.code == ErrorCode.CERTIFICATE_NOT_TRUSTED and "not bound to sender A" in problem.message
    assert codes(snap.authorise(sender_id="GHOST", signer_fingerprint=fp["A"], receiver_ids=["B"])) == [-23]


@pytest.mark.parametrize("blocked", ["SUS", "REV", "REG"])
def test_blocked_senders_and_receivers_get_104(network, blocked):
    snap, fp = network
    [problem] = snap.authorise(sender_id=blocked, signer_fingerprint=fp[blocked], receiver_ids=["A"])
    assert problem.code == ErrorCode.ADDRESSEE_BLOCKED and f"sender {blocked}" in problem.message
    [problem] = snap.authorise(sender_id="A", signer_fingerprint=fp["A"], receiver_ids=[blocked])
    assert problem.code == 104 and f"receiver {blocked}" in problem.message


def test_unknown_receiver_gets_10_and_each_receiver_is_checked(network):
    snap, fp = network
    problems = snap.authorise(sender_id="A", signer_fingerprint=fp["A"], receiver_ids=["B", "NOBODY", "SUS"])
    assert codes(problems) == [10, 104]


@pytest.mark.parametrize("under_test", ["T", "C"])
def test_a_subscriber_under_test_talks_only_to_the_test_counterpart(network, under_test):
    snap, fp = network
    assert snap.authorise(sender_id=under_test, signer_fingerprint=fp[under_test],
                          receiver_ids=[TEST_COUNTERPART_CODE]) == []
    assert snap.authorise(sender_id=TEST_COUNTERPART_CODE, signer_fingerprint=fp[TEST_COUNTERPART_CODE],
                          receiver_ids=[under_test]) == []
    assert codes(snap.authorise(sender_id=under_test, signer_fingerprint=fp[under_test], receiver_ids=["A"])) == [104]
    assert codes(snap.authorise(sender_id="A", signer_fingerprint=fp["A"], receiver_ids=[under_test])) == [104]


def test_ack_dialect_profile_and_mail_address_are_registered_and_checked(tmp_path) -> None:
    from smdo.registry import InvalidField

    with Registry(tmp_path / "registry.db") as registry:
        sub = registry.add_subscriber("LAIS", name="ЛАИС", unp="200988541", certificates=[quick_certificate("X")],
                                      pull=True, ack_dialect="router", profile="classic",
                                      mail_address="SMDO@Lais.example.by")
        assert (sub.ack_dialect, sub.profile, sub.mail_address) == ("router", "classic", "smdo@lais.example.by")
        assert registry.snapshot().get("LAIS").ack_dialect == "router"
        with pytest.raises(InvalidField, match="ack dialect"):
            registry.update_subscriber("LAIS", actor="t", ack_dialect="smtp")
        with pytest.raises(InvalidField, match="mail address"):
            registry.update_subscriber("LAIS", actor="t", mail_address="not an address")
        assert registry.update_subscriber("LAIS", actor="t", ack_dialect="hub").ack_dialect == "hub"


def test_a_registry_made_before_the_dialect_columns_is_migrated(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "registry.db"
    with Registry(path) as registry:
        registry.add_subscriber("OLD", name="Old", unp="200988541", certificates=[quick_certificate("X")], pull=True)
    with sqlite3.connect(path) as db:  # as the first release left it: version 1, without the added columns
        for column in ("ack_dialect", "profile", "mail_address"):
            db.execute(f"ALTER TABLE subscribers DROP COLUMN {column}")
        db.execute("PRAGMA user_version=1")
    with Registry(path) as registry:
        old = registry.require("OLD")
        assert (old.ack_dialect, old.profile, old.mail_address) == ("hub", "envelope", None)
    with Registry(path) as registry:  # opening again changes nothing
        assert registry.require("OLD").profile == "envelope"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
