import pytest

from ledger import clock, selectors, services
from ledger.models import EntryKind, LedgerEntry
from tests.ledger.support import (
    DAY,
    HOUR,
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


def reverse_at(moment, *, entry, **kwargs):
    with clock.posting_at(moment):
        return services.reverse(entry=entry, **kwargs)


def test_reverse_of_a_debit_puts_the_amount_back_into_the_very_lots_it_came_from(customer, staff):
    # given
    a = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 5 * DAY)
    b = grant_at(T0, customer=customer, amount=100, expires_at=T0 + 10 * DAY)
    c = grant_at(T0, customer=customer, amount=100)
    debit = debit_at(T0 + HOUR, customer=customer, amount=150, kind="cash_refund")
    sooner = grant_at(T0 + 2 * HOUR, customer=customer, amount=100, expires_at=T0 + 2 * DAY)
    agent = staff("Support agent")
    # when
    reversal = reverse_at(T0 + 3 * HOUR, entry=debit, actor=agent, comment="payout failed")
    # then
    assert (reversal.kind, reversal.amount, reversal.balance_after) == (EntryKind.REVERSAL, 150, 400)
    assert (reversal.reverses_id, reversal.actor_id, reversal.source) == (debit.pk, agent.pk, "staff")
    assert reversal.comment == "payout failed"
    assert consumptions_of(reversal) == [(lot_of(a).pk, -100), (lot_of(b).pk, -50)]
    assert remaining(a, b, c, sooner) == [100, 100, 100, 100]
    assert selectors.verify_ledger() == []


def test_reverse_accepts_an_entry_id_and_without_actor_is_a_system_entry(funded_customer):
    # given
    debit = services.debit(customer=funded_customer, amount=100, kind="redeem", reason="checkout")
    # when
    reversal = services.reverse(entry=debit.pk)
    # then
    assert (reversal.reverses_id, reversal.source, reversal.actor_id) == (debit.pk, "system", None)
    assert selectors.available_balance(customer=funded_customer) == 5000


def test_reverse_of_a_debit_from_a_lot_expired_meanwhile_expires_it_again_at_once(customer):
    # given
    dated = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    never = grant_at(T0, customer=customer, amount=100)
    debit = debit_at(T0 + HOUR, customer=customer, amount=150)
    # when
    reversal = reverse_at(T0 + 2 * DAY, entry=debit)
    # then
    after = entries_of(customer)[3:]
    assert [(e.kind, e.amount, e.balance_after) for e in after] == [
        ("reversal", 150, 200), ("expire", -100, 100)]
    assert after[1].idempotency_key == f"expire:{lot_of(dated).pk}:{reversal.pk}"
    assert after[1].created_at == T0 + 2 * DAY
    assert consumptions_of(after[1]) == [(lot_of(dated).pk, 100)]
    assert remaining(dated, never) == [0, 100]
    assert selectors.available_balance(customer=customer, at=T0 + 2 * DAY) == 100
    assert selectors.verify_ledger() == []


def test_reverse_of_a_partial_debit_after_the_sweep_expires_only_the_restored_part(customer):
    # given
    dated = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    debit = debit_at(T0 + HOUR, customer=customer, amount=40)
    with clock.posting_at(T0 + DAY):
        services.expire_due()
    # when
    reversal = reverse_at(T0 + 2 * DAY, entry=debit)
    # then
    expiries = LedgerEntry.objects.filter(account_id=customer.pk, kind="expire").order_by("id")
    assert [(e.amount, e.idempotency_key) for e in expiries] == [
        (-60, f"expire:{lot_of(dated).pk}"), (-40, f"expire:{lot_of(dated).pk}:{reversal.pk}")]
    assert remaining(dated) == [0]
    assert selectors.account_balance(customer=customer) == 0
    assert selectors.verify_ledger() == []


def test_reverse_of_a_partial_debit_before_the_sweep_expires_the_rest_then_the_restored_part(customer):
    # given
    dated = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    debit = debit_at(T0 + HOUR, customer=customer, amount=40)
    # when
    reversal = reverse_at(T0 + 2 * DAY, entry=debit)
    # then
    lot_id = lot_of(dated).pk
    after = entries_of(customer)[2:]
    assert [(e.kind, e.amount, e.balance_after, e.idempotency_key) for e in after] == [
        ("expire", -60, 0, f"expire:{lot_id}"),
        ("reversal", 40, 40, None),
        ("expire", -40, 0, f"expire:{lot_id}:{reversal.pk}"),
    ]
    assert selectors.verify_ledger() == []


def test_reverse_of_a_debit_before_its_lot_expires_leaves_the_lot_to_expire_on_time(customer):
    # given
    dated = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    debit = debit_at(T0 + HOUR, customer=customer, amount=100)
    reverse_at(T0 + 2 * HOUR, entry=debit)
    # when
    with clock.posting_at(T0 + DAY):
        posted = services.expire_due()
    # then
    assert posted == 1
    assert LedgerEntry.objects.get(kind="expire", account_id=customer.pk).idempotency_key == (
        f"expire:{lot_of(dated).pk}")
    assert selectors.verify_ledger() == []


def test_reverse_of_a_clawback_restores_the_lots_it_took_from(customer):
    # given
    a = grant_at(T0, customer=customer, amount=100)
    b = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    with clock.posting_at(T0 + HOUR):
        clawback = services.clawback(customer=customer, amount=150, reason="order refunded", lot=lot_of(a))
    # when
    reverse_at(T0 + 2 * HOUR, entry=clawback)
    # then
    assert remaining(a, b) == [100, 100]
    assert selectors.verify_ledger() == []


def test_reverse_of_an_already_reversed_entry_raises_and_writes_nothing(funded_customer):
    # given
    debit = services.debit(customer=funded_customer, amount=100, kind="redeem", reason="checkout")
    services.reverse(entry=debit)
    before = ledger_state()
    # when
    with pytest.raises(services.NotReversible) as excinfo:
        services.reverse(entry=debit)
    # then
    assert str(excinfo.value) == "This entry has already been reversed."
    assert ledger_state() == before


def test_reverse_of_an_untouched_grant_takes_its_whole_lot_back(customer):
    # given
    keep = grant_at(T0, customer=customer, amount=300)
    grant = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    # when
    reversal = reverse_at(T0 + HOUR, entry=grant)
    # then
    assert (reversal.kind, reversal.amount, reversal.balance_after) == (EntryKind.REVERSAL, -100, 300)
    assert consumptions_of(reversal) == [(lot_of(grant).pk, 100)]
    assert remaining(keep, grant) == [300, 0]
    assert selectors.verify_ledger() == []


def test_reverse_of_a_partly_spent_grant_raises_and_writes_nothing(customer):
    # given
    grant = grant_at(T0, customer=customer, amount=100)
    debit_at(T0 + HOUR, customer=customer, amount=1)
    before = ledger_state()
    # when
    with pytest.raises(services.NotReversible) as excinfo:
        reverse_at(T0 + 2 * HOUR, entry=grant)
    # then
    assert str(excinfo.value) == "Credits from this grant have already been used or expired."
    assert ledger_state() == before


def test_reverse_of_a_grant_whose_spending_was_undone_raises_because_the_lot_was_touched(customer):
    # given
    grant = grant_at(T0, customer=customer, amount=100)
    debit = debit_at(T0 + HOUR, customer=customer, amount=10)
    reverse_at(T0 + 2 * HOUR, entry=debit)
    before = ledger_state()
    # when
    with pytest.raises(services.NotReversible) as excinfo:
        reverse_at(T0 + 3 * HOUR, entry=grant)
    # then
    assert str(excinfo.value) == "Credits from this grant have already been used or expired."
    assert ledger_state() == before


def test_reverse_of_a_grant_whose_lot_expired_raises_and_writes_nothing(customer):
    # given
    grant = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    with clock.posting_at(T0 + DAY):
        services.expire_due()
    before = ledger_state()
    # when
    with pytest.raises(services.NotReversible) as excinfo:
        reverse_at(T0 + 2 * DAY, entry=grant)
    # then
    assert str(excinfo.value) == "Credits from this grant have already been used or expired."
    assert ledger_state() == before


def test_reverse_of_a_grant_overdue_but_not_swept_raises_and_writes_not_even_the_expiry(customer):
    # given
    grant = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    before = ledger_state()
    # when
    with pytest.raises(services.NotReversible) as excinfo:
        reverse_at(T0 + DAY, entry=grant)
    # then
    assert str(excinfo.value) == "Credits from this grant have already been used or expired."
    assert ledger_state() == before


def test_reverse_of_an_expire_entry_raises_and_writes_nothing(customer):
    # given
    grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    with clock.posting_at(T0 + DAY):
        services.expire_due()
    expire = LedgerEntry.objects.get(account_id=customer.pk, kind="expire")
    before = ledger_state()
    # when
    with pytest.raises(services.NotReversible) as excinfo:
        reverse_at(T0 + 2 * DAY, entry=expire)
    # then
    assert str(excinfo.value) == "Expire entries cannot be reversed."
    assert ledger_state() == before


def test_reverse_of_a_reversal_raises_and_writes_nothing(funded_customer):
    # given
    debit = services.debit(customer=funded_customer, amount=100, kind="redeem", reason="checkout")
    reversal = services.reverse(entry=debit)
    before = ledger_state()
    # when
    with pytest.raises(services.NotReversible) as excinfo:
        services.reverse(entry=reversal)
    # then
    assert str(excinfo.value) == "Reversal entries cannot be reversed."
    assert ledger_state() == before
