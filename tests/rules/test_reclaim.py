"""Pro-rata reclaim of what an order earned when it is refunded or cancelled."""

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.models import Customer
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import CreditLot, LedgerEntry, LotConsumption
from rules.models import Reclaim

from .conftest import cancelled, paid, refunded, registered

pytestmark = pytest.mark.django_db
_seq = itertools.count(1)


def _clawed(order_id):
    return -sum(LedgerEntry.objects.filter(order__external_id=order_id, kind="clawback").values_list("amount", flat=True))


def test_partial_refunds_take_back_cumulative_floor_and_a_full_refund_takes_everything(send, make_rule):
    # given: the order earned one lot of 1000 on a 3000 order
    make_rule("paid_order", amount=1000)
    send(registered("M1"))
    send(paid("O1", "M1", 3000))
    lot = CreditLot.objects.get()
    # when / then: 1/3 -> floor(333.3) = 333; 2/3 -> 666 (333 more); all -> 1000 (334 more)
    steps = []
    for cumulative in (1000, 2000, 3000):
        answer = send(refunded("O1", cumulative)).json()
        steps.append([(r["claimed"], r["collected"], r["uncollected"]) for r in answer["reclaims"]])
        assert answer["reclaims"][0]["lot"] == lot.pk
    assert steps == [[(333, 333, 0)], [(333, 333, 0)], [(334, 334, 0)]]
    assert _clawed("O1") == 1000
    assert ledger_selectors.available_balance(customer=Customer.objects.get()) == 0


def test_clawback_uses_the_event_and_lot_in_its_idempotency_key_and_details(send, make_rule):
    # given
    make_rule("paid_order", amount=1000)
    send(registered("M1"))
    send(paid("O1", "M1", 4000))
    lot = CreditLot.objects.get()
    # when
    body = refunded("O1", 1000)
    send(body)
    # then
    entry = LedgerEntry.objects.get(kind="clawback")
    assert entry.idempotency_key == f"clawback:{body['id']}:{lot.pk}"
    assert entry.details | {"event": None} == {"event": None, "lot": lot.pk, "lot_amount": 1000, "refunded": 1000,
                                               "total": 4000, "target": 250, "claimed_before": 0, "claimed": 250}
    assert entry.order.external_id == "O1" and entry.uncollected == 0


def test_each_lot_the_order_earned_is_reclaimed_separately(send, make_rule):
    # given: two rules, two lots on one order of 10000
    make_rule("paid_order", amount=333)
    make_rule("first_order", amount=1001)
    send(registered("M1"))
    send(paid("O1", "M1", 10000))
    # when
    answer = send(refunded("O1", 5000)).json()
    # then
    assert sorted(r["claimed"] for r in answer["reclaims"]) == [166, 500]


def test_refund_when_the_credits_were_spent_records_the_uncollected_part(send, make_rule):
    # given: the customer spent 800 of the 1000 the order earned
    make_rule("paid_order", amount=1000)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    customer = Customer.objects.get()
    ledger_services.debit(customer=customer, amount=800, kind="redeem", reason="Checkout", source="api")
    # when
    answer = send(refunded("O1", 5000)).json()
    # then
    assert answer["reclaims"][0] | {"lot": None, "entry": None} == {
        "lot": None, "entry": None, "claimed": 1000, "collected": 200, "uncollected": 800}
    entry = LedgerEntry.objects.get(kind="clawback")
    assert (entry.amount, entry.uncollected) == (-200, 800)
    assert Reclaim.objects.get().uncollected == 800
    assert ledger_selectors.available_balance(customer=customer) == 0


def test_refund_with_a_zero_balance_writes_no_entry_but_records_uncollected(send, make_rule):
    # given
    make_rule("paid_order", amount=1000)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    ledger_services.debit(customer=Customer.objects.get(), amount=1000, kind="redeem", reason="Checkout", source="api")
    # when
    answer = send(refunded("O1", 2500)).json()
    # then
    assert answer["reclaims"] == [{"lot": CreditLot.objects.get().pk, "entry": None, "claimed": 500,
                                   "collected": 0, "uncollected": 500}]
    assert not LedgerEntry.objects.filter(kind="clawback").exists()
    # when: the rest is refunded, only the remaining target is claimed (uncollected is not chased again)
    answer = send(refunded("O1", 5000)).json()
    # then
    assert [(r["claimed"], r["uncollected"]) for r in answer["reclaims"]] == [(500, 500)]


def test_reclaim_takes_from_the_orders_lot_first_then_first_expiring(send, make_rule):
    # given: an older staff lot expiring soon and the order's never-expiring lot
    make_rule("paid_order", amount=500)
    send(registered("M1"))
    customer = Customer.objects.get()
    soon = ledger_services.grant(customer=customer, amount=1000, reason="Goodwill",
                                 expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    send(paid("O1", "M1", 5000))
    # when
    send(refunded("O1", 5000))
    # then
    entry = LedgerEntry.objects.get(kind="clawback")
    taken = list(LotConsumption.objects.filter(entry=entry).values_list("lot_id", "amount"))
    order_lot = CreditLot.objects.get(entry__order__external_id="O1")
    assert taken == [(order_lot.pk, 500)]
    assert CreditLot.objects.get(entry=soon).remaining == 1000


def test_staff_credits_linked_to_the_order_are_not_reclaimed(send, make_rule):
    # given: a refund with store credits (staff grant on the order) and no rule grant
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    order = Customer.objects.get().orders.get()
    ledger_services.grant(customer=order.customer, amount=700, reason="Refund with store credits", order=order)
    # when
    answer = send(refunded("O1", 5000)).json()
    # then
    assert answer["reclaims"] == []
    assert not LedgerEntry.objects.filter(kind="clawback").exists()


def test_cancelling_a_paid_order_takes_back_everything_it_earned(send, make_rule):
    # given
    make_rule("paid_order", amount=999)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    send(refunded("O1", 1000))  # floor(999 * 1000 / 5000) = 199
    # when
    answer = send(cancelled("O1")).json()
    # then
    assert [r["claimed"] for r in answer["reclaims"]] == [800]
    assert _clawed("O1") == 999
    assert LedgerEntry.objects.get(kind="clawback", amount=-800).reason == "Cancellation of order O1"


def test_older_cumulative_refund_is_stale_and_same_amount_is_unchanged(send, make_rule):
    # given
    make_rule("paid_order", amount=1000)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    send(refunded("O1", 2500))
    # when
    stale = send(refunded("O1", 1000)).json()
    same = send(refunded("O1", 2500)).json()
    # then
    assert (stale["status"], stale["reclaims"]) == ("stale", [])
    assert (same["status"], same["reclaims"]) == ("unchanged", [])
    assert _clawed("O1") == 500


def test_replayed_refund_takes_nothing_more(send, make_rule):
    # given
    make_rule("paid_order", amount=1000)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    body = refunded("O1", 2500)
    first = send(body)
    # when
    again = send(body)
    # then
    assert again.content == first.content
    assert _clawed("O1") == 500


# --------------------------------------------------------------------------- property

def _partition(total, cuts):
    points = sorted({min(max(c, 1), total) for c in cuts} | {total})
    return points  # cumulative refunded amounts, ending with the order's total


@settings(max_examples=40, deadline=None)
@given(total=st.integers(min_value=1, max_value=10**7),
       grants=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=3),
       cuts=st.lists(st.integers(min_value=1, max_value=10**7), max_size=6))
def test_any_refund_sequence_adding_up_to_the_total_takes_back_exactly_what_the_order_earned(
        send, total, grants, cuts):
    # given: an order of `total` that earned one lot per amount in `grants` (staff-made here
    # through the ledger, linked as rule grants would be)
    n = next(_seq)
    member, order_id = f"P{n}", f"PO{n}"
    assert send(registered(member)).status_code == 200
    assert send(paid(order_id, member, total)).status_code == 200
    customer = Customer.objects.get(member_id=member)
    order = customer.orders.get()
    for amount in grants:
        ledger_services.grant(customer=customer, amount=amount, reason="rule", source="rule", order=order)
    earned = sum(grants)
    # when: refunds with cumulative amounts increasing to the total
    taken_so_far = 0
    for cumulative in _partition(total, cuts):
        assert send(refunded(order_id, cumulative)).status_code == 200
        taken = _clawed(order_id)
        # then, at every step: never more than the pro-rata target, and never less
        assert taken == sum(g * cumulative // total for g in grants)
        assert taken >= taken_so_far
        taken_so_far = taken
    # then: a full refund took back exactly what the order earned
    assert taken_so_far == earned
    assert ledger_selectors.available_balance(customer=customer) == 0


@settings(max_examples=30, deadline=None)
@given(total=st.integers(min_value=1, max_value=10**6),
       earned=st.integers(min_value=1, max_value=10**5),
       spent_permille=st.integers(min_value=0, max_value=1000),
       cuts=st.lists(st.integers(min_value=1, max_value=10**6), max_size=5))
def test_refunds_never_take_more_than_earned_and_record_what_the_balance_did_not_allow(
        send, total, earned, spent_permille, cuts):
    # given: the customer already spent part of what the order earned
    n = next(_seq)
    member, order_id = f"Q{n}", f"QO{n}"
    send(registered(member))
    send(paid(order_id, member, total))
    customer = Customer.objects.get(member_id=member)
    ledger_services.grant(customer=customer, amount=earned, reason="rule", source="rule", order=customer.orders.get())
    spent = earned * spent_permille // 1000
    if spent:
        ledger_services.debit(customer=customer, amount=spent, kind="redeem", reason="Checkout", source="api")
    # when
    for cumulative in _partition(total, cuts):
        send(refunded(order_id, cumulative))
    # then
    reclaims = Reclaim.objects.filter(order__external_id=order_id)
    collected = sum(r.collected for r in reclaims)
    uncollected = sum(r.uncollected for r in reclaims)
    assert collected == _clawed(order_id) == earned - spent
    assert collected + uncollected == earned
    assert ledger_selectors.available_balance(customer=customer) == 0
