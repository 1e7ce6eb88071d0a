import pytest

from ledger import clock, selectors, services
from ledger.models import CreditAccount, LedgerEntry
from tests.factories import CustomerFactory
from tests.ledger.support import (
    DAY,
    HOUR,
    T0,
    US,
    consumptions_of,
    debit_at,
    grant_at,
    ledger_state,
    lot_of,
    remaining,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch_calls(monkeypatch):
    """Counts the set-based batches expire_due runs (and lets them run)."""
    calls = []
    real = services._expire_batch

    def spy(accounts, now):
        posted = real(accounts, now)
        calls.append(posted)
        return posted

    monkeypatch.setattr(services, "_expire_batch", spy)
    return calls


def test_expire_due_expires_each_due_lot_with_one_entry_and_returns_the_count(customer):
    # given
    a = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    b = grant_at(T0, customer=customer, amount=200, expires_at=T0 + DAY + HOUR)
    later = grant_at(T0, customer=customer, amount=300, expires_at=T0 + 3 * DAY)
    never = grant_at(T0, customer=customer, amount=50)
    debit_at(T0 + HOUR, customer=customer, amount=30)  # from a
    # when
    posted = services.expire_due(now=T0 + 2 * DAY)
    # then
    assert posted == 2
    expiries = list(LedgerEntry.objects.filter(account_id=customer.pk, kind="expire").order_by("id"))
    assert [(e.amount, e.balance_after, e.idempotency_key, e.source, e.created_at) for e in expiries] == [
        (-70, 550, f"expire:{lot_of(a).pk}", "system", T0 + 2 * DAY),
        (-200, 350, f"expire:{lot_of(b).pk}", "system", T0 + 2 * DAY),
    ]
    assert consumptions_of(expiries[0]) == [(lot_of(a).pk, 70)]
    assert consumptions_of(expiries[1]) == [(lot_of(b).pk, 200)]
    assert remaining(a, b, later, never) == [0, 0, 300, 50]
    account = CreditAccount.objects.get(pk=customer.pk)
    assert (account.balance, account.version) == (350, 7)
    assert selectors.verify_ledger() == []


def test_expire_due_expires_a_lot_at_the_instant_of_its_expiry_not_a_microsecond_before(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    # when
    early = services.expire_due(now=T0 + DAY - US)
    on_time = services.expire_due(now=T0 + DAY)
    # then
    assert (early, on_time) == (0, 1)
    assert selectors.account_balance(customer=customer) == 0


def test_expire_due_without_now_uses_the_ledger_clock(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    # when
    with clock.posting_at(T0 + DAY):
        posted = services.expire_due()
    # then
    assert posted == 1
    assert LedgerEntry.objects.get(kind="expire").created_at == T0 + DAY


def test_expire_due_run_twice_expires_each_lot_once(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    services.expire_due(now=T0 + 2 * DAY)
    before = ledger_state()
    # when
    posted = services.expire_due(now=T0 + 3 * DAY)
    # then
    assert posted == 0
    assert ledger_state() == before


def test_expire_due_skips_spent_lots_and_lots_already_expired_lazily(customer):
    # given
    spent = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    lazy = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY + HOUR)
    grant_at(T0, customer=customer, amount=100)
    debit_at(T0 + HOUR, customer=customer, amount=100)  # all of `spent`
    debit_at(T0 + 2 * DAY, customer=customer, amount=10)  # expires `lazy` first
    before = ledger_state()
    # when
    posted = services.expire_due(now=T0 + 3 * DAY)
    # then
    assert posted == 0
    assert ledger_state() == before
    assert LedgerEntry.objects.filter(kind="expire").get().idempotency_key == f"expire:{lot_of(lazy).pk}"
    assert not LedgerEntry.objects.filter(idempotency_key=f"expire:{lot_of(spent).pk}").exists()


def test_expire_due_with_nothing_due_returns_zero_and_writes_nothing(funded_customer):
    # given
    before = ledger_state()
    # when
    posted = services.expire_due()
    # then
    assert posted == 0
    assert ledger_state() == before


def test_expire_due_works_in_batches_across_accounts(batch_calls):
    # given
    customers = CustomerFactory.create_batch(7)
    for customer in customers:
        grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
        grant_at(T0, customer=customer, amount=5)
    # when
    posted = services.expire_due(now=T0 + DAY, batch_size=2)
    # then
    assert posted == 7
    assert batch_calls == [2, 2, 2, 1]
    assert [selectors.account_balance(customer=c) for c in customers] == [5] * 7
    assert selectors.verify_ledger() == []


def test_expire_due_of_many_lots_of_one_account_chains_their_balances(customer, batch_calls):
    # given
    grants = [grant_at(T0, customer=customer, amount=10 * (i + 1), expires_at=T0 + DAY + i * HOUR)
              for i in range(7)]
    grant_at(T0, customer=customer, amount=1)
    # when
    posted = services.expire_due(now=T0 + 2 * DAY, batch_size=2)
    # then
    assert posted == 7
    assert sum(batch_calls) == 7
    expiries = LedgerEntry.objects.filter(kind="expire").order_by("id")
    assert [(e.amount, e.balance_after) for e in expiries] == [
        (-10, 271), (-20, 251), (-30, 221), (-40, 181), (-50, 131), (-60, 71), (-70, 1)]
    assert [e.idempotency_key for e in expiries] == [f"expire:{lot_of(g).pk}" for g in grants]
    assert CreditAccount.objects.get(pk=customer.pk).version == 15
    assert selectors.verify_ledger() == []


def test_expire_due_interrupted_halfway_then_run_again_expires_every_lot_exactly_once(monkeypatch):
    # given
    customers = CustomerFactory.create_batch(7)
    for customer in customers:
        grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    real = services._expire_batch
    calls = []

    def crash_on_second_batch(accounts, now):
        calls.append(len(accounts))
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(accounts, now)

    monkeypatch.setattr(services, "_expire_batch", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        services.expire_due(now=T0 + DAY, batch_size=2)
    assert LedgerEntry.objects.filter(kind="expire").count() == 2
    monkeypatch.setattr(services, "_expire_batch", real)
    # when
    posted = services.expire_due(now=T0 + DAY, batch_size=2)
    # then
    assert posted == 5
    keys = sorted(LedgerEntry.objects.filter(kind="expire").values_list("idempotency_key", flat=True))
    assert keys == sorted(f"expire:{lot_of(e).pk}" for e in LedgerEntry.objects.filter(kind="grant"))
    assert selectors.verify_ledger() == []


def test_sweep_entries_match_lazy_expiry_entries_field_for_field():
    """The PostgreSQL sweep writes its batch in one SQL statement; its entries must be the
    ones the ORM path (lazy expiry in a posting) writes: same key, fingerprint and details,
    microseconds in the expiry included."""
    # given
    swept, lazy = CustomerFactory(), CustomerFactory()
    expiry = T0 + DAY + 123456 * US
    lots = [lot_of(grant_at(T0, customer=c, amount=700, expires_at=expiry)) for c in (swept, lazy)]
    # when
    grant_at(T0 + 2 * DAY, customer=lazy, amount=5)  # the posting expires the overdue lot first
    with clock.posting_at(T0 + 2 * DAY):
        services.expire_due()
    lazy_lot_entry = LedgerEntry.objects.get(idempotency_key=f"expire:{lots[1].pk}")
    swept_entry = LedgerEntry.objects.get(idempotency_key=f"expire:{lots[0].pk}")
    # then
    for entry, lot in ((swept_entry, lots[0]), (lazy_lot_entry, lots[1])):
        assert entry.kind == "expire" and entry.amount == -700 and entry.source == "system"
        assert entry.details == {"lot": lot.pk, "expires_at": expiry.isoformat()}
        assert entry.fingerprint == services._fingerprint("expire", lot=lot.pk, key=f"expire:{lot.pk}")
    assert swept_entry.balance_after == 0 and lazy_lot_entry.balance_after == 0
    assert selectors.verify_ledger() == []
