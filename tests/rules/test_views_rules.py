"""The allocation rules page and its pop-ups: permissions, validation, preview, back-test."""

import datetime as dt
import json

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credits_admin.models import AuditEvent, StoreSettings
from credits_admin.roles import ROLE_NAMES
from crm.models import Customer, Order
from ledger.models import LedgerEntry
from rules import services
from rules.allocation import describe
from rules.exceptions import DuplicateRule
from rules.models import AllocationRule, ProgramSettings, StorefrontEvent
from rules.selectors import backtest
from tests.factories import CustomerFactory, OrderFactory

from .conftest import paid, registered

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}

VALID = {
    "first_order": ({"mode": "per_value", "amount": "1.00", "per_amount": "10.00"},
                    "Customers receive $1.00 for every $10.00 paid for items in their first paid order."),
    "paid_order": ({"mode": "per_value", "amount": "5", "per_amount": "50", "min_spend": "20"},
                   "Customers receive $5.00 for every $50.00 paid for items in each paid order of at least $20.00."),
    "registration": ({"amount": "3.00"}, "Customers receive $3.00 when they register."),
    "order_history": ({"tier_1_threshold": "3", "tier_1_amount": "5", "tier_2_threshold": "10", "tier_2_amount": "20"},
                      "Customers receive $5.00 when they reach 3 paid orders and $20.00 when they reach 10 paid "
                      "orders; each tier is rewarded once."),
    "spend_history": ({"mode": "every", "amount": "5", "per_amount": "100"},
                      "Customers receive $5.00 for every $100.00 they spend in paid orders; any excess carries over "
                      "to the next $100.00."),
}


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff("Store admin"))
    return client


def _nothing_written():
    return {"rules": AllocationRule.objects.count(), "audit": AuditEvent.objects.count(),
            "entries": LedgerEntry.objects.count()}


# --------------------------------------------------------------------------- permissions

@pytest.mark.parametrize("role", ROLE_NAMES)
def test_rule_list_shows_actions_only_to_roles_that_may_use_them(client, staff, make_rule, role):
    # given
    rule = make_rule("registration", amount=100)
    client.force_login(staff(role))
    # when
    response = client.get(reverse("rules:rule_list"))
    # then
    can_view = role in ("Store admin", "Ops")
    assert response.status_code == (200 if can_view else 403)
    if can_view:
        html = response.content.decode()
        assert "Customers receive $1.00 when they register." in html
        can_edit = role == "Store admin"
        assert ("Add allocation rule" in html) is can_edit
        assert (reverse("rules:rule_edit", args=[rule.pk]) in html) is can_edit
        assert (reverse("rules:rule_delete", args=[rule.pk]) in html) is can_edit


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize("action", ["add", "edit", "delete", "preview", "backtest"])
def test_rule_popups_are_for_store_admins_only(client, staff, make_rule, role, action):
    # given
    rule = make_rule("registration", amount=100)
    client.force_login(staff(role))
    url = {"add": reverse("rules:rule_add") + "?method=first_order", "edit": reverse("rules:rule_edit", args=[rule.pk]),
           "delete": reverse("rules:rule_delete", args=[rule.pk]), "preview": reverse("rules:rule_preview"),
           "backtest": reverse("rules:rule_backtest")}[action]
    # when
    if action in ("preview", "backtest"):
        response = client.post(url, {"method": "registration", "amount": "1"}, headers=HX)
    else:
        response = client.get(url, headers=HX)
    # then
    assert response.status_code == (200 if role == "Store admin" else 403)


# --------------------------------------------------------------------------- add

def test_add_popup_without_method_offers_the_five_methods_with_used_ones_disabled(admin_client, make_rule):
    # given
    make_rule("registration", amount=100)
    # when
    response = admin_client.get(reverse("rules:rule_add"), headers=HX)
    # then
    html = response.content.decode()
    assert "<html" not in html
    for method in ("first_order", "paid_order", "order_history", "spend_history"):
        assert f"?method={method}" in html
    assert "?method=registration" not in html
    assert "Already set up" in html


@pytest.mark.parametrize("method", list(VALID))
def test_add_each_method_in_the_popup_closes_it_and_announces_the_change(admin_client, method):
    # given
    data, sentence = VALID[method]
    # when
    response = admin_client.post(reverse("rules:rule_add"), {"method": method, **data}, headers=HX)
    # then
    assert response.status_code == 204
    assert set(json.loads(response["HX-Trigger"])) == {"closeModal", "rulesChanged", "showMessage"}
    rule = AllocationRule.objects.get(method=method)
    assert describe(rule) == sentence
    event = AuditEvent.objects.get(action="rules.rule_added")
    assert event.after["method"] == method and event.target_id == str(rule.pk)


def test_add_without_htmx_redirects_to_the_rules_page(admin_client):
    # when
    response = admin_client.post(reverse("rules:rule_add"), {"method": "registration", "amount": "2"})
    # then
    assert response.status_code == 302 and response["Location"] == reverse("rules:rule_list")
    assert AllocationRule.objects.get().amount == 200


def test_add_a_second_rule_for_a_method_is_refused_with_a_message(admin_client, make_rule):
    # given
    make_rule("registration", amount=100)
    before = _nothing_written()
    # when
    response = admin_client.post(reverse("rules:rule_add"), {"method": "registration", "amount": "2"}, headers=HX)
    # then
    assert response.status_code == 200
    assert "There is already a rule for this method; edit it instead." in response.content.decode()
    assert _nothing_written() == before


def test_database_allows_one_rule_per_method(make_rule):
    # given
    make_rule("registration", amount=100)
    # when / then
    with pytest.raises(DuplicateRule):
        services.create_rule(actor=None, method="registration", mode="fixed", amount=200)
    with pytest.raises(IntegrityError), transaction.atomic():
        AllocationRule.objects.create(method="registration", amount=300)


@pytest.mark.parametrize(("method", "data", "field", "message"), [
    ("registration", {"amount": ""}, "amount", "Enter the amount of credits, greater than zero."),
    ("registration", {"amount": "0"}, "amount", "Enter an amount greater than zero."),
    ("registration", {"amount": "-5"}, "amount", "Enter a positive amount."),
    ("registration", {"amount": "five"}, "amount", "Enter a number, such as 12.50."),
    ("registration", {"amount": "1.234"}, "amount", "Use at most 2 decimal places."),
    ("registration", {"amount": "99999999999999"}, "amount", "That amount is too large."),
    ("first_order", {"mode": "per_value", "amount": "1"}, "per_amount", "Enter the amount X, greater than zero."),
    ("first_order", {"mode": "per_value", "amount": "1", "per_amount": "0"}, "per_amount",
     "Enter an amount greater than zero."),
    ("first_order", {"mode": "bogus", "amount": "1"}, "mode", "Select a valid choice."),
    ("paid_order", {"mode": "fixed", "amount": "1", "min_spend": "-1"}, "min_spend", "Enter a positive amount."),
    ("spend_history", {"mode": "every", "amount": "5"}, "per_amount", "Enter the amount X, greater than zero."),
    ("order_history", {}, "tier_1_threshold", "Add at least one tier."),
    ("order_history", {"tier_1_threshold": "5", "tier_1_amount": "1", "tier_2_threshold": "3", "tier_2_amount": "2"},
     "tier_2_threshold", "Thresholds must increase: 3 is not more than the tier before (5)."),
    ("order_history", {"tier_1_threshold": "5", "tier_1_amount": "1", "tier_2_threshold": "5", "tier_2_amount": "2"},
     "tier_2_threshold", "Thresholds must increase: 5 is not more than the tier before (5)."),
    ("order_history", {"tier_1_threshold": "0", "tier_1_amount": "1"}, "tier_1_threshold", "Enter at least 1 order."),
    ("order_history", {"tier_1_threshold": "2"}, "tier_1_amount", "Enter this tier's credits, greater than zero."),
    ("order_history", {"tier_1_amount": "2"}, "tier_1_threshold", "Enter this tier's threshold."),
    ("order_history", {"tier_1_threshold": "2", "tier_1_amount": "1", "tier_3_threshold": "4", "tier_3_amount": "1"},
     "tier_3_threshold", "Fill tier 2 first"),
    ("spend_history", {"mode": "tiers", "tier_1_threshold": "100", "tier_1_amount": "5", "tier_2_threshold": "99.99",
                       "tier_2_amount": "10"},
     "tier_2_threshold", "Thresholds must increase: $99.99 is not more than the tier before ($100.00)."),
    ("spend_history", {"mode": "tiers", "tier_1_threshold": "100", "tier_1_amount": "0"}, "tier_1_amount",
     "Enter an amount greater than zero."),
])
def test_invalid_rule_shows_the_message_next_to_the_field_and_writes_nothing(admin_client, method, data, field,
                                                                             message):
    # given
    before = _nothing_written()
    # when
    response = admin_client.post(reverse("rules:rule_add"), {"method": method, **data}, headers=HX)
    # then
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors[field])
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert _nothing_written() == before


def test_per_rule_expiry_fields_appear_and_are_validated_when_expiry_is_not_shared(admin_client):
    # given
    services.update_expiry_policy(actor=None, same_expiry_for_all=False)
    # when
    bad = admin_client.post(reverse("rules:rule_add"), {"method": "registration", "amount": "1",
                                                        "expiry_mode": "date", "expiry_date": "2001-01-01"}, headers=HX)
    good = admin_client.post(reverse("rules:rule_add"), {"method": "registration", "amount": "1",
                                                         "expiry_mode": "days", "expiry_days": "14"}, headers=HX)
    # then
    assert "Pick a date after today." in bad.content.decode()
    assert good.status_code == 204
    rule = AllocationRule.objects.get()
    assert (rule.expiry_mode, rule.expiry_days) == ("days", 14)


def test_amounts_follow_the_store_currency_exponent(admin_client):
    # given
    StoreSettings.objects.update_or_create(pk=1, defaults={"currency": "KRW"})
    # when
    fraction = admin_client.post(reverse("rules:rule_add"), {"method": "registration", "amount": "1.5"}, headers=HX)
    whole = admin_client.post(reverse("rules:rule_add"), {"method": "registration", "amount": "1,000"}, headers=HX)
    # then
    assert "This currency has no fractional units; enter a whole number." in fraction.content.decode()
    assert whole.status_code == 204
    assert AllocationRule.objects.get().amount == 1000


# --------------------------------------------------------------------------- preview

def test_preview_renders_the_rule_as_edited_in_plain_words(admin_client):
    # when
    response = admin_client.post(reverse("rules:rule_preview"), {"method": "paid_order", **VALID["paid_order"][0]},
                                 headers=HX)
    # then
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="rule-preview"')
    assert VALID["paid_order"][1] in html
    assert "Credits never expire." in html


def test_preview_of_an_incomplete_rule_lists_what_is_missing(admin_client):
    # when
    response = admin_client.post(reverse("rules:rule_preview"),
                                 {"method": "order_history", "tier_1_threshold": "5", "tier_1_amount": "1",
                                  "tier_2_threshold": "4", "tier_2_amount": "1"}, headers=HX)
    # then
    html = response.content.decode()
    assert "Complete the rule to see what it will do" in html
    assert "Thresholds must increase: 4 is not more than the tier before (5)." in html
    assert not AllocationRule.objects.exists()


def test_preview_for_an_edited_rule_uses_its_method(admin_client, make_rule):
    # given
    rule = make_rule("registration", amount=100)
    # when
    response = admin_client.post(reverse("rules:rule_preview"), {"rule": rule.pk, "amount": "7"}, headers=HX)
    # then
    assert "Customers receive $7.00 when they register." in response.content.decode()
    assert AllocationRule.objects.get().amount == 100


def test_preview_with_unknown_method_or_rule_answers_404(admin_client):
    # then
    assert admin_client.post(reverse("rules:rule_preview"), {"method": "nope"}).status_code == 404
    assert admin_client.post(reverse("rules:rule_preview"), {"rule": "999"}).status_code == 404


# --------------------------------------------------------------------------- edit / delete

def test_edit_popup_shows_current_values_and_saving_bumps_the_version_with_an_audit(admin_client, make_rule):
    # given
    rule = make_rule("paid_order", mode="per_value", amount=500, per_amount=5000, min_spend=2000)
    # when
    page = admin_client.get(reverse("rules:rule_edit", args=[rule.pk]), headers=HX)
    response = admin_client.post(reverse("rules:rule_edit", args=[rule.pk]),
                                 {"mode": "per_value", "amount": "6.00", "per_amount": "50.00", "min_spend": "20.00"},
                                 headers=HX)
    # then
    assert 'value="5.00"' in page.content.decode() and 'value="50.00"' in page.content.decode()
    assert VALID["paid_order"][1] in page.content.decode()
    assert response.status_code == 204
    rule.refresh_from_db()
    assert (rule.amount, rule.version) == (600, 2)
    event = AuditEvent.objects.get(action="rules.rule_changed")
    assert (event.before, event.after) == ({"amount": 500}, {"amount": 600})


def test_edit_without_changes_writes_nothing(admin_client, make_rule):
    # given
    rule = make_rule("registration", amount=100)
    before = _nothing_written()
    # when
    response = admin_client.post(reverse("rules:rule_edit", args=[rule.pk]), {"amount": "1.00"}, headers=HX)
    # then
    assert response.status_code == 204
    assert _nothing_written() == before
    rule.refresh_from_db()
    assert rule.version == 1


def test_invalid_edit_shows_the_message_and_keeps_the_rule(admin_client, make_rule):
    # given
    rule = make_rule("registration", amount=100)
    # when
    response = admin_client.post(reverse("rules:rule_edit", args=[rule.pk]), {"amount": "0"}, headers=HX)
    # then
    assert "Enter an amount greater than zero." in response.content.decode()
    rule.refresh_from_db()
    assert (rule.amount, rule.version) == (100, 1)
    assert not AuditEvent.objects.filter(action="rules.rule_changed").exists()


def test_delete_popup_confirms_then_deletes_with_an_audit(admin_client, make_rule):
    # given
    rule = make_rule("registration", amount=100)
    # when
    confirm = admin_client.get(reverse("rules:rule_delete", args=[rule.pk]), headers=HX)
    response = admin_client.post(reverse("rules:rule_delete", args=[rule.pk]), headers=HX)
    # then
    assert "Delete the Registration rule?" in confirm.content.decode()
    assert response.status_code == 204
    assert "rulesChanged" in json.loads(response["HX-Trigger"])
    assert not AllocationRule.objects.exists()
    event = AuditEvent.objects.get(action="rules.rule_deleted")
    assert event.before["amount"] == 100


# --------------------------------------------------------------------------- back-test

@pytest.fixture
def history(send):
    """Three customers' paid orders sent as events over the last days (all within 90 days)."""
    for member in ("A", "B", "C"):
        send(registered(member))
    plan = {"A": [3000, 2500, 6000, 100], "B": [12000], "C": [1999, 2000, 50000]}
    for member, amounts in plan.items():
        for n, items_total in enumerate(amounts):
            send(paid(f"{member}{n}", member, items_total))
    return plan


@pytest.mark.parametrize(("method", "values"), [
    ("first_order", {"mode": "per_value", "amount": 100, "per_amount": 1000}),
    ("paid_order", {"mode": "per_value", "amount": 500, "per_amount": 5000, "min_spend": 2000}),
    ("paid_order", {"mode": "fixed", "amount": 300, "min_spend": 2000}),
    ("order_history", {"tiers": [{"threshold": 2, "amount": 100}, {"threshold": 3, "amount": 300}]}),
    ("spend_history", {"mode": "every", "amount": 500, "per_amount": 5000}),
    ("spend_history", {"mode": "tiers", "tiers": [{"threshold": 5000, "amount": 100},
                                                  {"threshold": 10000, "amount": 700}]}),
])
def test_backtest_matches_what_the_engine_grants_for_the_same_orders(send, method, values):
    # given: the rule is created first, then the orders flow through the engine
    rule = services.create_rule(actor=None, method=method, **{"mode": "fixed", **values})
    for member in ("A", "B", "C"):
        send(registered(member))
    for member, amounts in {"A": [3000, 2500, 6000, 100], "B": [12000], "C": [1999, 2000, 50000]}.items():
        for n, items_total in enumerate(amounts):
            send(paid(f"{member}{n}", member, items_total))
    granted = list(LedgerEntry.objects.filter(kind="grant").values_list("amount", "account_id"))
    # when
    result = backtest(rule)
    # then
    assert result["amount"] == sum(a for a, _ in granted)
    assert result["grants"] == len(granted)
    assert result["customers"] == len({c for _, c in granted})
    assert result["orders"] == 8


def test_backtest_counts_history_before_the_window_and_ignores_older_orders():
    # given: a customer whose first paid order is older than 90 days
    now = timezone.now()
    old = CustomerFactory()
    OrderFactory(customer=old, placed_at=now - dt.timedelta(days=120), items_total=5000)
    OrderFactory(customer=old, placed_at=now - dt.timedelta(days=10), items_total=5000)
    new = CustomerFactory()
    OrderFactory(customer=new, placed_at=now - dt.timedelta(days=5), items_total=5000)
    rule = AllocationRule(method="first_order", mode="fixed", amount=1000)
    # when
    result = backtest(rule)
    # then
    assert (result["amount"], result["grants"], result["customers"], result["orders"]) == (1000, 1, 1, 2)


def test_backtest_of_registration_counts_recent_registrations():
    # given
    now = timezone.now()
    CustomerFactory(registered_at=now - dt.timedelta(days=3))
    CustomerFactory(registered_at=now - dt.timedelta(days=30))
    CustomerFactory(registered_at=now - dt.timedelta(days=200))
    # when
    result = backtest(AllocationRule(method="registration", amount=250))
    # then
    assert (result["amount"], result["customers"]) == (500, 2)


def test_backtest_popup_shows_the_result_and_writes_nothing(admin_client, history):
    # given
    counts = {m: m.objects.count() for m in (AllocationRule, AuditEvent, LedgerEntry, StorefrontEvent, Order,
                                               Customer, ProgramSettings, StoreSettings)}
    # when
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.post(reverse("rules:rule_backtest"),
                                     {"method": "paid_order", **VALID["paid_order"][0]}, headers=HX)
    # then
    html = response.content.decode()
    assert response.status_code == 200 and 'id="rule-backtest"' in html
    # 12000 -> 2 x $5, 6000 -> 1, 50000 -> 10, 2000 -> 0, 2500 -> 0, 3000 -> 0: $65.00 in 3 grants to 3 customers
    assert "would have granted <strong>$65.00</strong> in 3 grants to 3 customers (8 paid orders looked at)" in html
    assert {m: m.objects.count() for m in counts} == counts
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == [] or all("django_session" in sql for sql in writes)


def test_backtest_of_an_invalid_rule_asks_to_complete_it(admin_client):
    # when
    response = admin_client.post(reverse("rules:rule_backtest"), {"method": "registration", "amount": ""}, headers=HX)
    # then
    assert "Complete the rule first" in response.content.decode()
