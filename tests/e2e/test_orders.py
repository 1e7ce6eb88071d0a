"""Orders list and detail, the API keys settings page and the member panel in real Chromium."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from credits_admin.member_views import make_panel_token
from credits_admin.models import StoreSettings
from crm.models import Order, OrderNote
from ledger import services as ledger_services
from refunds.models import StoreCreditRefund
from rules import services as rules_services
from tests.e2e.support import log_in
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

def _seed_orders():
    now = timezone.now()
    ada = CustomerFactory(name="Ada Lovelace", member_id="M-1001", email="ada@example.com")
    grace = CustomerFactory(name="Grace Hopper", member_id="M-1002", email="grace@example.com")
    alan = CustomerFactory(name="Alan Turing", member_id="M-1003", email="alan@example.com")
    big = OrderFactory(external_id="SO-10045", customer=ada, placed_at=now - dt.timedelta(days=3),
                       items_total=12_000, paid_amount=12_500, refunded_amount=6_000,
                       status=Order.Status.PARTIALLY_REFUNDED)
    OrderFactory(external_id="SO-10046", customer=grace, placed_at=now - dt.timedelta(days=2), items_total=4_990,
                 paid_amount=4_990)
    OrderFactory(external_id="SO-10047", customer=alan, placed_at=now - dt.timedelta(days=1), items_total=899,
                 paid_amount=0, paid_at=None, status=Order.Status.PLACED)
    OrderFactory(external_id="SO-10048", customer=ada, placed_at=now - dt.timedelta(hours=5), items_total=2_500,
                 paid_amount=2_500)
    OrderFactory(external_id="SO-10049", customer=grace, placed_at=now - dt.timedelta(hours=1), items_total=7_000,
                 paid_amount=7_000, refunded_amount=7_000, status=Order.Status.REFUNDED)
    ledger_services.grant(customer=ada, amount=1_200, reason="Paid order reward", order=big, source="rule")
    ledger_services.debit(customer=ada, amount=1_000, kind="redeem", reason="Redeemed at checkout", source="api")
    ledger_services.clawback(customer=ada, amount=600, reason="Order partially refunded", order=big)
    ledger_services.grant(customer=ada, amount=2_000, reason="Refund with store credits", order=big,
                          actor=StaffUserFactory(username="carol"), comment="Damaged parcel")
    OrderNote.objects.create(order=big, body="Refunded with store credits: $20.00 (damaged parcel).")
    OrderNote.objects.create(order=big, body="Customer asked about the second item.")
    return big


def test_orders_search_open_an_order_and_see_its_entries_and_notes(page, live_server, artifacts):
    # given
    out = artifacts / "orders"
    out.mkdir(exist_ok=True)
    big = _seed_orders()
    log_in(page, StaffUserFactory(role="Support agent"))

    # when: the orders page from the navigation
    page.get_by_role("link", name="Orders").click()
    # then: every order, newest first
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()
    rows = page.locator("#order-table tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("SO-10049")
    page.screenshot(path=out / "order-list.png", full_page=True)

    # when: searching by customer
    page.get_by_label("Customer").fill("Ada")
    # then: only Ada's orders, and the search is in the address bar
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"customer=Ada"))
    page.get_by_label("Status").select_option("partially_refunded")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"status=partially_refunded"))
    page.screenshot(path=out / "order-list-search.png", full_page=True)

    # when: a bad date range
    page.get_by_label("Placed from").fill("2026-03-31")
    page.get_by_label("Placed to").fill("2026-03-01")
    # then: a clear message, no rows
    expect(page.get_by_role("alert")).to_contain_text("The end date must be on or after the start date.")
    page.get_by_role("link", name="Reset").click()
    expect(rows).to_have_count(5)

    # when: the customer pop-up from a row
    page.get_by_role("link", name="M-1002").first.click()
    # then
    expect(page.get_by_role("dialog", name=re.compile("Grace Hopper"))).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog#modal")).to_be_hidden()

    # when: opening an order
    page.get_by_role("link", name="SO-10045").click()
    # then: its own page (not swapped into the list), with its facts, credits and notes
    expect(page).to_have_url(f"{live_server.url}/customers/orders/{big.pk}/")
    expect(page.locator("header.topbar")).to_have_count(1)
    expect(page.get_by_role("heading", name="Orders", exact=True)).to_have_count(0)
    expect(page.get_by_role("heading", name=re.compile("Order SO-10045"))).to_be_visible()
    expect(page.get_by_test_id("refunded-amount")).to_have_text("$60.00")
    entries = page.locator("#order-entries tbody tr")
    expect(entries).to_have_count(3)
    expect(entries.nth(0)).to_contain_text("Refund with store credits")
    expect(entries.nth(1)).to_contain_text("Order partially refunded")
    expect(entries.nth(1)).to_contain_text("$4.00")   # uncollected: only 200 was left to take back
    expect(entries.nth(2)).to_contain_text("Paid order reward")
    notes = page.locator("#order-notes li")
    expect(notes).to_have_count(2)
    expect(notes.first).to_contain_text("Customer asked about the second item.")
    expect(page.get_by_role("link", name="Refund with store credits")).to_be_visible()
    page.screenshot(path=out / "order-detail.png", full_page=True)

    # when: something elsewhere announces a change (as the refund pop-up does)
    OrderNote.objects.create(order=big, body="A note written meanwhile.")
    page.evaluate("document.body.dispatchEvent(new CustomEvent('orderChanged', {bubbles: true}))")
    # then: the entries and notes re-fetch themselves
    expect(notes).to_have_count(3)
    expect(notes.first).to_contain_text("A note written meanwhile.")

    # when: refunding with store credits from the Actions (the refunds app's pop-up), while
    # the store's policy makes refunds valid for 30 days
    StoreSettings.objects.update_or_create(pk=1, defaults={"refund_note": "We refunded you in store credits."})
    rules_services.update_expiry_policy(actor=None, refund_expiry_mode="days", refund_expiry_days=30)
    page.get_by_role("link", name="Refund with store credits").click()
    refund = page.get_by_role("dialog", name="Refund with store credits")
    expect(refund).to_be_visible()
    # then: the default note is filled in (editable), the notification is ticked, and the
    # expiry the policy gives is said in words
    expect(refund.get_by_label("Note")).to_have_value("We refunded you in store credits.")
    expect(refund.get_by_label("Send notification to customer")).to_be_checked()
    expect(refund.get_by_test_id("refund-expiry")).to_contain_text("these credits expire on")
    refund.get_by_label("Amount to refund as store credits").fill("7.50")
    refund.get_by_label("Note").fill("Refunded $7.50 as store credits for the late delivery.")
    refund.get_by_label("Send notification to customer").uncheck()
    page.screenshot(path=out / "order-refund-popup.png")
    refund.get_by_role("button", name="Refund with store credits").click()
    # then: the pop-up closes and the page shows the new entry and note without a reload
    expect(page.locator("dialog#modal")).to_be_hidden()
    expect(entries).to_have_count(4)
    expect(entries.first).to_contain_text("+$7.50")
    expect(notes.first).to_contain_text("Refunded $7.50 as store credits for the late delivery.")
    page.screenshot(path=out / "order-detail-after-refund.png", full_page=True)
    made = StoreCreditRefund.objects.get()
    assert (made.amount, made.notify) == (750, False)
    gap = made.entry.lot.expires_at - (made.entry.created_at + dt.timedelta(days=30))
    assert abs(gap) < dt.timedelta(seconds=5)  # 30 days from the refund (its clock read, not the row's)

    # when: the customer pop-up from the order
    page.locator(".order-grid").get_by_role("link", name="M-1001").click()
    # then
    expect(page.get_by_role("dialog", name=re.compile("Ada Lovelace"))).to_be_visible()


def test_order_detail_for_ops_has_no_refund_button(page, live_server):
    # given
    big = _seed_orders()
    log_in(page, StaffUserFactory(role="Ops"))
    # when
    page.goto(f"/customers/orders/{big.pk}/")
    # then
    expect(page.get_by_role("heading", name=re.compile("Order SO-10045"))).to_be_visible()
    expect(page.get_by_role("link", name="Refund with store credits")).to_have_count(0)


def test_api_keys_create_shows_the_key_once_then_revoke(page, live_server, artifacts):
    # given
    out = artifacts / "orders"
    out.mkdir(exist_ok=True)
    log_in(page, StaffUserFactory(role="Store admin", username="owner"))
    page.goto("/settings/api-keys/")
    expect(page.get_by_role("heading", name="Storefront API keys")).to_be_visible()

    # when: creating a key with no name, then with one
    page.get_by_role("link", name="New API key").click()
    dialog = page.get_by_role("dialog", name="New API key")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Name")).to_be_focused()
    page.get_by_role("button", name="Create key").click()
    expect(dialog.locator(".errorlist")).to_contain_text("This field is required.")
    page.get_by_label("Name").fill("Storefront production")
    page.get_by_role("button", name="Create key").click()

    # then: the whole key, once, with a copy button
    created = page.get_by_role("dialog", name="API key created")
    expect(created).to_be_visible()
    key_field = page.get_by_test_id("new-api-key")
    raw = key_field.input_value()
    assert re.fullmatch(r"sca_[0-9a-f]{8}_[A-Za-z0-9_\-]{20,}", raw)
    copy = created.locator("button[data-copy]")   # its name changes to "Copied"
    expect(copy).to_be_focused()
    page.screenshot(path=out / "apikey-created.png")
    copy.click()
    expect(copy).to_have_text(re.compile("Copied|Press Ctrl\\+C"))
    # and the list behind the pop-up already has the new key
    expect(page.locator("#apikey-table tbody tr")).to_have_count(1)

    # when: closing the pop-up
    created.get_by_role("button", name="Done").click()
    # then: only the beginning of the key is ever shown again
    expect(page.locator("dialog#modal")).to_be_hidden()
    row = page.locator("#apikey-table tbody tr").first
    expect(row).to_contain_text("Storefront production")
    expect(row).to_contain_text(f"sca_{raw.split('_')[1]}_…")
    assert raw not in page.content()
    page.reload()
    assert raw not in page.content()
    page.screenshot(path=out / "apikey-list.png", full_page=True)

    # when: revoking it
    row.get_by_role("link", name="Revoke").click()
    confirm = page.get_by_role("dialog", name=re.compile("Revoke “Storefront production”"))
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Revoke key").click()
    # then
    expect(page.locator("dialog#modal")).to_be_hidden()
    expect(page.locator("#apikey-table tbody tr").first).to_contain_text("Revoked")
    expect(page.locator("#apikey-table").get_by_role("link", name="Revoke")).to_have_count(0)


def test_member_panel_shows_card_number_and_balance(page, live_server, artifacts):
    # given
    out = artifacts / "orders"
    out.mkdir(exist_ok=True)
    StoreSettings.objects.update_or_create(pk=1, defaults={"store_name": "Lovelace Goods"})
    ada = CustomerFactory(name="Ada Lovelace", member_id="M-1001")
    ledger_services.grant(customer=ada, amount=4_000, reason="Welcome")
    ledger_services.grant(customer=ada, amount=1_250, reason="Promo",
                          expires_at=timezone.now() + dt.timedelta(days=6))
    # when
    page.goto(f"/member/{make_panel_token(ada.member_id)}/")
    # then
    expect(page.get_by_role("heading", name="Store credits")).to_be_visible()
    expect(page.get_by_text("Lovelace Goods")).to_be_visible()
    expect(page.get_by_test_id("panel-available")).to_have_text("$52.50")
    expect(page.get_by_test_id("panel-expiring")).to_contain_text("$12.50")
    expect(page.get_by_test_id("panel-card")).to_have_text(ada.card_number)
    expect(page.locator(".mainnav")).to_have_count(0)
    page.screenshot(path=out / "member-panel.png", full_page=True)
    copy = page.locator("button[data-copy]")
    copy.click()
    expect(copy).to_have_text(re.compile("Copied|Press Ctrl\\+C"))

    # when: the program is switched off
    StoreSettings.objects.filter(pk=1).update(credits_enabled=False)
    page.reload()
    # then: no balance, but the card number to redeem what is left
    expect(page.get_by_test_id("panel-off")).to_have_text("Store credits are currently not offered.")
    expect(page.get_by_test_id("panel-available")).to_have_count(0)
    expect(page.get_by_test_id("panel-card")).to_have_text(ada.card_number)
    page.screenshot(path=out / "member-panel-off.png", full_page=True)

    # when: a tampered link
    page.goto(f"/member/{make_panel_token(ada.member_id)}x/")
    # then
    expect(page.get_by_test_id("panel-error")).to_have_text(re.compile("This link is not valid"))
    page.screenshot(path=out / "member-panel-bad-link.png", full_page=True)
