import pytest

from ledger import clock, services
from ledger.models import LedgerEntry
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory
from tests.ledger.support import DAY, HOUR, T0, grant_at, ledger_state, lot_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def ctx(db):
    """Two funded customers (lots expire in 10 days), an order and a staff user, as of T0."""
    first, second = CustomerFactory(), CustomerFactory()
    for customer in (first, second):
        grant_at(T0 - HOUR, customer=customer, amount=5000, expires_at=T0 + 10 * DAY)
    return {"customer": first, "other_customer": second, "order": OrderFactory(customer=first),
            "agent": StaffUserFactory()}


def call(operation, ctx, **overrides):
    """Call a service as of T0 + 1h with the key "k" and base arguments, some overridden."""
    base = {
        "grant": dict(customer=ctx["customer"], amount=100, reason="goodwill", expires_at=T0 + 20 * DAY),
        "debit": dict(customer=ctx["customer"], amount=100, kind="redeem", reason="checkout"),
        "clawback": dict(customer=ctx["customer"], amount=100, reason="order refunded"),
        "set_balance": dict(customer=ctx["customer"], target=4000, reason="correction"),
        "reverse": dict(entry=ctx.get("debit")),
    }[operation]
    with clock.posting_at(T0 + HOUR):
        return getattr(services, operation)(**{**base, "idempotency_key": "k", **overrides})


# The same key with any one argument changed, per operation.
CHANGES = [
    ("grant", "customer", lambda ctx: ctx["other_customer"]),
    ("grant", "amount", lambda ctx: 101),
    ("grant", "reason", lambda ctx: "goodwill!"),
    ("grant", "expires_at", lambda ctx: T0 + 21 * DAY),
    ("grant", "expires_at", lambda ctx: None),
    ("grant", "source", lambda ctx: "api"),
    ("grant", "comment", lambda ctx: "a note"),
    ("grant", "order", lambda ctx: ctx["order"]),
    ("grant", "details", lambda ctx: {"rule": 7}),
    ("grant", "actor", lambda ctx: ctx["agent"]),
    ("debit", "customer", lambda ctx: ctx["other_customer"]),
    ("debit", "amount", lambda ctx: 99),
    ("debit", "kind", lambda ctx: "cash_refund"),
    ("debit", "reason", lambda ctx: "checkout!"),
    ("debit", "source", lambda ctx: "api"),
    ("debit", "comment", lambda ctx: "a note"),
    ("debit", "order", lambda ctx: ctx["order"]),
    ("debit", "details", lambda ctx: {"basket": 3}),
    ("debit", "actor", lambda ctx: ctx["agent"]),
    ("clawback", "customer", lambda ctx: ctx["other_customer"]),
    ("clawback", "amount", lambda ctx: 99),
    ("clawback", "lot", lambda ctx: lot_of(LedgerEntry.objects.filter(account=ctx["customer"].pk).first())),
    ("clawback", "reason", lambda ctx: "other"),
    ("clawback", "comment", lambda ctx: "a note"),
    ("clawback", "source", lambda ctx: "staff"),
    ("clawback", "details", lambda ctx: {"refund": 9}),
    ("clawback", "order", lambda ctx: ctx["order"]),
    ("clawback", "actor", lambda ctx: ctx["agent"]),
    ("set_balance", "customer", lambda ctx: ctx["other_customer"]),
    ("set_balance", "target", lambda ctx: 4001),
    ("set_balance", "reason", lambda ctx: "correction!"),
    ("set_balance", "comment", lambda ctx: "a note"),
    ("set_balance", "source", lambda ctx: "bulk"),
    ("set_balance", "actor", lambda ctx: ctx["agent"]),
    ("reverse", "entry", lambda ctx: ctx["other_debit"]),
    ("reverse", "comment", lambda ctx: "a note"),
    ("reverse", "actor", lambda ctx: ctx["agent"]),
]


@pytest.fixture
def reversible(ctx):
    """Two debits that can be reversed, posted without keys."""
    with clock.posting_at(T0):
        ctx["debit"] = services.debit(customer=ctx["customer"], amount=10, kind="redeem", reason="a")
        ctx["other_debit"] = services.debit(customer=ctx["customer"], amount=20, kind="redeem", reason="b")
    return ctx


@pytest.mark.parametrize("operation", ["grant", "debit", "clawback", "set_balance", "reverse"])
def test_replay_of_a_key_returns_the_first_entry_and_writes_nothing(reversible, operation):
    # given
    first = call(operation, reversible)
    before = ledger_state()
    # when
    replay = call(operation, reversible)
    # then
    assert replay.pk == first.pk
    assert ledger_state() == before


@pytest.mark.parametrize(("operation", "argument", "value"), CHANGES,
                         ids=[f"{op}-{arg}" for op, arg, _ in CHANGES])
def test_replay_of_a_key_with_a_different_argument_raises_conflict_and_writes_nothing(
        reversible, operation, argument, value):
    # given
    call(operation, reversible)
    before = ledger_state()
    # when
    with pytest.raises(services.IdempotencyConflict) as excinfo:
        call(operation, reversible, **{argument: value(reversible)})
    # then
    assert str(excinfo.value) == "Idempotency key 'k' was already used with different arguments."
    assert excinfo.value.key == "k"
    assert ledger_state() == before


@pytest.mark.parametrize(("first", "second"), [("grant", "debit"), ("debit", "grant"), ("debit", "clawback"),
                                               ("set_balance", "grant"), ("reverse", "debit")])
def test_key_of_one_operation_reused_by_another_raises_conflict_and_writes_nothing(reversible, first, second):
    # given
    call(first, reversible)
    before = ledger_state()
    # when
    with pytest.raises(services.IdempotencyConflict):
        call(second, reversible)
    # then
    assert ledger_state() == before


def test_replay_of_a_debit_after_the_balance_ran_out_still_returns_the_first_entry(ctx):
    # given
    first = call("debit", ctx)
    with clock.posting_at(T0 + 2 * HOUR):
        services.debit(customer=ctx["customer"], amount=4900, kind="forfeit", reason="closed")
    before = ledger_state()
    # when
    replay = call("debit", ctx)
    # then
    assert replay.pk == first.pk
    assert ledger_state() == before


def test_replay_of_a_debit_after_its_lots_became_overdue_writes_not_even_the_expiry(ctx):
    # given
    first = call("debit", ctx)
    before = ledger_state()
    # when
    with clock.posting_at(T0 + 30 * DAY):
        replay = services.debit(customer=ctx["customer"], amount=100, kind="redeem", reason="checkout",
                                idempotency_key="k")
    # then
    assert replay.pk == first.pk
    assert ledger_state() == before


def test_replay_of_a_reversed_debit_key_returns_the_original_debit_not_a_new_one(ctx):
    # given
    first = call("debit", ctx)
    services.reverse(entry=first)
    before = ledger_state()
    # when
    replay = call("debit", ctx)
    # then
    assert replay.pk == first.pk
    assert ledger_state() == before


def test_replay_of_an_expiry_key_is_refused_for_a_grant(ctx):
    # given
    lot = lot_of(LedgerEntry.objects.filter(account=ctx["customer"].pk).first())
    services.expire_due(now=T0 + 10 * DAY)
    before = ledger_state()
    # when
    with pytest.raises(services.IdempotencyConflict):
        call("grant", ctx, idempotency_key=f"expire:{lot.pk}")
    # then
    assert ledger_state() == before
