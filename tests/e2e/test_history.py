"""The credits-history page in real Chromium: search (the URL follows, Back restores it),
the customer pop-up from the table, a memo, then credit and debit through the pop-up and
the table and summary refreshing without a page reload; a refused overdraft."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ledger import clock
from ledger import services as ledger_services
from tests.e2e.support import log_in
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

def _seed_history():
    """30 entries over the last two weeks; Ada has 5 of them: +85.00, -19.50, $65.50 left."""
    now = timezone.now()
    ada = CustomerFactory(member_id="M-ADA", name="Ada Lovelace", email="ada@example.com")
    others = [CustomerFactory(name=name) for name in ("Grace Hopper", "Alan Turing", "Barbara Liskov",
                                                     "Ken Thompson", "Radia Perlman")]
    clerk = StaffUserFactory(username="clerk.kim", role="Support agent")
    order = OrderFactory(customer=ada, external_id="SO-20001")
    plan = [
        (ada, "grant", 5_000, "Welcome bonus", {}),
        (ada, "redeem", 1_250, "Redeemed at checkout", {"order": order, "source": "api"}),
        (ada, "grant", 2_000, "Review reward", {"source": "rule", "expires_at": now + dt.timedelta(days=12)}),
        (ada, "grant", 1_500, "Goodwill gesture", {"actor": clerk, "comment": "Parcel arrived late"}),
        (ada, "deduct", 700, "Goodwill correction", {"actor": clerk, "comment": "Double credit"}),
    ]
    for n in range(25):
        if n % 5 == 4:  # every fifth entry spends some of what an earlier one granted
            plan.append((others[(n // 5) % 4], "redeem", 300 + n, "Redeemed at checkout", {"source": "api"}))
        else:
            plan.append((others[n % 5], "grant", 1_000 + 37 * n, "Order reward", {"source": "rule"}))
    for i, (customer, kind, amount, reason, extra) in enumerate(plan):
        with clock.posting_at(now - dt.timedelta(days=14) + dt.timedelta(hours=11 * i)):
            if kind == "grant":
                ledger_services.grant(customer=customer, amount=amount, reason=reason, **extra)
            else:
                ledger_services.debit(customer=customer, amount=amount, kind=kind, reason=reason, **extra)
    return ada


def _rows(page):
    return page.locator("#history-table tbody tr")


def _stat(page, name):
    return page.locator(f'#summary [data-testid="{name}"]')


def test_history_search_popup_memo_credit_and_debit(page, live_server, artifacts):
    # given
    out = artifacts / "history"
    out.mkdir(exist_ok=True)
    ada = _seed_history()
    log_in(page, StaffUserFactory(username="e2e.admin", role="Store admin"))

    # when: the history page (default: last 30 days)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    # then
    expect(page.get_by_role("heading", name="Credits history")).to_be_visible()
    expect(_rows(page)).to_have_count(30)
    expect(_stat(page, "entries")).to_have_text("30")
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    page.screenshot(path=out / "history.png", full_page=True)

    # when: searching by a customer
    page.get_by_label("Customer", exact=True).fill("M-ADA")
    # then: htmx replaced the results, the URL says what was searched
    expect(_rows(page)).to_have_count(5)
    expect(page).to_have_url(re.compile(r"/credits/history/\?.*customer=M-ADA"))
    expect(_stat(page, "rewarded")).to_have_text("$85.00")
    expect(_stat(page, "deducted")).to_have_text("$19.50")
    expect(_stat(page, "closing")).to_have_text("$65.50")

    # when: Back
    page.go_back()
    # then: the previous search (all 30 entries) is back
    expect(page).to_have_url(f"{live_server.url}/credits/history/")
    expect(_rows(page)).to_have_count(30)

    # when: Forward, then opening the customer pop-up from a customer ID in the table
    page.go_forward()
    expect(page).to_have_url(re.compile(r"customer=M-ADA"))
    expect(_rows(page)).to_have_count(5)
    _rows(page).first.get_by_role("link", name="M-ADA").click()
    dialog = page.locator("dialog#modal")
    # then
    expect(dialog).to_be_visible()
    expect(page.get_by_role("dialog", name=re.compile("Ada Lovelace"))).to_be_visible()
    expect(dialog.get_by_test_id("available")).to_have_text("$65.50")
    expect(dialog.get_by_test_id("card-masked")).to_have_text(f"•••• •••• •••• {ada.card_number[-4:]}")
    expect(dialog.locator("ul.expiring li")).to_have_count(1)
    expect(dialog.locator("ul.expiring li")).to_contain_text("$13.00")  # the 7.00 deduction took from it first
    page.screenshot(path=out / "customer-popup.png")

    # when: the card is revealed (Store admin) and a memo is added
    dialog.get_by_role("button", name="Reveal").click()
    expect(dialog.get_by_test_id("card-full")).to_have_text(ada.card_number)
    dialog.get_by_label("New memo").fill("Called about the late parcel.")
    dialog.get_by_role("button", name="Add memo").click()
    # then
    expect(dialog.locator("ul.memos li").first).to_contain_text("Called about the late parcel.")
    expect(dialog.locator("ul.memos li").first).to_contain_text("e2e.admin")
    expect(dialog.get_by_label("New memo")).to_have_value("")
    expect(dialog.get_by_role("button", name="Add memo")).to_be_focused()

    # when: Credit / debit from the pop-up, +10.00, preview
    dialog.get_by_role("link", name="Credit / debit").click()
    expect(page.get_by_role("dialog", name="Credit or debit Ada Lovelace")).to_be_visible()
    expect(dialog.get_by_label("Amount")).to_be_focused()
    dialog.get_by_label("Amount").fill("10.00")
    dialog.get_by_label("Comment").fill("Parcel arrived late")
    dialog.get_by_role("button", name="Preview").click()
    # then
    expect(dialog.get_by_test_id("resulting")).to_have_text("$75.50")
    expect(dialog.get_by_test_id("change")).to_have_text("+$10.00")
    page.screenshot(path=out / "credit-preview.png")

    # when: confirm
    dialog.get_by_role("button", name="Confirm credit").click()
    # then: the pop-up closes, the table and summary refresh in place
    expect(dialog).to_be_hidden()
    expect(_rows(page)).to_have_count(6)
    expect(_rows(page).first).to_contain_text("+$10.00")
    expect(_rows(page).first).to_contain_text("e2e.admin")
    expect(_stat(page, "rewarded")).to_have_text("$95.00")
    expect(_stat(page, "closing")).to_have_text("$75.50")
    expect(page.locator("#toasts")).to_contain_text("+$10.00 posted for Ada Lovelace (M-ADA).")

    # when: a debit of 5.00 from the page's own Credit / debit button (customer typed in)
    page.locator(".page-actions").get_by_role("link", name="Credit / debit").click()
    dialog.get_by_label("Customer").fill("M-ADA")
    dialog.get_by_label("Amount").fill("-5.00")
    dialog.get_by_label("Reason", exact=True).select_option("Correction")
    dialog.get_by_label("Comment").fill("Shipping fee was refunded twice")
    dialog.get_by_role("button", name="Preview").click()
    expect(dialog.get_by_test_id("resulting")).to_have_text("$70.50")
    dialog.get_by_role("button", name="Confirm debit").click()
    # then
    expect(dialog).to_be_hidden()
    expect(_rows(page)).to_have_count(7)
    expect(_rows(page).first).to_contain_text("−$5.00")
    expect(_rows(page).first).to_contain_text("Correction")
    expect(_stat(page, "deducted")).to_have_text("$24.50")
    expect(_stat(page, "closing")).to_have_text("$70.50")

    # when: a debit larger than the balance
    page.locator(".page-actions").get_by_role("link", name="Credit / debit").click()
    dialog.get_by_label("Customer").fill("M-ADA")
    dialog.get_by_label("Amount").fill("-100")
    dialog.get_by_label("Comment").fill("Too much")
    dialog.get_by_role("button", name="Preview").click()
    # then: refused next to the amount, the pop-up stays open, nothing changed
    error = dialog.locator("#field-amount .errorlist")
    expect(error).to_have_text("Only $70.50 is available; you cannot deduct $100.00.")
    expect(dialog.get_by_label("Amount")).to_be_focused()
    page.screenshot(path=out / "refusal.png")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(_rows(page)).to_have_count(7)
    assert page.evaluate("window.__sameDocument === true")  # never reloaded


def test_customers_page_search_opens_the_same_popup(page, live_server, artifacts):
    # given
    out = artifacts / "history"
    out.mkdir(exist_ok=True)
    ada = _seed_history()
    log_in(page, StaffUserFactory(role="Ops"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customers")).to_be_visible()
    expect(page.locator("#customer-table tbody tr")).to_have_count(6)
    # when: searching by the last digits of a card number
    page.get_by_label("Search").fill(ada.card_number[-6:])
    # then
    expect(page.locator("#customer-table tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(rf"/customers/\?q={ada.card_number[-6:]}"))
    page.screenshot(path=out / "customers.png")
    # when
    page.get_by_role("link", name="M-ADA").click()
    # then: the same pop-up; Ops reads it but may neither adjust, reveal nor write memos
    dialog = page.get_by_role("dialog", name=re.compile("Ada Lovelace"))
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("available")).to_have_text("$65.50")
    expect(dialog.get_by_role("link", name="Credit / debit")).to_have_count(0)
    expect(dialog.get_by_role("button", name="Reveal")).to_have_count(0)
    expect(dialog.get_by_label("New memo")).to_have_count(0)
    # when: the link to the full history
    dialog.get_by_role("link", name="Full history").click()
    # then
    expect(page.get_by_role("heading", name="Credits history")).to_be_visible()
    expect(_rows(page)).to_have_count(5)
