"""The ledger against an independent model in plain Python.

Each Hypothesis example starts from an empty ledger of its own: the machine opens a
savepoint when it is created and rolls back to it in teardown. Steps post as of the
machine's own clock, which only moves forward: by whole hours, or to the very instant the
next lot expires (or one microsecond before it)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger import clock, selectors, services
from ledger.models import CreditAccount, CreditLot, LedgerEntry, LotConsumption
from tests.factories import CustomerFactory
from tests.ledger.support import T0, US

POLICY_DAYS = 30
DEBIT_KINDS = ["redeem", "deduct", "cash_refund", "forfeit"]


def thirty_days_policy(*, source, now, **context):
    return now + timedelta(days=POLICY_DAYS)


# --------------------------------------------------------------------------- the model

@dataclass
class Lot:
    seq: int  # creation order; the ledger's ids follow it
    amount: int
    expires_at: datetime | None
    remaining: int
    touched: bool = False  # ever taken from, expired or restored into
    db_id: int | None = None

    def overdue(self, now):
        return self.expires_at is not None and self.expires_at <= now


@dataclass
class Entry:
    customer_pk: int
    kind: str  # "grant", "debit", "expire" or "reversal"
    lot: Lot | None = None  # grant
    taken: list[tuple[Lot, int]] = field(default_factory=list)  # debit
    reversed: bool = False


class Account:
    def __init__(self):
        self.lots: list[Lot] = []

    def booked(self):
        return sum(lot.remaining for lot in self.lots)

    def available(self, now):
        return sum(lot.remaining for lot in self.lots if not lot.overdue(now))

    def fefo(self):
        open_lots = [lot for lot in self.lots if lot.remaining > 0]
        return sorted(open_lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or T0, lot.seq))

    def expire_overdue(self, now) -> list[tuple[Lot, int]]:
        """Lazy expiry (or the sweep): every overdue lot with a remainder, FEFO."""
        expired = []
        for lot in self.fefo():
            if lot.overdue(now):
                expired.append((lot, lot.remaining))
                lot.remaining = 0
                lot.touched = True
        return expired

    def take(self, amount, lots) -> list[tuple[Lot, int]]:
        taken = []
        for lot in lots:
            if amount == 0:
                break
            part = min(lot.remaining, amount)
            if part:
                lot.remaining -= part
                lot.touched = True
                amount -= part
                taken.append((lot, part))
        assert amount == 0
        return taken


# --------------------------------------------------------------------------- the machine

class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.savepoint = transaction.savepoint()
        self.now = T0
        self.customers = CustomerFactory.create_batch(2)
        self.accounts = {c.pk: Account() for c in self.customers}
        self.entries: dict[int, Entry] = {}
        self.seq = 0
        self.only_the_clock_moved = False  # the last step did not touch the database
        self.last_seen = LedgerEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def teardown(self):
        transaction.savepoint_rollback(self.savepoint)

    # -- helpers --------------------------------------------------------------
    def at_now(self):
        return clock.posting_at(self.now)

    def new_lot(self, account, amount, expires_at):
        self.seq += 1
        lot = Lot(seq=self.seq, amount=amount, expires_at=expires_at, remaining=amount)
        account.lots.append(lot)
        return lot

    def expect(self, expected, returned=None):
        """The ledger's new entries since the last step must be exactly `expected`, in id
        order: (customer_pk, kind, amount, model), where model is (Lot, idempotency key) for
        an expiry and the model Entry of the entry the service returned otherwise."""
        new = list(LedgerEntry.objects.filter(id__gt=self.last_seen, account_id__in=self.accounts)
                   .order_by("id").values_list("id", "account_id", "kind", "amount", "idempotency_key"))
        assert [row[1:4] for row in new] == [(c, k, a) for c, k, a, _ in expected]
        if not new:
            return
        self.last_seen = new[-1][0]
        ids = [row[0] for row in new]
        lots = dict(CreditLot.objects.filter(entry_id__in=ids).values_list("entry_id", "id"))
        consumptions = defaultdict(list)
        for entry_id, lot_id, amount in (LotConsumption.objects.filter(entry_id__in=ids).order_by("id")
                                         .values_list("entry_id", "lot_id", "amount")):
            consumptions[entry_id].append((lot_id, amount))
        for (entry_id, customer_pk, kind, amount, key), (*_, model) in zip(new, expected, strict=True):
            if kind == "expire":
                lot, expected_key = model
                assert (key, consumptions[entry_id]) == (expected_key, [(lot.db_id, -amount)])
                self.entries[entry_id] = Entry(customer_pk, "expire")
                continue
            assert returned is not None and entry_id == returned.pk
            self.entries[entry_id] = model
            if model.kind == "grant":
                model.lot.db_id = lots[entry_id]
                assert consumptions[entry_id] == []
            elif model.kind == "debit":
                assert consumptions[entry_id] == [(lot.db_id, part) for lot, part in model.taken]

    def expiries(self, customer_pk, expired, *, reversal=None):
        suffix = f":{reversal.pk}" if reversal is not None else ""
        return [(customer_pk, "expire", -amount, (lot, f"expire:{lot.db_id}{suffix}"))
                for lot, amount in expired]

    # -- rules ----------------------------------------------------------------
    @initialize(amounts=st.lists(st.integers(1, 10_000), min_size=2, max_size=2),
                hours=st.lists(st.none() | st.integers(1, 100 * 24), min_size=2, max_size=2))
    def fund_both_customers(self, amounts, hours):
        for who, (amount, expiry_hours) in enumerate(zip(amounts, hours, strict=True)):
            self.grant(who, amount, expiry_hours)

    @rule(who=st.integers(0, 1), amount=st.integers(1, 10_000),
          hours=st.none() | st.integers(1, 100 * 24))
    def grant(self, who, amount, hours):
        customer = self.customers[who]
        expires_at = None if hours is None else self.now + timedelta(hours=hours)
        with self.at_now():
            entry = services.grant(customer=customer, amount=amount, reason="grant", expires_at=expires_at)
        account = self.accounts[customer.pk]
        expired = account.expire_overdue(self.now)
        lot = self.new_lot(account, amount, expires_at)
        posted = (customer.pk, "grant", amount, Entry(customer.pk, "grant", lot=lot))
        self.expect(self.expiries(customer.pk, expired) + [posted], entry)

    def draw_customer(self, data):
        """Either customer, or more often one with something to spend."""
        funded = [i for i, c in enumerate(self.customers) if self.accounts[c.pk].available(self.now) > 0]
        choice = st.sampled_from(funded) | st.integers(0, 1) if funded else st.integers(0, 1)
        return self.customers[data.draw(choice, label="customer")]

    @rule(kind=st.sampled_from(DEBIT_KINDS), data=st.data())
    def debit(self, kind, data):
        customer = self.draw_customer(data)
        account = self.accounts[customer.pk]
        available = account.available(self.now)
        amount = data.draw(st.one_of(st.just(max(available, 1)), st.integers(1, max(1, available)),
                                     st.integers(available + 1, available + 5000)), label="amount")
        if amount > available:
            with self.at_now(), transaction.atomic():
                try:
                    services.debit(customer=customer, amount=amount, kind=kind, reason="debit")
                except services.InsufficientCredits as exc:
                    assert (exc.requested, exc.available) == (amount, available)
                else:
                    raise AssertionError(f"debit of {amount} with {available} available did not raise")
            self.expect([])
            return
        with self.at_now():
            entry = services.debit(customer=customer, amount=amount, kind=kind, reason="debit")
        expired = account.expire_overdue(self.now)
        taken = account.take(amount, account.fefo())
        posted = (customer.pk, kind, -amount, Entry(customer.pk, "debit", taken=taken))
        self.expect(self.expiries(customer.pk, expired) + [posted], entry)

    @rule(amount=st.integers(1, 15_000), data=st.data())
    def clawback(self, amount, data):
        customer = self.draw_customer(data)
        account = self.accounts[customer.pk]
        named = data.draw(st.none() | st.sampled_from(account.lots), label="lot") if account.lots else None
        with self.at_now():
            entry = services.clawback(customer=customer, amount=amount, reason="clawback",
                                      lot=named.db_id if named else None)
        expired = account.expire_overdue(self.now)
        available = account.booked()
        expected = self.expiries(customer.pk, expired)
        if available == 0:
            assert entry is None
            self.expect(expected)
            return
        take = min(amount, available)
        order = account.fefo()
        if named is not None and named in order:
            order = [named] + [lot for lot in order if lot is not named]
        taken = account.take(take, order)
        posted = (customer.pk, "clawback", -take, Entry(customer.pk, "debit", taken=taken))
        self.expect(expected + [posted], entry)
        assert entry.uncollected == amount - take

    @rule(who=st.integers(0, 1), data=st.data())
    def set_balance(self, who, data):
        customer = self.customers[who]
        account = self.accounts[customer.pk]
        available = account.available(self.now)
        target = data.draw(st.one_of(st.just(available), st.just(0), st.integers(0, 30_000)), label="target")
        with self.at_now():
            entry = services.set_balance(customer=customer, target=target, reason="set")
        expired = account.expire_overdue(self.now)
        expected = self.expiries(customer.pk, expired)
        diff = target - available
        if diff > 0:
            lot = self.new_lot(account, diff, self.now + timedelta(days=POLICY_DAYS))
            expected.append((customer.pk, "grant", diff, Entry(customer.pk, "grant", lot=lot)))
        elif diff < 0:
            taken = account.take(-diff, account.fefo())
            expected.append((customer.pk, "deduct", diff, Entry(customer.pk, "debit", taken=taken)))
        else:
            assert entry is None
        self.expect(expected, entry)

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def reverse(self, data):
        undoable = sorted(pk for pk, e in self.entries.items() if e.kind in ("grant", "debit") and not e.reversed)
        any_entry = st.sampled_from(sorted(self.entries))
        entry_id = data.draw(st.sampled_from(undoable) | any_entry if undoable else any_entry, label="entry")
        model = self.entries[entry_id]
        customer_pk = model.customer_pk
        account = self.accounts[customer_pk]
        reversible = not model.reversed and (
            model.kind == "debit"
            or (model.kind == "grant" and not model.lot.touched and not model.lot.overdue(self.now)))
        if not reversible:
            with self.at_now(), transaction.atomic():
                try:
                    services.reverse(entry=entry_id)
                except services.NotReversible:
                    pass
                else:
                    raise AssertionError(f"{model.kind} entry {entry_id} was reversed")
            self.expect([])
            return
        with self.at_now():
            reversal = services.reverse(entry=entry_id)
        model.reversed = True
        expired = account.expire_overdue(self.now)
        expected = self.expiries(customer_pk, expired)
        if model.kind == "grant":
            lot = model.lot
            account.take(lot.amount, [lot])
            expected.append((customer_pk, "reversal", -lot.amount, Entry(customer_pk, "reversal")))
            self.expect(expected, reversal)
            assert list(LotConsumption.objects.filter(entry=reversal).values_list("lot_id", "amount")) == [
                (lot.db_id, lot.amount)]
            return
        for lot, part in model.taken:
            lot.remaining += part
        restored = sorted({lot.seq: lot for lot, _ in model.taken}.values(),
                          key=lambda lot: (lot.expires_at is None, lot.expires_at or T0, lot.seq))
        again = []
        for lot in restored:
            if lot.overdue(self.now) and lot.remaining > 0:
                again.append((lot, lot.remaining))
                lot.remaining = 0
        amount = sum(part for _, part in model.taken)
        expected.append((customer_pk, "reversal", amount, Entry(customer_pk, "reversal")))
        self.expect(expected + self.expiries(customer_pk, again, reversal=reversal), reversal)
        restorations = LotConsumption.objects.filter(entry=reversal).values_list("lot_id", "amount")
        assert sorted(restorations) == sorted((lot.db_id, -part) for lot, part in model.taken)

    @rule()
    def expire_due(self):
        with self.at_now():
            posted = services.expire_due()
        expected = []
        for customer in sorted(self.customers, key=lambda c: c.pk):
            expected += self.expiries(customer.pk, self.accounts[customer.pk].expire_overdue(self.now))
        assert posted == len(expected)
        self.expect(expected)

    @rule(hours=st.integers(1, 40 * 24))
    def advance_clock(self, hours):
        self.now += timedelta(hours=hours)
        self.only_the_clock_moved = True

    @rule(just_before=st.booleans())
    def advance_clock_to_the_next_expiry(self, just_before):
        """To the very instant a lot expires, or one microsecond before it."""
        upcoming = [lot.expires_at for account in self.accounts.values() for lot in account.lots
                    if lot.expires_at is not None and lot.expires_at > self.now]
        if upcoming:
            self.now = max(self.now, min(upcoming) - (US if just_before else timedelta(0)))
        self.only_the_clock_moved = True

    # -- after every step -----------------------------------------------------
    @invariant()
    def ledger_matches_the_model(self):
        with self.at_now():
            for customer in self.customers:
                expected = self.accounts[customer.pk].available(self.now)
                assert selectors.available_balance(customer=customer) == expected
        if self.only_the_clock_moved:  # the rows are as checked after the previous step
            self.only_the_clock_moved = False
            return
        # Every lot's remainder (so the booked balance too: verify_ledger checks it is their sum).
        lots = dict(CreditLot.objects.filter(account_id__in=self.accounts).values_list("id", "remaining"))
        assert lots == {lot.db_id: lot.remaining
                        for account in self.accounts.values() for lot in account.lots}
        assert all(remaining >= 0 for remaining in lots.values())
        assert selectors.verify_ledger() == []
        # Each account's next_expiry_at (what lets a grant skip lazy expiry) is never later
        # than the earliest expiry among its lots with a remainder.
        for account in CreditAccount.objects.filter(pk__in=self.accounts):
            dated = [lot.expires_at for lot in self.accounts[account.pk].lots
                     if lot.remaining > 0 and lot.expires_at is not None]
            if dated:
                assert account.next_expiry_at is not None and account.next_expiry_at <= min(dated)


def test_ledger_state_machine(db, settings):
    # given
    settings.LEDGER_EXPIRY_POLICY = f"{__name__}.thirty_days_policy"
    # when / then: every step agrees with the model and every invariant holds
    run_state_machine_as_test(LedgerMachine)


def test_ledger_state_machine_with_debits_loading_lots_two_at_a_time(db, settings, monkeypatch):
    # given: debits load the first two lots when they cover them, all of them otherwise
    settings.LEDGER_EXPIRY_POLICY = f"{__name__}.thirty_days_policy"
    monkeypatch.setattr(services, "LOT_CHUNK", 2)
    # when / then: the same model agrees at every step
    run_state_machine_as_test(LedgerMachine)
