import pytest

from ledger import clock, selectors, services
from ledger.models import CreditAccount, LedgerEntry
from tests.ledger.support import DAY, HOUR, T0, US, debit_at, grant_at, ledger_state, lot_of

pytestmark = pytest.mark.django_db


def test_available_balance_of_a_customer_without_account_is_zero_and_creates_nothing(customer):
    # when
    balance = selectors.available_balance(customer=customer)
    # then
    assert balance == 0
    assert selectors.account_balance(customer=customer) == 0
    assert not CreditAccount.objects.filter(pk=customer.pk).exists()


def test_account_is_created_on_first_use_with_the_customers_key(customer):
    # when
    grant_at(T0, customer=customer, amount=10)
    # then
    account = CreditAccount.objects.get()
    assert account.pk == customer.pk
    assert customer.credit_account == account


def test_available_balance_now_leaves_out_lots_overdue_but_not_swept_and_writes_nothing(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=50)
    before = ledger_state()
    # when
    with clock.posting_at(T0 + DAY - US):
        just_before = selectors.available_balance(customer=customer)
    with clock.posting_at(T0 + DAY):
        at_expiry = selectors.available_balance(customer=customer)
        booked = selectors.account_balance(customer=customer)
    # then
    assert (just_before, at_expiry, booked) == (150, 50, 150)
    assert ledger_state() == before


def test_available_balance_at_past_moments_around_an_expiry_not_yet_swept(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=50)
    debit_at(T0 + HOUR, customer=customer, amount=30)  # from the dated lot
    # when
    with clock.posting_at(T0 + 5 * DAY):
        balances = [selectors.available_balance(customer=customer, at=moment) for moment in
                    (T0 - US, T0, T0 + HOUR - US, T0 + HOUR, T0 + DAY - US, T0 + DAY, T0 + 4 * DAY)]
    # then
    assert balances == [0, 150, 150, 120, 120, 50, 50]


def test_available_balance_at_past_moments_around_an_expiry_swept_later(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=50)
    debit_at(T0 + HOUR, customer=customer, amount=30)
    services.expire_due(now=T0 + 3 * DAY)
    debit_at(T0 + 4 * DAY, customer=customer, amount=5)
    # when
    balances = [selectors.available_balance(customer=customer, at=moment) for moment in
                (T0 + DAY - US, T0 + DAY, T0 + 3 * DAY - US, T0 + 3 * DAY, T0 + 4 * DAY)]
    # then
    assert balances == [120, 50, 50, 50, 45]


def test_available_balance_at_a_moment_after_a_reversal_restored_an_expired_lot(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=50)
    debit = debit_at(T0 + HOUR, customer=customer, amount=120)
    with clock.posting_at(T0 + 2 * DAY):
        services.reverse(entry=debit)
    # when
    balances = [selectors.available_balance(customer=customer, at=moment) for moment in
                (T0 + HOUR, T0 + DAY, T0 + 2 * DAY)]
    # then
    assert balances == [30, 30, 50]


def test_balance_after_chains_in_id_order_and_version_counts_entries(customer):
    # given
    first = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=300)
    debit = debit_at(T0 + HOUR, customer=customer, amount=150)
    with clock.posting_at(T0 + 2 * HOUR):
        services.reverse(entry=debit)
        services.clawback(customer=customer, amount=20, reason="refund", lot=lot_of(first))
    services.expire_due(now=T0 + DAY)
    with clock.posting_at(T0 + 2 * DAY):
        services.set_balance(customer=customer, target=7, reason="correction")
    # when
    entries = list(LedgerEntry.objects.filter(account_id=customer.pk).order_by("id"))
    # then
    running = 0
    for entry in entries:
        running += entry.amount
        assert entry.balance_after == running
    account = CreditAccount.objects.get(pk=customer.pk)
    assert [e.kind for e in entries] == [
        "grant", "grant", "redeem", "reversal", "clawback", "expire", "deduct"]
    assert (account.balance, account.version) == (7, len(entries))
    assert entries[-1].balance_after == 7


def test_expiring_lots_lists_open_lots_expiring_within_the_window_soonest_first(customer):
    # given
    spent = grant_at(T0, customer=customer, amount=10, expires_at=T0 + DAY)
    debit_at(T0 + HOUR, customer=customer, amount=10)
    later = grant_at(T0 + HOUR, customer=customer, amount=10, expires_at=T0 + 20 * DAY)
    soon = grant_at(T0 + HOUR, customer=customer, amount=10, expires_at=T0 + 2 * DAY)
    grant_at(T0 + HOUR, customer=customer, amount=10, expires_at=T0 + 40 * DAY)  # outside the window
    grant_at(T0 + HOUR, customer=customer, amount=10)  # never expires
    overdue = grant_at(T0 + HOUR, customer=customer, amount=10, expires_at=T0 + 2 * HOUR)
    # when
    lots = list(selectors.expiring_lots(customer=customer, within_days=30, now=T0 + 2 * HOUR))
    # then
    assert lots == [lot_of(soon), lot_of(later)]
    assert (lot_of(spent).remaining, lot_of(overdue).remaining) == (0, 10)
