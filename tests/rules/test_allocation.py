"""What each rule grants for the facts of an event, and its plain-words description."""

import pytest

from credits_admin.models import StoreSettings
from rules.allocation import OrderFacts, describe, order_grants, registration_grants
from rules.models import AllocationRule

pytestmark = pytest.mark.django_db


def rule(method, **values):
    return AllocationRule(method=method, **{"mode": "fixed", **values})


def amounts(r, items_total, prev_orders=0, prev_spend=0):
    facts = OrderFacts(items_total=items_total, prev_paid_orders=prev_orders, prev_spend=prev_spend)
    return [g.amount for g in order_grants(r, facts) if g.amount > 0]


def test_registration_grants_its_amount():
    # then
    assert [g.amount for g in registration_grants(rule("registration", amount=300))] == [300]


def test_first_order_only_without_earlier_paid_orders():
    # given
    r = rule("first_order", amount=1000)
    # then
    assert amounts(r, 1) == [1000]
    assert amounts(r, 1, prev_orders=1) == []


def test_paid_order_min_spend_boundary():
    # given
    r = rule("paid_order", amount=300, min_spend=2000)
    # then: one minor unit below, then exactly at the minimum
    assert (amounts(r, 1999), amounts(r, 2000)) == ([], [300])


def test_per_value_counts_whole_multiples_of_x():
    # given
    r = rule("paid_order", mode="per_value", amount=500, per_amount=5000)
    # then
    assert [amounts(r, v) for v in (4999, 5000, 9999, 10000)] == [[], [500], [500], [1000]]


def test_order_history_tier_reached_exactly_once():
    # given
    r = rule("order_history", tiers=[{"threshold": 3, "amount": 100}, {"threshold": 5, "amount": 200}])
    # then: the order that makes the count reach a threshold, and no other
    assert [amounts(r, 10, prev_orders=n) for n in range(6)] == [[], [], [100], [], [200], []]


def test_spend_tiers_big_order_crosses_two_and_boundaries_hold():
    # given
    r = rule("spend_history", mode="tiers", tiers=[{"threshold": 100, "amount": 1}, {"threshold": 200, "amount": 2}])
    # then
    assert amounts(r, 250) == [1, 2]
    assert amounts(r, 99) == []
    assert amounts(r, 1, prev_spend=99) == [1]
    assert amounts(r, 1, prev_spend=100) == []


def test_spend_every_x_carries_the_excess():
    # given
    r = rule("spend_history", mode="every", amount=5, per_amount=100)
    # then
    assert amounts(r, 99) == []
    assert amounts(r, 1, prev_spend=99) == [5]
    assert amounts(r, 250, prev_spend=60) == [15]  # 60 -> 310: three ranges crossed, 10 carried over
    # when
    grant = order_grants(r, OrderFacts(items_total=250, prev_paid_orders=1, prev_spend=60))[0]
    # then
    assert grant.basis == {"spend_before": 60, "spend_after": 310, "ranges": 3, "carried_over": 10}


@pytest.mark.parametrize(("r", "text"), [
    (rule("registration", amount=300), "Customers receive $3.00 when they register."),
    (rule("first_order", amount=1000), "Customers receive $10.00 after their first paid order."),
    (rule("paid_order", amount=200), "Customers receive $2.00 for each paid order."),
    (rule("paid_order", amount=200, min_spend=2000), "Customers receive $2.00 for each paid order of at least $20.00."),
    (rule("order_history", tiers=[{"threshold": 1, "amount": 100}]),
     "Customers receive $1.00 when they reach 1 paid order; each tier is rewarded once."),
    (rule("spend_history", mode="tiers", tiers=[{"threshold": 10000, "amount": 500},
                                                {"threshold": 30000, "amount": 1500},
                                                {"threshold": 90000, "amount": 9000}]),
     "Customers receive $5.00 when their total spend reaches $100.00, $15.00 when their total spend reaches "
     "$300.00 and $90.00 when their total spend reaches $900.00; each tier is rewarded once."),
])
def test_describe_in_plain_words(r, text):
    # then
    assert describe(r) == text


def test_describe_uses_the_store_currency_without_minor_units():
    # given
    StoreSettings.objects.create(pk=1, currency="KRW")
    # then
    assert describe(rule("registration", amount=5000)) == "Customers receive ₩5,000 when they register."
