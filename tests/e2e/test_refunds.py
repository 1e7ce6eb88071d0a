"""Cash refund requests in real Chromium: search, refund, undo, the refusal when credits are
short, submitting on a customer's behalf; the same list as a pop-up over the credits
history; refunding an order with store credits."""

import re

import pytest
from playwright.sync_api import expect

from crm.models import OrderNote
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from refunds import services
from refunds.models import RefundRequest
from tests.e2e.support import log_in
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAYOUT = {"account_holder": "Ann Archer", "bank_name": "First Bank", "account_number": "1111-2222-3456"}


@pytest.fixture
def shots(artifacts):
    folder = artifacts / "refunds"
    folder.mkdir(exist_ok=True)
    return folder


def _log_in(page, role="Support agent"):
    user = StaffUserFactory(role=role)
    log_in(page, user)
    return user


def _seed():
    ann = CustomerFactory(name="Ann Archer", member_id="M-ANN", email="ann@example.org")
    bob = CustomerFactory(name="Bob Baker", member_id="M-BOB", email="bob@example.org")
    cid = CustomerFactory(name="Cid Carter", member_id="M-CID", email="cid@example.org")
    ledger_services.grant(customer=ann, amount=5_000, reason="Welcome bonus")
    ledger_services.grant(customer=bob, amount=4_000, reason="Review reward")
    ledger_services.grant(customer=cid, amount=2_500, reason="Birthday credits")
    ann_req = services.create_request(customer=ann, amount=2_000, channel="storefront", **PAYOUT)
    bob_req = services.create_request(customer=bob, amount=3_000, channel="storefront",
                                      **{**PAYOUT, "account_holder": "Bob Baker", "account_number": "99998888"})
    # Bob spends credits after asking: only 15.00 left for a 30.00 request.
    ledger_services.debit(customer=bob, amount=2_500, kind="redeem", reason="Checkout", source="api")
    return ann, bob, cid, ann_req, bob_req


def _accept_confirms(page):
    page.on("dialog", lambda dialog: dialog.accept())


def test_refund_requests_page_search_refund_undo_refusal_and_submit_on_behalf(page, live_server, shots):
    # given
    ann, bob, cid, ann_req, bob_req = _seed()
    _log_in(page)
    _accept_confirms(page)
    page.goto("/refunds/")
    rows = page.locator("#refunds-table tbody tr")
    expect(rows).to_have_count(2)
    page.screenshot(path=shots / "01-list-page.png", full_page=True)

    # when: searching by customer
    page.get_by_label("Customer", exact=True).fill("Ann")
    # then: only Ann's request, and the URL can be shared
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("M-ANN")
    expect(page).to_have_url(re.compile(r"customer=Ann"))
    page.screenshot(path=shots / "02-search.png", full_page=True)

    # when: Refund
    ann_row = page.locator(f"#refund-request-{ann_req.pk}")
    ann_row.get_by_role("button", name=f"Refund request #{ann_req.pk}").click()
    # then: the notice, the row says Refunded with Undo, and the available credits dropped
    expect(page.locator("#refund-panel")).to_contain_text(f"Request #{ann_req.pk} refunded (M-ANN, $20.00).")
    expect(ann_row.locator(".refund-status")).to_have_text("Refunded")
    expect(ann_row.get_by_role("button", name=f"Undo refund of request #{ann_req.pk}")).to_be_visible()
    expect(ann_row.get_by_role("button", name=f"Refund request #{ann_req.pk}")).to_have_count(0)
    expect(ann_row).to_contain_text("$30.00")
    assert ledger_selectors.available_balance(customer=ann) == 3_000
    page.screenshot(path=shots / "03-refunded.png", full_page=True)

    # when: Undo
    ann_row.get_by_role("button", name=f"Undo refund of request #{ann_req.pk}").click()
    # then: back to pending, credits restored
    expect(page.locator("#refund-panel")).to_contain_text("undone: back to pending, credits restored")
    expect(ann_row.locator(".refund-status")).to_have_text("Awaiting/Pending")
    expect(ann_row).to_contain_text("$50.00")
    assert ledger_selectors.available_balance(customer=ann) == 5_000

    # when: Refund of Bob's request, which is above his available credits
    page.get_by_role("link", name="Reset").click()
    expect(rows).to_have_count(2)
    bob_row = page.locator(f"#refund-request-{bob_req.pk}")
    expect(bob_row.locator(".badge.short")).to_be_visible()
    bob_row.get_by_role("button", name=f"Refund request #{bob_req.pk}").click()
    # then: refused with a clear message, nothing changed
    alert = page.locator("#refund-panel [role=alert]")
    expect(alert).to_contain_text("Refund refused: M-BOB has only $15.00 available and the request is for "
                                  "$30.00. Nothing was changed.")
    expect(bob_row.locator(".refund-status")).to_have_text("Requested")
    assert RefundRequest.objects.get(pk=bob_req.pk).status == "requested"
    page.screenshot(path=shots / "04-refused-credits-short.png", full_page=True)

    # when: submitting a request on Cid's behalf
    page.get_by_role("link", name="Submit a request").click()
    panel = page.locator("#refund-panel")
    expect(panel.get_by_role("heading", name="Submit a cash refund request")).to_be_visible()
    panel.get_by_label("Search customers").fill("cid@example")
    expect(panel.locator("#customer-results li")).to_have_count(1)
    expect(panel.locator("#customer-results")).to_contain_text("$25.00")
    page.screenshot(path=shots / "05-submit-search.png", full_page=True)
    panel.get_by_role("link", name="Select Cid Carter (M-CID)").click()
    expect(panel.get_by_test_id("picked")).to_have_text("Cid Carter (M-CID)")
    panel.get_by_label("Amount").fill("30")
    panel.get_by_label("Account holder").fill("Cid Carter")
    panel.get_by_label("Bank").fill("Second Bank")
    panel.get_by_label("Account number").fill("5555 6666 7777")
    panel.get_by_role("button", name="Submit request").click()
    # then: above his credits: the error next to the amount, nothing written
    expect(panel.locator("#field-amount .errorlist")).to_contain_text(
        "The amount is more than the available credits: M-CID has $25.00 available, the request is for $30.00.")
    assert not RefundRequest.objects.filter(customer=cid).exists()
    page.screenshot(path=shots / "06-submit-error.png", full_page=True)
    # when: a valid amount
    panel.get_by_label("Amount").fill("12.50")
    panel.get_by_role("button", name="Submit request").click()
    # then: submitted, and the list shows it
    expect(panel).to_contain_text("submitted for M-CID ($12.50)")
    expect(rows).to_have_count(3)
    new = RefundRequest.objects.get(customer=cid)
    expect(page.locator(f"#refund-request-{new.pk}")).to_contain_text("••••7777")
    assert (new.amount, new.channel) == (1250, "staff")
    page.screenshot(path=shots / "07-submitted.png", full_page=True)


def test_refund_requests_popup_over_the_credits_history(page, live_server, shots):
    # given: more requests than fit, so the table scrolls inside the dialog
    ann, bob, cid, ann_req, bob_req = _seed()
    for n in range(12):
        c = CustomerFactory(name=f"Extra Customer {n}", member_id=f"M-X{n:02d}")
        ledger_services.grant(customer=c, amount=10_000, reason="setup")
        services.create_request(customer=c, amount=1_000 + n, channel="storefront", **PAYOUT)
    _log_in(page)
    _accept_confirms(page)
    page.goto("/credits/history/")
    # when: the history page's [Cash refund requests] button
    page.get_by_role("link", name="Cash refund requests").click()
    dialog = page.get_by_role("dialog", name="Cash refund requests")
    # then
    expect(dialog).to_be_visible()
    assert page.evaluate("document.querySelector('#modal').matches(':modal')")
    box = dialog.bounding_box()
    assert box["width"] > 1000, box
    scroller = dialog.locator(".table-scroll")
    assert scroller.evaluate("el => el.scrollHeight > el.clientHeight")
    page.screenshot(path=shots / "10-popup.png")

    # when: refunding inside the pop-up
    row = dialog.locator(f"#refund-request-{ann_req.pk}")
    row.get_by_role("button", name=f"Refund request #{ann_req.pk}").click()
    # then: the pop-up stays open and its row updates; the page's URL did not change
    expect(dialog.locator("#refund-panel")).to_contain_text("refunded")
    expect(row.locator(".refund-status")).to_have_text("Refunded")
    expect(dialog).to_be_visible()
    expect(page).to_have_url(re.compile(r"/credits/history/$"))
    page.screenshot(path=shots / "11-popup-refunded.png")

    # when: Undo inside the pop-up
    row.get_by_role("button", name=f"Undo refund of request #{ann_req.pk}").click()
    # then
    expect(dialog.locator("#refund-panel")).to_contain_text("undone: back to pending, credits restored")
    expect(row.locator(".refund-status")).to_have_text("Awaiting/Pending")
    expect(row).to_contain_text("$50.00")
    assert ledger_selectors.available_balance(customer=ann) == 5_000

    # when: Refund of Bob's request, above his available credits, inside the pop-up
    bob_row = dialog.locator(f"#refund-request-{bob_req.pk}")
    bob_row.get_by_role("button", name=f"Refund request #{bob_req.pk}").click()
    # then: refused with the message, nothing changed, the pop-up still open
    expect(dialog.locator("#refund-panel [role=alert]")).to_contain_text(
        "Refund refused: M-BOB has only $15.00 available and the request is for $30.00. Nothing was changed.")
    expect(bob_row.locator(".refund-status")).to_have_text("Requested")
    assert RefundRequest.objects.get(pk=bob_req.pk).status == "requested"
    page.screenshot(path=shots / "11b-popup-refused.png")

    # when: searching inside the pop-up
    services.refund(request=ann_req.pk, actor=None)
    dialog.get_by_label("Status").select_option("refunded")
    # then
    expect(dialog.locator("#refunds-table tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/credits/history/$"))

    # when: the email icon opens the send-email form inside the pop-up
    dialog.get_by_role("link", name="Send email to M-ANN").click()
    expect(dialog.get_by_label("Subject")).to_have_value(f"Your cash refund request #{ann_req.pk}")
    # then: the pop-up stays as wide as the list (the form opens in its panel)
    assert dialog.bounding_box()["width"] > 1000
    page.screenshot(path=shots / "12-popup-email.png")
    dialog.get_by_label("Message").fill("Your refund is on its way.")
    dialog.get_by_role("button", name="Send email").click()
    expect(dialog.locator("#refund-panel")).to_contain_text("Email sent to M-ANN.")

    # when: the memo icon
    dialog.get_by_role("link", name="Memos of M-ANN").click()
    # then: the customer pop-up, at its memos, ready to write one
    customer = page.get_by_role("dialog", name="Ann Archer · M-ANN")
    expect(customer).to_be_visible()
    expect(customer.get_by_role("heading", name="Memos")).to_be_in_viewport()
    expect(customer.locator("#memos textarea")).to_be_focused()
    page.screenshot(path=shots / "13-popup-memo.png")

    # when: Escape
    page.keyboard.press("Escape")
    expect(customer).to_be_hidden()


def test_refund_an_order_with_store_credits_popup(page, live_server, shots):
    # given
    order = OrderFactory(external_id="ORD-7001", items_total=8_000, paid_amount=8_000,
                         customer=CustomerFactory(name="Dana Dale", member_id="M-DANA"))
    _log_in(page)
    page.goto("/refunds/")
    # when: opened in the dialog (as the order page's button does)
    page.evaluate(f"htmx.ajax('GET', '/refunds/orders/{order.pk}/refund-with-credits/', "
                  "{target: '#modal', swap: 'innerHTML'})")
    dialog = page.get_by_role("dialog", name="Refund with store credits")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Send notification to customer")).to_be_checked()
    expect(dialog.get_by_label("Note")).to_have_value("Refunded with store credits.")
    dialog.get_by_label("Amount to refund as store credits").fill("100")
    dialog.get_by_role("button", name="Refund with store credits").click()
    # then: more than the order: refused next to the amount
    expect(dialog.locator("#field-amount .errorlist")).to_contain_text("At most $80.00 of order ORD-7001")
    page.screenshot(path=shots / "20-order-refund-error.png")
    # when
    dialog.get_by_label("Amount to refund as store credits").fill("25")
    dialog.get_by_label("Note").fill("Sorry about the late delivery.")
    dialog.get_by_role("button", name="Refund with store credits").click()
    # then: the dialog closes; credits granted and the note written
    expect(dialog).to_be_hidden()
    assert ledger_selectors.available_balance(customer=order.customer) == 2_500
    assert OrderNote.objects.get(order=order).body == "Sorry about the late delivery."
    page.screenshot(path=shots / "21-order-refund-done.png")
