import pytest

from ledger import clock, selectors, services
from ledger.models import EntryKind
from tests.factories import OrderFactory
from tests.ledger.support import (
    DAY,
    HOUR,
    INVALID_AMOUNTS,
    T0,
    consumptions_of,
    debit_at,
    entries_of,
    grant_at,
    ledger_state,
    lot_of,
    remaining,
)

pytestmark = pytest.mark.django_db


def clawback_at(moment, *, customer, amount, **kwargs):
    with clock.posting_at(moment):
        return services.clawback(customer=customer, amount=amount,
                                 reason=kwargs.pop("reason", "order refunded"), **kwargs)


def test_clawback_takes_from_the_named_lot_first_then_first_expiring_first(customer):
    # given
    soon = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    later = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 5 * DAY)
    earned = grant_at(T0, customer=customer, amount=100)
    order = OrderFactory(customer=customer)
    # when
    entry = clawback_at(T0 + HOUR, customer=customer, amount=150, lot=lot_of(earned), order=order,
                        idempotency_key=f"clawback:r1:{lot_of(earned).pk}")
    # then
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.CLAWBACK, -150, 150)
    assert entry.uncollected == 0
    assert (entry.source, entry.order_id) == ("rule", order.pk)
    assert consumptions_of(entry) == [(lot_of(earned).pk, 100), (lot_of(soon).pk, 50)]
    assert remaining(soon, later, earned) == [50, 100, 0]


def test_clawback_accepts_the_lot_by_id(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    earned = grant_at(T0, customer=customer, amount=100)
    # when
    entry = clawback_at(T0 + HOUR, customer=customer, amount=30, lot=lot_of(earned).pk)
    # then
    assert consumptions_of(entry) == [(lot_of(earned).pk, 30)]


def test_clawback_from_an_already_spent_lot_takes_first_expiring_first(customer):
    # given
    earned = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    other = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 2 * DAY)
    debit_at(T0 + HOUR, customer=customer, amount=100)  # all of `earned`
    # when
    entry = clawback_at(T0 + 2 * HOUR, customer=customer, amount=40, lot=lot_of(earned))
    # then
    assert consumptions_of(entry) == [(lot_of(other).pk, 40)]


def test_clawback_never_expired_credits_from_an_overdue_named_lot(customer):
    # given
    earned = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    other = grant_at(T0, customer=customer, amount=100)
    # when
    entry = clawback_at(T0 + DAY, customer=customer, amount=40, lot=lot_of(earned))
    # then
    assert consumptions_of(entry) == [(lot_of(other).pk, 40)]
    assert [e.kind for e in entries_of(customer)] == ["grant", "grant", "expire", "clawback"]
    assert remaining(earned, other) == [0, 60]


def test_clawback_over_the_balance_takes_what_is_there_and_records_the_rest_uncollected(customer):
    # given
    grant_at(T0, customer=customer, amount=100)
    # when
    entry = clawback_at(T0 + HOUR, customer=customer, amount=250)
    # then
    assert (entry.amount, entry.balance_after, entry.uncollected) == (-100, 0, 150)
    assert selectors.available_balance(customer=customer, at=T0 + HOUR) == 0
    assert selectors.verify_ledger() == []


def test_clawback_with_zero_balance_returns_none_and_writes_nothing(customer):
    # given
    grant_at(T0, customer=customer, amount=100)
    debit_at(T0 + HOUR, customer=customer, amount=100)
    before = ledger_state()
    # when
    entry = clawback_at(T0 + 2 * HOUR, customer=customer, amount=50)
    # then
    assert entry is None
    assert ledger_state() == before


@pytest.mark.parametrize(("amount", "message"), INVALID_AMOUNTS)
def test_clawback_with_invalid_amount_raises_and_writes_nothing(funded_customer, amount, message):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        services.clawback(customer=funded_customer, amount=amount, reason="order refunded")
    # then
    assert str(excinfo.value) == message
    assert ledger_state() == before
