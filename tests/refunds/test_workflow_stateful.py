"""Random sequences of the cash-refund workflow against a model in plain Python.

Each Hypothesis example starts from its own savepoint (rolled back in teardown). Steps:
customers ask (request), staff mark pending, refund (also as a stale double click),
undo and reject, customers cancel, and credits are granted or spent elsewhere in between.
After every step: the database agrees with the model, credits are never debited twice
(cash_refund debits minus their reversals == the amounts of the requests refunded now),
one open request per customer, and every ledger invariant holds."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Sum
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import LedgerEntry
from refunds import services
from refunds.exceptions import (
    IllegalTransition,
    InsufficientCreditsForRefund,
    OpenRequestExists,
)
from refunds.models import RefundRequest
from tests.factories import CustomerFactory, StaffUserFactory

S = RefundRequest.Status
OPEN = {S.REQUESTED, S.PENDING}
ALLOWED = {
    "mark_pending": {S.REQUESTED},
    "refund": {S.REQUESTED, S.PENDING},
    "undo": {S.REFUNDED},
    "reject": {S.REQUESTED, S.PENDING},
    "cancel": {S.REQUESTED, S.PENDING},
}
PAYOUT = {"account_holder": "Jane Doe", "bank_name": "First Bank", "account_number": "12345678"}


class RefundWorkflow(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.savepoint = transaction.savepoint()
        self.agent = StaffUserFactory(role="Support agent")
        self.customers = CustomerFactory.create_batch(2)
        self.balance = {}
        for customer in self.customers:
            ledger_services.grant(customer=customer, amount=3000, reason="setup")
            self.balance[customer.pk] = 3000
        self.requests: dict[int, dict] = {}  # pk -> {"customer", "amount", "status", "version"}

    def teardown(self):
        transaction.savepoint_rollback(self.savepoint)

    # -- helpers --------------------------------------------------------------
    def has_open(self, customer_id, *, besides=None) -> bool:
        return any(r["customer"] == customer_id and r["status"] in OPEN
                   for pk, r in self.requests.items() if pk != besides)

    def pick(self, data):
        return data.draw(st.sampled_from(sorted(self.requests)), label="request")

    def act(self, action, pk, **kwargs):
        model = self.requests[pk]
        allowed = model["status"] in ALLOWED[action]
        try:
            req = getattr(services, action)(request=pk, **kwargs)
        except IllegalTransition:
            assert not allowed, f"{action} refused from {model['status']}"
            return None
        assert allowed, f"{action} accepted from {model['status']}"
        model["version"] += 1
        return req

    # -- rules ----------------------------------------------------------------
    @rule(who=st.integers(0, 1), amount=st.integers(1, 4000))
    def request(self, who, amount):
        customer = self.customers[who]
        try:
            req = services.create_request(customer=customer, amount=amount, channel="storefront", **PAYOUT)
        except OpenRequestExists:
            assert self.has_open(customer.pk)
        except InsufficientCreditsForRefund:
            assert not self.has_open(customer.pk) and amount > self.balance[customer.pk]
        else:
            assert not self.has_open(customer.pk) and amount <= self.balance[customer.pk]
            self.requests[req.pk] = {"customer": customer.pk, "amount": amount, "status": S.REQUESTED, "version": 0}

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def mark_pending(self, data):
        pk = self.pick(data)
        if self.act("mark_pending", pk, actor=self.agent):
            self.requests[pk]["status"] = S.PENDING

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def refund(self, data):
        pk = self.pick(data)
        model = self.requests[pk]
        short = model["amount"] > self.balance[model["customer"]]
        try:
            done = self.act("refund", pk, actor=self.agent)
        except InsufficientCreditsForRefund:
            assert short and model["status"] in ALLOWED["refund"]
            return
        if done:
            assert not short
            model["status"] = S.REFUNDED
            self.balance[model["customer"]] -= model["amount"]

    @precondition(lambda self: any(r["status"] == S.REFUNDED for r in self.requests.values()))
    @rule(data=st.data())
    def double_click_refund(self, data):
        """A second click on Refund, with the version the first click saw."""
        pk = data.draw(st.sampled_from(sorted(pk for pk, r in self.requests.items() if r["status"] == S.REFUNDED)))
        again = services.refund(request=pk, actor=self.agent, expected_version=self.requests[pk]["version"] - 1)
        assert again.replayed is True

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def undo(self, data):
        pk = self.pick(data)
        model = self.requests[pk]
        try:
            done = self.act("undo", pk, actor=self.agent)
        except OpenRequestExists:
            assert model["status"] == S.REFUNDED and self.has_open(model["customer"], besides=pk)
            return
        if done:
            assert not self.has_open(model["customer"], besides=pk)
            model["status"] = S.PENDING
            self.balance[model["customer"]] += model["amount"]

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def reject(self, data):
        pk = self.pick(data)
        if self.act("reject", pk, actor=self.agent, reason="not eligible"):
            self.requests[pk]["status"] = S.REJECTED

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def cancel(self, data):
        pk = self.pick(data)
        if self.act("cancel", pk):
            self.requests[pk]["status"] = S.CANCELLED

    @rule(who=st.integers(0, 1), amount=st.integers(1, 3000))
    def spend_elsewhere(self, who, amount):
        customer = self.customers[who]
        try:
            ledger_services.debit(customer=customer, amount=amount, kind="redeem", reason="checkout", source="api")
        except ledger_services.InsufficientCredits:
            assert amount > self.balance[customer.pk]
        else:
            self.balance[customer.pk] -= amount

    @rule(who=st.integers(0, 1), amount=st.integers(1, 2000))
    def earn_more(self, who, amount):
        ledger_services.grant(customer=self.customers[who], amount=amount, reason="order reward", source="rule")
        self.balance[self.customers[who].pk] += amount

    # -- after every step -----------------------------------------------------
    @invariant()
    def database_agrees_with_the_model(self):
        rows = dict(RefundRequest.objects.filter(pk__in=self.requests).values_list("pk", "status"))
        assert rows == {pk: r["status"] for pk, r in self.requests.items()}
        for customer in self.customers:
            assert ledger_selectors.available_balance(customer=customer) == self.balance[customer.pk]

    @invariant()
    def credits_are_never_debited_twice(self):
        for customer in self.customers:
            debited = -(LedgerEntry.objects.filter(account_id=customer.pk, kind="cash_refund")
                        .aggregate(s=Sum("amount"))["s"] or 0)
            restored = (LedgerEntry.objects.filter(account_id=customer.pk, kind="reversal",
                                                   reverses__kind="cash_refund").aggregate(s=Sum("amount"))["s"] or 0)
            refunded_now = sum(r["amount"] for r in self.requests.values()
                               if r["customer"] == customer.pk and r["status"] == S.REFUNDED)
            assert debited - restored == refunded_now

    @invariant()
    def one_open_request_per_customer(self):
        for customer in self.customers:
            assert RefundRequest.objects.filter(customer=customer, status__in=OPEN).count() <= 1

    @invariant()
    def ledger_invariants_hold(self):
        assert ledger_selectors.verify_ledger() == []


def test_refund_workflow_state_machine(db):
    # given: the loaded profile, kept short by default (the "ci-heavy" profile runs it long)
    profile = settings()
    if profile.max_examples <= 100:
        profile = settings(profile, max_examples=30, stateful_step_count=30)
    # when random steps run / then every invariant holds after each
    run_state_machine_as_test(RefundWorkflow, settings=profile)
