import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import clock, selectors, services
from ledger.models import CreditAccount, CreditLot, EntryKind, LedgerEntry, LotConsumption
from tests.factories import CustomerFactory
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


def test_debit_on_an_account_with_many_lots_reads_only_the_first_ones_it_needs(customer):
    # given: 120 lots of 100, expiring a day apart, and 20 never-expiring ones
    for n in range(120):
        grant_at(T0, customer=customer, amount=100, expires_at=T0 + (n + 1) * DAY)
    for _ in range(20):
        grant_at(T0, customer=customer, amount=100)
    # when: a debit the first lots cover
    with CaptureQueriesContext(connection) as queries:
        entry = debit_at(T0 + HOUR, customer=customer, amount=250)
    # then: one chunk read, the first three lots taken, the next expiry still the earliest left
    lot_reads = [q["sql"] for q in queries.captured_queries if "ledger_creditlot" in q["sql"] and "SELECT" in q["sql"]]
    assert len(lot_reads) == 1 and "LIMIT" in lot_reads[0]
    taken = list(LotConsumption.objects.filter(entry=entry).order_by("lot_id").values_list("amount", flat=True))
    assert taken == [100, 100, 50]
    account = CreditAccount.objects.get(pk=customer.pk)
    assert account.next_expiry_at == T0 + 3 * DAY
    assert selectors.verify_ledger() == []


def test_debit_the_first_lots_do_not_cover_reads_them_all(customer):
    # given: 60 lots of 10 expiring, then one never-expiring lot of 10,000
    for n in range(60):
        grant_at(T0, customer=customer, amount=10, expires_at=T0 + (n + 1) * DAY)
    grant_at(T0, customer=customer, amount=10_000)
    # when: a debit beyond the first 50 lots (500)
    debit_at(T0 + HOUR, customer=customer, amount=700)
    # then: the 60 dated lots are spent first, then 100 from the never-expiring one
    lots = list(CreditLot.objects.filter(account_id=customer.pk).order_by("id").values_list("remaining", flat=True))
    assert lots == [0] * 60 + [9_900]
    assert CreditAccount.objects.get(pk=customer.pk).next_expiry_at is None
    assert selectors.verify_ledger() == []


def test_debit_when_the_first_lots_are_all_overdue_expires_every_overdue_lot(customer):
    # given: 70 lots that expire within the first 70 hours, then a never-expiring one
    for n in range(70):
        grant_at(T0, customer=customer, amount=10, expires_at=T0 + (n + 1) * HOUR)
    grant_at(T0, customer=customer, amount=1_000)
    # when: a debit after all of them expired
    debit_at(T0 + 100 * HOUR, customer=customer, amount=100)
    # then: all 70 expired (not only the first chunk), the debit from the last lot
    assert LedgerEntry.objects.filter(account_id=customer.pk, kind="expire").count() == 70
    assert selectors.available_balance(customer=customer) == 900
    assert selectors.verify_ledger() == []


@settings(max_examples=100)
@given(lots=st.lists(st.tuples(st.integers(1, 500), st.none() | st.integers(-48, 240)), min_size=1, max_size=12),
       chunk=st.integers(1, 4), data=st.data())
def test_debit_loading_lots_in_chunks_posts_exactly_what_loading_all_of_them_posts(lots, chunk, data):
    # given: two customers with the same lots (granted 100 hours ago; some already overdue)
    twins = CustomerFactory.create_batch(2)
    for customer in twins:
        for amount, hours in lots:
            grant_at(T0 - 100 * HOUR, customer=customer, amount=amount,
                     expires_at=None if hours is None else T0 + hours * HOUR)
    # the debit: any share of everything granted (up to 120%: some are refused), or exactly
    # what the first unexpired lots hold, first-expiring-first (the edge of a chunk)
    usable = sorted((hours is None, hours or 0, n, amount) for n, (amount, hours) in enumerate(lots)
                    if hours is None or hours > 0)
    prefix_sums = [sum(lot[3] for lot in usable[:j]) for j in range(1, len(usable) + 1)]
    amount = data.draw(st.one_of(
        st.integers(1, 120).map(lambda share: max(1, sum(a for a, _ in lots) * share // 100)),
        *([st.sampled_from(prefix_sums)] if prefix_sums else []),
    ), label="amount")

    def outcome(customer, lot_chunk):
        saved, services.LOT_CHUNK = services.LOT_CHUNK, lot_chunk
        try:
            with transaction.atomic():
                debit_at(T0, customer=customer, amount=amount)
            result = "posted"
        except services.InsufficientCredits as exc:
            result = f"refused: {exc}"
        finally:
            services.LOT_CHUNK = saved
        return (result,
                list(LedgerEntry.objects.filter(account_id=customer.pk).order_by("id").values_list("kind", "amount")),
                list(CreditLot.objects.filter(account_id=customer.pk).order_by("id").values_list("remaining", flat=True)),
                CreditAccount.objects.get(pk=customer.pk).next_expiry_at)

    # when: one debits loading `chunk` lots at a time, the other loading them all
    chunked, whole = outcome(twins[0], chunk), outcome(twins[1], 10**6)
    # then: the same refusal or the same entries, lot remainders and next expiry
    assert chunked == whole
    assert selectors.verify_ledger() == []
