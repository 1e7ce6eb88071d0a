"""Every allocation method through storefront events, at its boundaries."""

import datetime as dt

import pytest

from crm.models import Customer, Order
from ledger import clock
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import CreditLot, LedgerEntry
from rules import services
from rules.models import StorefrontEvent

from .conftest import cancelled, paid, refunded, registered

pytestmark = pytest.mark.django_db


def _grants(member_id="M1"):
    return list(LedgerEntry.objects.filter(account__customer__member_id=member_id, kind="grant")
                .order_by("id").values_list("amount", flat=True))


@pytest.fixture
def customer_m1(send):
    assert send(registered("M1")).status_code == 200


# --------------------------------------------------------------------------- first order

def test_first_order_fixed_grants_once_on_the_first_paid_order(send, make_rule, customer_m1):
    # given
    make_rule("first_order", amount=1000)
    # when
    first = send(paid("O1", "M1", 100))
    second = send(paid("O2", "M1", 50000))
    # then
    assert [g["amount"] for g in first.json()["grants"]] == [1000]
    assert second.json()["grants"] == []
    entry = LedgerEntry.objects.get()
    assert entry.idempotency_key == f"grant:first_order:{first.json()['id']}"
    assert entry.order.external_id == "O1"


@pytest.mark.parametrize(("items_total", "expected"), [
    pytest.param(999, [], id="one-unit-below-X"),
    pytest.param(1000, [100], id="exactly-X"),
    pytest.param(2999, [200], id="just-below-3X"),
])
def test_first_order_per_value_grants_y_per_whole_x_of_items(send, make_rule, customer_m1, items_total, expected):
    # given: $1.00 for every $10.00 paid for the items
    make_rule("first_order", mode="per_value", amount=100, per_amount=1000)
    # when
    send(paid("O1", "M1", items_total, paid_amount=items_total + 500))
    # then
    assert _grants() == expected


def test_first_order_counts_an_earlier_paid_order_even_when_refunded(send, make_rule, customer_m1):
    # given
    send(paid("O1", "M1", 5000))
    send(refunded("O1", 5000))
    make_rule("first_order", amount=1000)
    # when
    response = send(paid("O2", "M1", 5000))
    # then
    assert response.json()["grants"] == []


def test_first_order_ignores_an_earlier_order_cancelled_before_payment(send, make_rule, customer_m1):
    # given
    make_rule("first_order", amount=1000)
    send(cancelled("O0", "M1"))
    # when
    response = send(paid("O1", "M1", 5000))
    # then
    assert [g["amount"] for g in response.json()["grants"]] == [1000]


# --------------------------------------------------------------------------- each paid order

@pytest.mark.parametrize(("items_total", "expected"), [
    pytest.param(1999, [], id="one-unit-below-min-spend"),
    pytest.param(2000, [300], id="exactly-min-spend"),
    pytest.param(900000, [300], id="far-above"),
])
def test_paid_order_fixed_with_min_spend(send, make_rule, customer_m1, items_total, expected):
    # given
    make_rule("paid_order", amount=300, min_spend=2000)
    # when
    send(paid("O1", "M1", items_total))
    # then
    assert _grants() == expected


@pytest.mark.parametrize(("items_total", "expected"), [
    pytest.param(1999, [], id="below-min-spend"),
    pytest.param(4999, [], id="min-reached-but-below-X"),
    pytest.param(5000, [500], id="exactly-X"),
    pytest.param(14999, [1000], id="just-below-3X"),
])
def test_paid_order_per_value_with_min_spend(send, make_rule, customer_m1, items_total, expected):
    # given: $5.00 for every $50.00 paid for items in each paid order of at least $20.00
    make_rule("paid_order", mode="per_value", amount=500, per_amount=5000, min_spend=2000)
    # when
    send(paid("O1", "M1", items_total))
    # then
    assert _grants() == expected


def test_paid_order_grants_for_every_paid_order_with_keys_from_the_event(send, make_rule, customer_m1):
    # given
    make_rule("paid_order", amount=300)
    # when
    answers = [send(paid(f"O{n}", "M1", 1000)).json() for n in range(3)]
    # then
    assert _grants() == [300, 300, 300]
    assert set(LedgerEntry.objects.values_list("idempotency_key", flat=True)) == {
        f"grant:paid_order:{a['id']}" for a in answers}


# --------------------------------------------------------------------------- registration

def test_registration_grants_fixed_amount_with_rule_details(send, make_rule):
    # given
    make_rule("registration", amount=500)
    # when
    send(registered("M1"))
    # then
    entry = LedgerEntry.objects.get()
    assert entry.amount == 500 and entry.reason == "Registration reward"
    assert entry.details["rule"] == {"method": "registration", "mode": "fixed", "version": 1, "amount": 500}


# --------------------------------------------------------------------------- order history

def test_order_history_rewards_each_tier_once_when_the_count_is_reached(send, make_rule, customer_m1):
    # given: tier 1 at 2 paid orders, tier 2 at 3
    make_rule("order_history", mode="fixed", tiers=[{"threshold": 2, "amount": 100}, {"threshold": 3, "amount": 300}])
    # when / then: one order below the threshold grants nothing, exactly at it grants the tier
    assert send(paid("O1", "M1", 1000)).json()["grants"] == []
    assert [g["amount"] for g in send(paid("O2", "M1", 1000)).json()["grants"]] == [100]
    assert [g["amount"] for g in send(paid("O3", "M1", 1000)).json()["grants"]] == [300]
    assert send(paid("O4", "M1", 1000)).json()["grants"] == []
    customer_pk = Order.objects.get(external_id="O1").customer_id
    assert sorted(LedgerEntry.objects.values_list("idempotency_key", flat=True)) == [
        f"grant:order_history:tier1:{customer_pk}", f"grant:order_history:tier2:{customer_pk}"]


def test_order_history_tier_is_not_rewarded_twice_even_when_reached_again(send, make_rule, customer_m1):
    # given: the tier was rewarded, then the rule is recreated with the same tier
    rule = make_rule("order_history", tiers=[{"threshold": 1, "amount": 100}])
    send(paid("O1", "M1", 1000))
    services.delete_rule(actor=None, rule=rule)
    make_rule("order_history", tiers=[{"threshold": 1, "amount": 999}, {"threshold": 2, "amount": 200}])
    # when
    answer = send(paid("O2", "M1", 1000)).json()
    # then
    assert _grants() == [100, 200]
    assert [g["tier"] for g in answer["grants"]] == [2]


# --------------------------------------------------------------------------- spend history

def test_spend_every_x_receive_y_carries_the_excess_over(send, make_rule, customer_m1):
    # given: $5.00 every $50.00 spent
    make_rule("spend_history", mode="every", amount=500, per_amount=5000)
    steps = [(3000, []), (1999, []), (1, [500]), (4999, []), (1, [500]), (12000, [1000]), (3000, [500])]
    # when / then
    for n, (items_total, expected) in enumerate(steps):
        answer = send(paid(f"O{n}", "M1", items_total)).json()
        assert [g["amount"] for g in answer["grants"]] == expected, (n, items_total)
    last = LedgerEntry.objects.order_by("-id").first()
    assert last.details["basis"] == {"spend_before": 22000, "spend_after": 25000, "ranges": 1, "carried_over": 0}


def test_spend_every_x_over_many_orders_grants_exactly_floor_of_total(send, make_rule, customer_m1):
    # given
    make_rule("spend_history", mode="every", amount=700, per_amount=3333)
    amounts = [(n * 7919) % 5000 + 1 for n in range(40)]
    # when
    for n, items_total in enumerate(amounts):
        send(paid(f"O{n}", "M1", items_total))
    # then
    assert sum(_grants()) == (sum(amounts) // 3333) * 700


def test_spend_tiers_one_big_order_crosses_two_tiers(send, make_rule, customer_m1):
    # given
    make_rule("spend_history", mode="tiers", tiers=[{"threshold": 10000, "amount": 500},
                                                    {"threshold": 20000, "amount": 1500},
                                                    {"threshold": 50000, "amount": 5000}])
    # when
    big = send(paid("O1", "M1", 25000)).json()
    below = send(paid("O2", "M1", 24999)).json()
    exact = send(paid("O3", "M1", 1)).json()
    # then
    assert [(g["tier"], g["amount"]) for g in big["grants"]] == [(1, 500), (2, 1500)]
    assert below["grants"] == []
    assert [(g["tier"], g["amount"]) for g in exact["grants"]] == [(3, 5000)]
    assert _grants() == [500, 1500, 5000]


# --------------------------------------------------------------------------- the switch

def test_program_off_records_events_and_mirrors_orders_but_grants_nothing(send, make_rule, program_off):
    # given
    make_rule("registration", amount=500)
    make_rule("paid_order", amount=300)
    # when
    reg = send(registered("M1")).json()
    order = send(paid("O1", "M1", 5000)).json()
    # then
    assert reg["program"] == order["program"] == "off"
    assert reg["grants"] == order["grants"] == []
    assert "program is off" in order["notes"][0]
    assert not LedgerEntry.objects.exists()
    assert StorefrontEvent.objects.count() == 2
    assert not StorefrontEvent.objects.filter(program_enabled=True).exists()
    assert Order.objects.get().status == Order.Status.PAID


def test_program_switched_back_on_grants_for_later_events_only(send, make_rule, program_off):
    # given: an order paid while the program was off
    make_rule("paid_order", amount=300)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    # when
    services.update_program_settings(actor=None, credits_enabled=True, store_name="Demo Store", currency="USD",
                                     refund_note="Refunded with store credits.")
    answer = send(paid("O2", "M1", 5000)).json()
    # then
    assert answer["program"] == "on"
    assert _grants() == [300]
    assert LedgerEntry.objects.get().order.external_id == "O2"


def test_program_off_still_lets_customers_redeem_unexpired_credits(send, make_rule, program_off):
    # given: credits granted while on
    services.update_program_settings(actor=None, credits_enabled=True, store_name="Demo Store", currency="USD",
                                     refund_note="Refunded with store credits.")
    make_rule("registration", amount=500)
    send(registered("M1"))
    services.update_program_settings(actor=None, credits_enabled=False, store_name="Demo Store", currency="USD",
                                     refund_note="Refunded with store credits.")
    customer = Customer.objects.get(member_id="M1")
    # when
    ledger_services.debit(customer=customer, amount=200, kind="redeem", reason="Checkout", source="api")
    # then
    assert ledger_selectors.available_balance(customer=customer) == 300


# --------------------------------------------------------------------------- edits and details

def test_rule_edit_applies_to_later_events_and_grants_keep_the_parameters_they_used(send, make_rule, customer_m1):
    # given
    rule = make_rule("paid_order", amount=300, min_spend=1000)
    send(paid("O1", "M1", 5000))
    # when
    services.update_rule(actor=None, rule=rule, mode="fixed", amount=800, min_spend=1000)
    send(paid("O2", "M1", 5000))
    # then
    first, second = LedgerEntry.objects.order_by("id")
    assert (first.amount, second.amount) == (300, 800)
    assert first.details["rule"] == {"method": "paid_order", "mode": "fixed", "version": 1, "amount": 300,
                                     "min_spend": 1000}
    assert second.details["rule"]["version"] == 2 and second.details["rule"]["amount"] == 800
    assert first.details["event"] and first.details["order"] == "O1"


# --------------------------------------------------------------------------- expiry on grants

def test_grant_lot_gets_the_shared_policy_expiry_fixed_at_grant_time(send, make_rule, customer_m1):
    # given
    services.update_expiry_policy(actor=None, same_expiry_for_all=True, expiry_mode="days", expiry_days=30)
    make_rule("paid_order", amount=300)
    moment = dt.datetime(2030, 3, 1, 12, 0, tzinfo=dt.UTC)
    # when
    with clock.posting_at(moment):
        send(paid("O1", "M1", 5000))
    services.update_expiry_policy(actor=None, expiry_mode="never")
    # then: changing the policy later leaves the lot as it was granted
    lot = CreditLot.objects.get()
    assert lot.expires_at == moment + dt.timedelta(days=30)
    assert LedgerEntry.objects.get().details["expiry"] == {"mode": "days", "days": 30, "date": None}


def test_grant_uses_the_rules_own_expiry_when_not_shared(send, make_rule, customer_m1):
    # given
    services.update_expiry_policy(actor=None, same_expiry_for_all=False, expiry_mode="days", expiry_days=30)
    make_rule("paid_order", amount=300, expiry_mode="date", expiry_date=dt.date(2031, 12, 31))
    make_rule("first_order", amount=100, expiry_mode="days", expiry_days=7)
    moment = dt.datetime(2030, 3, 1, 12, 0, tzinfo=dt.UTC)
    # when
    with clock.posting_at(moment):
        send(paid("O1", "M1", 5000))
    # then
    expiries = dict(CreditLot.objects.values_list("amount", "expires_at"))
    assert expiries[300] == dt.datetime(2032, 1, 1, tzinfo=dt.UTC)  # the end of 2031-12-31 (store time zone UTC)
    assert expiries[100] == moment + dt.timedelta(days=7)


def test_fixed_expiry_date_in_the_past_grants_nothing_and_says_why(send, make_rule, customer_m1):
    # given
    services.update_expiry_policy(actor=None, same_expiry_for_all=True, expiry_mode="date",
                                  expiry_date=dt.date(2020, 1, 1))
    make_rule("paid_order", amount=300)
    # when
    answer = send(paid("O1", "M1", 5000)).json()
    # then
    assert answer["grants"] == []
    assert "has passed" in answer["notes"][0]
    assert not LedgerEntry.objects.exists()


def test_absurd_per_value_grant_is_refused_with_a_note_not_an_error(send, make_rule, customer_m1):
    # given
    make_rule("paid_order", mode="per_value", amount=10**14, per_amount=1)
    # when
    response = send(paid("O1", "M1", 10**6))
    # then
    assert response.status_code == 200
    assert "beyond the largest amount" in response.json()["notes"][0]
    assert not LedgerEntry.objects.exists()
