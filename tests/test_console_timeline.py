"""Where a receiver's delivery stands, in words, as the console's transaction page shows it."""
from router.console.timeline import statuses
from smdo.journal.records import DeliveryView, TransactionView

T0 = 1_800_000_000.0


def _view(delivery: DeliveryView) -> TransactionView:
    return TransactionView(msg_id="m-1", outcome="accepted", sender="ORG-A", receivers=(delivery.receiver,),
                           msg_type=1, digest="", size=1, received_at=T0, codes=(100,), origin="",
                           ack_for=None, deliveries=(delivery,))


def _entries(*states: tuple[str, float, str]) -> list[dict]:
    return [{"kind": "state", "receiver": "ORG-C", "state": s, "at": at, "detail": detail, "attempt": n + 1}
            for n, (s, at, detail) in enumerate(states)]


def test_a_retry_in_flight_still_says_the_endpoint_is_failing_since_the_first_failure():
    entries = _entries(("forwarding", T0 + 1, ""), ("retry-wait", T0 + 2, "HTTP 503 from ORG-C"),
                       ("forwarding", T0 + 12, ""), ("retry-wait", T0 + 13, "timeout after 30 s"),
                       ("forwarding", T0 + 40, ""))
    # As the journal holds it: a claim keeps the detail of the failure before it.
    delivery = DeliveryView("ORG-C", "push", "forwarding", 3, T0 + 40, T0 + 40, "timeout after 30 s")
    [status] = statuses(_view(delivery), entries, deadline=T0 + 86400, now=T0 + 41)
    assert "failing since 2027-01-15 08:00:02" in status.now  # the first failure, not the latest
    assert "(timeout after 30 s)" in status.now and "attempt 3 under way" in status.now
    assert status.who_acts == "ORG-C's EDMS administrators"


def test_a_first_attempt_or_one_after_a_success_is_being_delivered():
    delivery = DeliveryView("ORG-C", "push", "forwarding", 1, T0 + 1, None, "")
    [first] = statuses(_view(delivery), _entries(("forwarding", T0 + 1, "")), deadline=T0 + 86400, now=T0 + 2)
    assert first.now == "being delivered by the hub" and first.who_acts == ""
    recovered = _entries(("retry-wait", T0 + 2, "HTTP 503"), ("delivered", T0 + 5, "HTTP 200"),
                         ("forwarding", T0 + 9, ""))
    [again] = statuses(_view(delivery), recovered, deadline=T0 + 86400, now=T0 + 10)
    assert again.now == "being delivered by the hub"
