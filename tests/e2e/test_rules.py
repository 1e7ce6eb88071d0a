"""The credits program in real Chromium: switch it on, set the expiry, add the five rules
through the pop-up (watching the live preview), back-test one, and screenshot the pages."""

import pytest
from playwright.sync_api import expect

from credits_admin.models import StoreSettings
from rules.models import AllocationRule
from tests.e2e.support import log_in
from tests.factories import StaffUserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def shots(artifacts):
    folder = artifacts / "rules"
    folder.mkdir(exist_ok=True)
    return folder


def _open_method(page, label):
    page.get_by_role("link", name="Add allocation rule").click()
    dialog = page.locator("dialog#modal")
    expect(dialog.get_by_role("heading", name="Add allocation rule")).to_be_visible()
    dialog.get_by_role("link", name=label).click()
    expect(dialog.get_by_role("heading", name=f"New rule: {label}")).to_be_visible()
    _settled(page)
    return dialog


def _settled(page):
    """htmx wires the new pop-up's listeners while it settles; a person is never that fast."""
    page.wait_for_function("() => !document.querySelector('#modal.htmx-settling, #modal .htmx-added')")


def _save(page, dialog, method, sentence):
    dialog.get_by_role("button", name="Add rule").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id(f"sentence-{method}")).to_have_text(sentence)


def test_merchant_switches_the_program_on_sets_expiry_and_adds_all_five_rules(page, live_server, shots):
    # given: the program is off
    StoreSettings.objects.update_or_create(pk=1, defaults={"credits_enabled": False, "store_name": "Demo Store"})
    log_in(page, StaffUserFactory(role="Store admin"))

    # when: switching the program on
    page.goto("/program/")
    expect(page.get_by_test_id("program-status")).to_have_text("Off")
    page.get_by_role("switch", name="Store credits").check()
    page.get_by_role("button", name="Save settings").click()
    # then
    expect(page.get_by_text("Program settings saved.")).to_be_visible()
    expect(page.get_by_test_id("program-status")).to_have_text("On")
    page.screenshot(path=shots / "program-settings.png", full_page=True)

    # when: credits are valid for 365 days
    page.get_by_role("link", name="Expiry date").click()
    page.locator("fieldset", has_text="Credits from allocation rules").get_by_label("Valid for a number of days").check()
    page.locator("#id_expiry_days").fill("365")
    page.get_by_role("button", name="Save expiry policy").click()
    # then
    expect(page.get_by_test_id("rule-expiry")).to_have_text("Credits expire 365 days after they are granted.")
    page.screenshot(path=shots / "expiry-policy.png", full_page=True)

    # when: the five rules, one pop-up each
    page.get_by_role("link", name="Allocation rules").click()
    expect(page.get_by_role("heading", name="First order")).to_be_visible()

    dialog = _open_method(page, "First order")
    preview = dialog.get_by_test_id("preview")
    dialog.get_by_label("Based on the amount paid for the items").check()
    dialog.get_by_label("Credits", exact=True).fill("1")
    dialog.get_by_label("For every", exact=True).fill("10")
    expect(preview).to_have_text("Customers receive $1.00 for every $10.00 paid for items in their first paid order.")
    _save(page, dialog, "first_order",
          "Customers receive $1.00 for every $10.00 paid for items in their first paid order.")

    dialog = _open_method(page, "Each paid order")
    dialog.get_by_label("Based on the amount paid for the items").check()
    dialog.get_by_label("Credits", exact=True).fill("5")
    dialog.get_by_label("For every", exact=True).fill("50")
    expect(preview).to_have_text("Customers receive $5.00 for every $50.00 paid for items in each paid order.")
    dialog.get_by_label("Minimum spend").fill("20")
    expect(preview).to_have_text(
        "Customers receive $5.00 for every $50.00 paid for items in each paid order of at least $20.00.")
    expect(dialog.get_by_test_id("preview-expiry")).to_have_text("Credits expire 365 days after they are granted.")
    dialog.get_by_role("button", name="Back-test on the last 90 days").click()
    expect(dialog.get_by_test_id("backtest")).to_contain_text("this rule would have granted $0.00 in 0 grants")
    page.screenshot(path=shots / "rule-popup-paid-order.png")
    _save(page, dialog, "paid_order",
          "Customers receive $5.00 for every $50.00 paid for items in each paid order of at least $20.00.")

    dialog = _open_method(page, "Registration")
    dialog.get_by_label("Credits", exact=True).fill("3")
    expect(preview).to_have_text("Customers receive $3.00 when they register.")
    _save(page, dialog, "registration", "Customers receive $3.00 when they register.")

    dialog = _open_method(page, "Order history")
    dialog.get_by_label("Tier 1: paid orders").fill("3")
    dialog.get_by_label("Tier 1: credits").fill("5")
    dialog.get_by_label("Tier 2: paid orders").fill("2")
    dialog.get_by_label("Tier 2: credits").fill("20")
    expect(dialog.locator("#rule-preview")).to_contain_text("Thresholds must increase: 2 is not more than the tier before (3).")
    dialog.get_by_label("Tier 2: paid orders").fill("10")
    sentence = ("Customers receive $5.00 when they reach 3 paid orders and $20.00 when they reach 10 paid orders; "
                "each tier is rewarded once.")
    expect(preview).to_have_text(sentence)
    page.screenshot(path=shots / "rule-popup-order-history.png")
    _save(page, dialog, "order_history", sentence)

    dialog = _open_method(page, "Spend history")
    expect(dialog.get_by_label("Tier 1: total spend reaches")).to_be_hidden()  # "every X" is the default
    dialog.get_by_label("Receive", exact=True).fill("5")
    dialog.get_by_label("Every time the customer spends").fill("100")
    sentence = ("Customers receive $5.00 for every $100.00 they spend in paid orders; any excess carries over to "
                "the next $100.00.")
    expect(preview).to_have_text(sentence)
    _save(page, dialog, "spend_history", sentence)

    # then: all five on the page, and in the database
    assert set(AllocationRule.objects.values_list("method", flat=True)) == {
        "first_order", "paid_order", "registration", "order_history", "spend_history"}
    expect(page.get_by_role("link", name="Add allocation rule")).to_be_visible()
    page.screenshot(path=shots / "rules-page.png", full_page=True)

    # when: all methods are taken, the chooser says so
    page.get_by_role("link", name="Add allocation rule").click()
    expect(page.locator("dialog#modal").get_by_text("Already set up")).to_have_count(5)
    page.keyboard.press("Escape")

    # when: editing one rule shows its current preview, and an invalid value keeps the pop-up open
    page.get_by_role("link", name="Edit Registration").click()
    dialog = page.locator("dialog#modal")
    expect(dialog.get_by_test_id("preview")).to_have_text("Customers receive $3.00 when they register.")
    dialog.get_by_label("Credits", exact=True).fill("0")
    dialog.get_by_role("button", name="Save rule").click()
    expect(dialog.get_by_text("Enter an amount greater than zero.").first).to_be_visible()
    page.screenshot(path=shots / "rule-popup-error.png")
    dialog.get_by_label("Credits", exact=True).fill("4")
    dialog.get_by_role("button", name="Save rule").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("sentence-registration")).to_have_text("Customers receive $4.00 when they register.")


def _post_event(live_server, key, body):
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{live_server.url}/api/v1/events", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_events_sent_over_http_show_in_the_events_log_with_the_uncollected_part(page, live_server, shots):
    # given: rules, and a storefront posting events like the README's curl examples
    from credits_admin.apikeys import create_api_key
    from crm.models import Customer
    from ledger import services as ledger_services
    from rules import services
    from tests.rules.conftest import paid, refunded, registered

    _, key = create_api_key(name="storefront")
    services.create_rule(actor=None, method="registration", mode="fixed", amount=300)
    services.create_rule(actor=None, method="paid_order", mode="per_value", amount=500, per_amount=5000)
    assert _post_event(live_server, key, paid("ORD-1", "M100", 12000))[0] == 409  # not registered yet
    assert _post_event(live_server, key, registered("M100", name="Ada Lovelace"))[0] == 200
    assert _post_event(live_server, key, paid("ORD-1", "M100", 12000))[0] == 200
    ledger_services.debit(customer=Customer.objects.get(member_id="M100"), amount=1200, kind="redeem",
                          reason="Checkout", source="api")
    status, answer = _post_event(live_server, key, refunded("ORD-1", 12000))
    assert status == 200 and answer["reclaims"][0]["uncollected"] == 900
    log_in(page, StaffUserFactory(role="Ops"))
    # when
    page.goto("/program/events/")
    # then
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("order.refunded")
    expect(rows.first.locator(".rules-uncollected")).to_have_text("$9.00")
    page.screenshot(path=shots / "events-page.png", full_page=True)
    # when
    rows.first.get_by_role("link").click()
    dialog = page.locator("dialog#modal")
    # then
    expect(dialog.get_by_test_id("reclaims")).to_contain_text("$9.00")
    expect(dialog).to_contain_text("$9.00 of lot")
    page.screenshot(path=shots / "event-popup-refund.png")


def test_per_rule_expiry_spend_tiers_and_deleting_a_rule(page, live_server, shots):
    # given: "all store credits share the same expiry" is off
    from rules import services

    StoreSettings.objects.update_or_create(pk=1, defaults={"credits_enabled": True, "store_name": "Demo Store"})
    services.update_expiry_policy(actor=None, same_expiry_for_all=False)
    log_in(page, StaffUserFactory(role="Store admin"))
    page.goto("/program/rules/")
    expect(page.get_by_text("Each rule has its own expiry.")).to_be_visible()

    # when: a spend-history rule with cumulative tiers and its own expiry of 30 days
    dialog = _open_method(page, "Spend history")
    dialog.get_by_label("Accumulated amount tiers").check()
    expect(dialog.get_by_label("Tier 1: total spend reaches")).to_be_visible()
    dialog.get_by_label("Tier 1: total spend reaches").fill("100")
    dialog.get_by_label("Tier 1: credits").fill("5")
    dialog.get_by_label("Tier 2: total spend reaches").fill("300")
    dialog.get_by_label("Tier 2: credits").fill("15")
    dialog.get_by_label("Valid for a number of days").check()
    dialog.locator("#id_expiry_days").fill("30")
    sentence = ("Customers receive $5.00 when their total spend reaches $100.00 and $15.00 when their total spend "
                "reaches $300.00; each tier is rewarded once.")
    # then: the preview says what the rule and its own expiry will do
    expect(dialog.get_by_test_id("preview")).to_have_text(sentence)
    expect(dialog.get_by_test_id("preview-expiry")).to_have_text("Credits expire 30 days after they are granted.")
    page.screenshot(path=shots / "rule-popup-spend-tiers-own-expiry.png")
    _save(page, dialog, "spend_history", sentence)
    card = page.locator("article[data-method=spend_history]")
    expect(card).to_contain_text("Credits expire 30 days after they are granted.")
    assert AllocationRule.objects.get().expiry_days == 30

    # when: deleting it from the trash icon
    card.get_by_role("link", name="Delete Spend history").click()
    dialog = page.locator("dialog#modal")
    expect(dialog.get_by_role("heading", name="Delete the Spend history rule?")).to_be_visible()
    dialog.get_by_role("button", name="Delete rule").click()
    # then
    expect(dialog).to_be_hidden()
    expect(card.get_by_text("Not set")).to_be_visible()
    assert not AllocationRule.objects.exists()
