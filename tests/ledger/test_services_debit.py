import pytest
import time_machine

from ledger import clock, selectors, services
from ledger.models import CreditAccount, EntryKind
from tests.ledger.support import (
    DAY,
    HOUR,
    INVALID_AMOUNTS,
    T0,
    US,
    consumptions_of,
    debit_at,
    entries_of,
    grant_at,
    ledger_state,
    lot_of,
    remaining,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["redeem", "deduct", "cash_refund", "forfeit", "clawback"])
def test_debit_of_each_debit_kind_posts_a_negative_entry(customer, kind):
    # given
    grant_at(T0, customer=customer, amount=1000)
    # when
    entry = debit_at(T0 + HOUR, customer=customer, amount=300, kind=kind)
    # then
    assert (entry.kind, entry.amount, entry.balance_after, entry.created_at) == (kind, -300, 700, T0 + HOUR)
    account = CreditAccount.objects.get(pk=customer.pk)
    assert (account.balance, account.version) == (700, 2)


def test_debit_takes_first_expiring_lots_first_ties_by_id_and_never_expiring_last(customer):
    # given
    never = grant_at(T0, customer=customer, amount=100)
    late = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 10 * DAY)
    early = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 5 * DAY)
    early_twin = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 5 * DAY)
    # when
    entry = debit_at(T0 + HOUR, customer=customer, amount=250)
    # then
    assert consumptions_of(entry) == [(lot_of(early).pk, 100), (lot_of(early_twin).pk, 100),
                                      (lot_of(late).pk, 50)]
    assert remaining(never, late, early, early_twin) == [100, 50, 0, 0]


def test_debit_spends_never_expiring_lots_in_id_order_after_the_dated_ones(customer):
    # given
    never_a = grant_at(T0, customer=customer, amount=100)
    never_b = grant_at(T0, customer=customer, amount=100)
    dated = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 400 * DAY)
    # when
    entry = debit_at(T0 + HOUR, customer=customer, amount=250)
    # then
    assert consumptions_of(entry) == [(lot_of(dated).pk, 100), (lot_of(never_a).pk, 100),
                                      (lot_of(never_b).pk, 50)]
    assert remaining(never_a, never_b, dated) == [0, 50, 0]


def test_debit_a_microsecond_before_expiry_spends_the_lot(customer):
    # given
    lot_entry = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    # when
    entry = debit_at(T0 + DAY - US, customer=customer, amount=100)
    # then
    assert consumptions_of(entry) == [(lot_of(lot_entry).pk, 100)]
    assert selectors.account_balance(customer=customer) == 0


def test_debit_at_the_instant_of_expiry_raises_and_writes_nothing(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    before = ledger_state()
    # when
    with pytest.raises(services.InsufficientCredits) as excinfo:
        debit_at(T0 + DAY, customer=customer, amount=1)
    # then
    assert str(excinfo.value) == "Only 0 available; 1 requested."
    assert (excinfo.value.requested, excinfo.value.available) == (1, 0)
    assert ledger_state() == before


def test_debit_after_expiry_without_a_sweep_expires_the_lot_first(customer):
    # given
    dated = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    never = grant_at(T0, customer=customer, amount=50)
    # when
    entry = debit_at(T0 + 2 * DAY, customer=customer, amount=30)
    # then
    expire, debit = entries_of(customer)[2:]
    assert (expire.kind, expire.amount, expire.balance_after) == (EntryKind.EXPIRE, -100, 50)
    assert (expire.idempotency_key, expire.created_at) == (f"expire:{lot_of(dated).pk}", T0 + 2 * DAY)
    assert consumptions_of(expire) == [(lot_of(dated).pk, 100)]
    assert debit.pk == entry.pk
    assert (debit.amount, debit.balance_after) == (-30, 20)
    assert consumptions_of(debit) == [(lot_of(never).pk, 30)]
    assert selectors.verify_ledger() == []


def test_debit_after_expiry_with_time_machine_clock_never_spends_the_expired_lot(customer):
    # given
    with time_machine.travel(T0, tick=False):
        services.grant(customer=customer, amount=100, reason="promo", expires_at=T0 + DAY)
        services.grant(customer=customer, amount=50, reason="gift")
    # when
    with time_machine.travel(T0 + DAY, tick=False):
        entry = services.debit(customer=customer, amount=50, kind="redeem", reason="checkout")
    # then
    assert entry.balance_after == 0
    assert [e.kind for e in entries_of(customer)] == ["grant", "grant", "expire", "redeem"]


def test_debit_over_the_balance_raises_and_writes_nothing(funded_customer):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InsufficientCredits) as excinfo:
        services.debit(customer=funded_customer, amount=5001, kind="redeem", reason="checkout")
    # then
    assert str(excinfo.value) == "Only 5000 available; 5001 requested."
    assert ledger_state() == before
    assert selectors.available_balance(customer=funded_customer) == 5000


def test_debit_over_what_is_left_after_lazy_expiry_raises_and_writes_not_even_the_expiry(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=50)
    before = ledger_state()
    # when
    with pytest.raises(services.InsufficientCredits) as excinfo:
        debit_at(T0 + DAY, customer=customer, amount=60)
    # then
    assert str(excinfo.value) == "Only 50 available; 60 requested."
    assert ledger_state() == before
    assert selectors.account_balance(customer=customer) == 150  # booked, not yet swept


def test_debit_of_the_whole_balance_leaves_zero(funded_customer):
    # when
    entry = services.debit(customer=funded_customer, amount=5000, kind="cash_refund", reason="payout")
    # then
    assert entry.balance_after == 0
    assert selectors.available_balance(customer=funded_customer) == 0
    assert selectors.verify_ledger() == []


def test_debit_on_first_use_raises_and_creates_no_account(customer):
    # when
    with pytest.raises(services.InsufficientCredits) as excinfo:
        debit_at(T0, customer=customer, amount=1)
    # then
    assert str(excinfo.value) == "Only 0 available; 1 requested."
    assert not CreditAccount.objects.filter(pk=customer.pk).exists()


@pytest.mark.parametrize(("amount", "message"), INVALID_AMOUNTS)
def test_debit_with_invalid_amount_raises_and_writes_nothing(funded_customer, amount, message):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        services.debit(customer=funded_customer, amount=amount, kind="redeem", reason="checkout")
    # then
    assert str(excinfo.value) == message
    assert ledger_state() == before


@pytest.mark.parametrize("kind", ["grant", "expire", "reversal", "refund", "", "REDEEM"])
def test_debit_with_unknown_kind_raises_and_writes_nothing(funded_customer, kind):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        services.debit(customer=funded_customer, amount=10, kind=kind, reason="checkout")
    # then
    assert str(excinfo.value) == (f"{kind!r} is not a debit kind "
                                  "(cash_refund, clawback, deduct, forfeit, redeem).")
    assert ledger_state() == before


def test_debit_with_unknown_source_raises_and_writes_nothing(funded_customer):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        services.debit(customer=funded_customer, amount=10, kind="redeem", reason="checkout", source="web")
    # then
    assert str(excinfo.value) == "Unknown source 'web'."
    assert ledger_state() == before


def test_debit_inside_a_failing_outer_transaction_is_rolled_back_with_it(funded_customer):
    # given
    from django.db import transaction

    before = ledger_state()
    # when
    with pytest.raises(RuntimeError), transaction.atomic():
        services.debit(customer=funded_customer, amount=10, kind="cash_refund", reason="refund")
        raise RuntimeError("the refund request failed after the debit")
    # then
    assert ledger_state() == before


def test_debit_is_posted_at_the_ledger_clock(funded_customer):
    # when
    with clock.posting_at(T0):
        entry = services.debit(customer=funded_customer, amount=10, kind="redeem", reason="checkout")
    # then
    assert entry.created_at == T0
