import pytest

from ledger import clock, selectors, services
from ledger.models import CreditAccount, EntryKind
from tests.factories import OrderFactory
from tests.ledger.support import (
    DAY,
    HOUR,
    INVALID_AMOUNTS,
    T0,
    US,
    entries_of,
    grant_at,
    ledger_state,
    lot_of,
)

pytestmark = pytest.mark.django_db


def test_grant_on_first_use_creates_account_entry_and_lot(customer):
    # given
    assert not CreditAccount.objects.filter(pk=customer.pk).exists()
    order = OrderFactory(customer=customer)
    # when
    entry = grant_at(T0, customer=customer, amount=1234, expires_at=T0 + 30 * DAY, reason="welcome",
                     comment="first", order=order, source="rule", idempotency_key="grant:welcome:1")
    # then
    account = CreditAccount.objects.get(pk=customer.pk)
    assert account.customer_id == customer.pk
    assert (account.balance, account.version) == (1234, 1)
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.GRANT, 1234, 1234)
    assert (entry.created_at, entry.source, entry.reason, entry.comment) == (T0, "rule", "welcome", "first")
    assert (entry.order_id, entry.idempotency_key) == (order.pk, "grant:welcome:1")
    assert entry.account_id == customer.pk
    lot = lot_of(entry)
    assert (lot.amount, lot.remaining, lot.expires_at, lot.created_at) == (1234, 1234, T0 + 30 * DAY, T0)
    assert lot.account_id == customer.pk


def test_grant_without_expiry_creates_a_lot_that_never_expires(customer):
    # when
    entry = grant_at(T0, customer=customer, amount=500)
    # then
    assert lot_of(entry).expires_at is None
    with clock.posting_at(T0 + 36500 * DAY):
        assert selectors.available_balance(customer=customer) == 500


def test_grant_accepts_a_customer_id(customer):
    # when
    entry = grant_at(T0, customer=customer.pk, amount=70)
    # then
    assert entry.account_id == customer.pk
    assert selectors.account_balance(customer=customer) == 70


def test_grant_records_the_actor(customer, staff):
    # given
    agent = staff("Support agent")
    # when
    entry = grant_at(T0, customer=customer, amount=70, actor=agent)
    # then
    entry.refresh_from_db()
    assert entry.actor_id == agent.pk


def test_grants_chain_balance_after_and_bump_version_by_one_each(customer):
    # when
    entries = [grant_at(T0 + i * HOUR, customer=customer, amount=amount)
               for i, amount in enumerate([100, 200, 300])]
    # then
    assert [e.balance_after for e in entries] == [100, 300, 600]
    account = CreditAccount.objects.get(pk=customer.pk)
    assert (account.balance, account.version) == (600, 3)


@pytest.mark.parametrize(("amount", "message"), INVALID_AMOUNTS)
def test_grant_with_invalid_amount_raises_and_writes_nothing(customer, amount, message):
    # given
    grant_at(T0, customer=customer, amount=100)
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        grant_at(T0 + HOUR, customer=customer, amount=amount)
    # then
    assert str(excinfo.value) == message
    assert ledger_state() == before


def test_grant_with_invalid_amount_on_first_use_creates_no_account(customer):
    # when
    with pytest.raises(services.InvalidPosting):
        grant_at(T0, customer=customer, amount=0)
    # then
    assert not CreditAccount.objects.filter(pk=customer.pk).exists()


@pytest.mark.parametrize("expires_at", [T0 - DAY, T0 - US, T0], ids=["a-day-ago", "a-microsecond-ago", "now"])
def test_grant_with_past_expiry_raises_and_writes_nothing(customer, expires_at):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        grant_at(T0, customer=customer, amount=100, expires_at=expires_at)
    # then
    assert str(excinfo.value) == "The expiry must be in the future."
    assert ledger_state() == before
    assert not CreditAccount.objects.filter(pk=customer.pk).exists()


def test_grant_expiring_a_microsecond_from_now_is_accepted(customer):
    # when
    entry = grant_at(T0, customer=customer, amount=100, expires_at=T0 + US)
    # then
    assert lot_of(entry).expires_at == T0 + US
    with clock.posting_at(T0):
        assert selectors.available_balance(customer=customer) == 100
    with clock.posting_at(T0 + US):
        assert selectors.available_balance(customer=customer) == 0


@pytest.mark.parametrize("source", ["storefront", "", "STAFF"])
def test_grant_with_unknown_source_raises_and_writes_nothing(customer, source):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        grant_at(T0, customer=customer, amount=100, source=source)
    # then
    assert str(excinfo.value) == f"Unknown source {source!r}."
    assert ledger_state() == before


def test_grant_after_an_overdue_lot_expires_that_lot_first(customer):
    # given
    old = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    # when
    new = grant_at(T0 + 2 * DAY, customer=customer, amount=40)
    # then
    expire, grant = entries_of(customer)[1:]
    assert (expire.kind, expire.amount, expire.balance_after) == (EntryKind.EXPIRE, -100, 0)
    assert expire.idempotency_key == f"expire:{lot_of(old).pk}"
    assert grant.pk == new.pk
    assert (grant.amount, grant.balance_after) == (40, 40)
    assert lot_of(old).remaining == 0
    assert selectors.verify_ledger() == []


def test_grant_lot_keeps_its_expiry_however_later_lots_are_granted(customer):
    # given
    first = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 10 * DAY)
    # when
    grant_at(T0 + HOUR, customer=customer, amount=100, expires_at=T0 + 2 * DAY)
    grant_at(T0 + 2 * HOUR, customer=customer, amount=100)
    # then
    assert lot_of(first).expires_at == T0 + 10 * DAY
