"""The operators' console in a real headless Chromium: log in with the operator's certificate, find
a document, read its timeline, see a failing receiver, suspend a subscriber, download statistics.
Screenshots of each page go to var/screenshots/ (console_fixtures.SCREENSHOTS)."""
from __future__ import annotations

import csv
import io
import re

import pytest

from smdo.errors import RegistrationResult

from console_fixtures import SCREENSHOTS, Browsing
from router_fixtures import (
    delivery_state, document, eventually, hub_client, registration, sign, start_network,
)

CONSOLE_PAGES = ["/console", "/console/", "/console/transactions", "/console/transactions/x", "/console/subscribers",
                 "/console/subscribers/ORG-A", "/console/statistics", "/console/statistics.csv",
                 "/console/static/style.css"]


@pytest.fixture
async def console(tmp_path, test_pki, trust_store, issue_cert):
    operator = issue_cert("OPERATOR-1", name="Duty Operator")
    network = await start_network(tmp_path, test_pki, trust_store, operator_certs=(operator.cert_path,))
    network.edms["ORG-C"].answer_status = 503  # ORG-C's endpoint is down
    browsing = await Browsing().start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield network, browsing, operator
    await browsing.stop()
    await network.stop()


async def _state_is(hub, msg_id, receiver, wanted):
    return await delivery_state(hub, msg_id, receiver) == wanted


async def test_operator_follows_documents_suspends_and_downloads_statistics(console, test_pki):
    network, browsing, operator = console
    hub = network.hub
    signer = test_pki.signer("ORG-A")
    registered_doc = document("ORG-A", ["ORG-B"], title="Letter to be registered")
    plain_doc = document("ORG-A", ["ORG-B"])
    stuck_doc = document("ORG-A", ["ORG-C"])
    for doc in (registered_doc, plain_doc, stuck_doc):
        assert (await hub.post(sign(doc, signer)))[0] == 200
    assert (await hub.post(b"<garbage"))[0] == 400
    await eventually(lambda: _state_is(hub, registered_doc.msg_id, "ORG-B", "delivered"))
    await eventually(lambda: _state_is(hub, plain_doc.msg_id, "ORG-B", "delivered"))
    ack = registration("ORG-B", registered_doc, RegistrationResult.REGISTERED)
    assert (await hub.post(sign(ack, test_pki.signer("ORG-B"))))[0] == 200
    await eventually(lambda: _state_is(hub, stuck_doc.msg_id, "ORG-C", "retry-wait"))

    context = await browsing.context(hub.url, operator.cert_path, operator.key_path)
    page = await context.new_page()

    # Log in: the operator's certificate is the login; the overview flags ORG-C's failing endpoint.
    await page.goto(f"{hub.url}/console/")
    assert await page.text_content("#operator") == "Duty Operator"
    alerts = await page.text_content("#alerts")
    assert "ORG-C: endpoint failing" in alerts
    assert "FAILING" in await page.text_content("#backlog tr.failing")
    await page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    # Find the registered document by msg_id, open its timeline: ORG-B's registration number.
    await page.click("text=Transactions")
    await page.fill("input[name=msg_id]", registered_doc.msg_id)
    await page.click("button[type=submit]")
    await page.click(f"#results >> text={registered_doc.msg_id}")
    await page.wait_for_selector("#timeline")
    assert await page.text_content("#receivers td.regnum") == "in-77"
    timeline = await page.text_content("#timeline")
    assert "accepted (100) from ORG-A" in timeline and "delivered (101)" in timeline and "registered" in timeline
    await page.screenshot(path=str(SCREENSHOTS / "transaction.png"), full_page=True)

    # By sender: all three documents; the stuck one says who must act.
    await page.goto(f"{hub.url}/console/transactions?sender=ORG-A")
    results = await page.text_content("#results")
    assert all(d.msg_id in results for d in (registered_doc, plain_doc, stuck_doc))
    await page.screenshot(path=str(SCREENSHOTS / "transactions.png"), full_page=True)
    await page.goto(f"{hub.url}/console/transactions/{stuck_doc.msg_id}")
    receivers = await page.text_content("#receivers")
    assert "ORG-C's endpoint failing since" in receivers and "HTTP 503" in receivers
    # Retries run all the time here: the page may be read between two attempts or during one.
    assert ("next try" in receivers or "under way" in receivers) and "deadline" in receivers
    assert "ORG-C's EDMS administrators" in receivers

    # Suspend ORG-B with a reason: recorded in its history with the operator's name.
    await page.goto(f"{hub.url}/console/subscribers")
    await page.screenshot(path=str(SCREENSHOTS / "subscribers.png"), full_page=True)
    await page.click("#subscribers >> text=ORG-B")
    await page.fill("input[name=reason]", "endpoint certificate compromised, ticket 4711")
    await page.click("#status-button")
    await page.wait_for_selector("#history")
    assert await page.text_content("#status") == "suspended"
    history = await page.text_content("#history")
    assert "endpoint certificate compromised, ticket 4711" in history and "operator Duty Operator" in history
    await page.screenshot(path=str(SCREENSHOTS / "subscriber.png"), full_page=True)
    assert network.registry.get("ORG-B").status.value == "suspended"

    # Statistics per day; the CSV's numbers are what this test sent.
    await page.goto(f"{hub.url}/console/statistics?period=day")
    await page.screenshot(path=str(SCREENSHOTS / "statistics.png"), full_page=True)
    async with page.expect_download() as download_info:
        await page.click("#csv")
    download = await download_info.value
    rows = list(csv.DictReader(io.StringIO(open(await download.path()).read())))
    by = {r["subscriber"]: r for r in rows}
    a, everyone = by["ORG-A"], by["*"]
    assert (a["sent"], a["delivered"], a["registered"], a["not_delivered"]) == ("3", "2", "1", "0")
    assert a["missing_registration_share"] == "0.5"
    assert by["ORG-B"]["received"] == "2" and by["ORG-C"]["received"] == "1"
    assert everyone["refused"] == "1" and everyone["sent"] == "3"
    assert float(a["delivery_median_s"]) >= 0 and a["registration_median_s"] != ""
    await context.close()


async def test_console_refuses_anonymous_and_subscribers(console, test_pki):
    network, browsing, operator = console
    url = network.hub.url
    async with hub_client(test_pki) as anonymous, hub_client(test_pki, "ORG-A") as subscriber:
        for path in CONSOLE_PAGES:
            async with anonymous.get(url + path, allow_redirects=False) as r:
                assert r.status == 401, path
            async with subscriber.get(url + path, allow_redirects=False) as r:
                assert r.status == 403, path
        form = {"action": "suspend", "reason": "x", "csrf": "0" * 64}
        async with anonymous.post(f"{url}/console/subscribers/ORG-B/status", data=form) as r:
            assert r.status == 401
        async with subscriber.post(f"{url}/console/subscribers/ORG-B/status", data=form) as r:
            assert r.status == 403
    # An operator's browser without the page's token (a forged cross-site form) is refused too.
    context = await browsing.context(url, operator.cert_path, operator.key_path)
    response = await context.request.post(f"{url}/console/subscribers/ORG-B/status", form=form)
    assert response.status == 403 and "CSRF" in await response.text()
    response = await context.request.get(f"{url}/console/subscribers/ORG-B")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', await response.text()).group(1)
    response = await context.request.post(f"{url}/console/subscribers/ORG-B/status",
                                          form={**form, "csrf": token, "reason": ""}, max_redirects=0)
    assert response.status == 400 and "reason" in await response.text()
    assert network.registry.get("ORG-B").status.value == "active"
    await context.close()
