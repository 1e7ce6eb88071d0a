from decimal import Decimal

import pytest

from ledger import clock, selectors, services
from ledger.models import EntryKind
from tests.ledger.support import DAY, HOUR, T0, consumptions_of, grant_at, ledger_state, lot_of, remaining

pytestmark = pytest.mark.django_db

POLICY_CALLS = []


def thirty_days_policy(*, source, now, **context):
    """A store policy for the tests: staff credits expire 30 days after they are posted."""
    POLICY_CALLS.append((source, now))
    return now + 30 * DAY


def ninety_days_policy(*, source, now, **context):
    return now + 90 * DAY


@pytest.fixture
def thirty_day_policy(settings):
    POLICY_CALLS.clear()
    settings.LEDGER_EXPIRY_POLICY = f"{__name__}.thirty_days_policy"
    return POLICY_CALLS


def set_balance_at(moment, *, customer, target, **kwargs):
    with clock.posting_at(moment):
        return services.set_balance(customer=customer, target=target,
                                    reason=kwargs.pop("reason", "correction"), **kwargs)


def test_set_balance_above_the_balance_grants_the_difference_expiring_by_policy(customer, thirty_day_policy):
    # given
    grant_at(T0, customer=customer, amount=300)
    # when
    entry = set_balance_at(T0 + HOUR, customer=customer, target=1000, comment="per phone call")
    # then
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.GRANT, 700, 1000)
    assert (entry.source, entry.comment, entry.details) == ("staff", "per phone call", {"set_balance": 1000})
    lot = lot_of(entry)
    assert (lot.amount, lot.remaining, lot.expires_at) == (700, 700, T0 + HOUR + 30 * DAY)
    assert thirty_day_policy == [("staff", T0 + HOUR)]


def test_set_balance_grant_never_expires_when_no_policy_is_set(customer, settings):
    # given
    settings.LEDGER_EXPIRY_POLICY = ""
    # when
    entry = set_balance_at(T0, customer=customer, target=500)
    # then
    assert entry.amount == 500
    assert lot_of(entry).expires_at is None


def test_set_balance_grant_keeps_its_expiry_when_the_policy_changes_later(
        customer, settings, thirty_day_policy):
    # given
    entry = set_balance_at(T0, customer=customer, target=500)
    # when
    settings.LEDGER_EXPIRY_POLICY = f"{__name__}.ninety_days_policy"
    later = set_balance_at(T0 + HOUR, customer=customer, target=800)
    # then
    assert lot_of(entry).expires_at == T0 + 30 * DAY
    assert lot_of(later).expires_at == T0 + HOUR + 90 * DAY


def test_set_balance_below_the_balance_deducts_the_difference_first_expiring_first(
        customer, thirty_day_policy):
    # given
    never = grant_at(T0, customer=customer, amount=500)
    dated = grant_at(T0, customer=customer, amount=300, expires_at=T0 + 5 * DAY)
    # when
    entry = set_balance_at(T0 + HOUR, customer=customer, target=400)
    # then
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.DEDUCT, -400, 400)
    assert consumptions_of(entry) == [(lot_of(dated).pk, 300), (lot_of(never).pk, 100)]
    assert remaining(never, dated) == [400, 0]
    assert thirty_day_policy == []


def test_set_balance_to_zero_deducts_everything(funded_customer):
    # when
    entry = services.set_balance(customer=funded_customer, target=0, reason="account closed")
    # then
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.DEDUCT, -5000, 0)
    assert selectors.available_balance(customer=funded_customer) == 0


def test_set_balance_equal_to_the_balance_returns_none_and_writes_nothing(funded_customer, thirty_day_policy):
    # given
    before = ledger_state()
    # when
    entry = services.set_balance(customer=funded_customer, target=5000, reason="correction")
    # then
    assert entry is None
    assert ledger_state() == before


def test_set_balance_zero_on_first_use_returns_none(customer):
    # when
    entry = set_balance_at(T0, customer=customer, target=0)
    # then
    assert entry is None
    assert selectors.account_balance(customer=customer) == 0


def test_set_balance_counts_from_what_is_left_after_lazy_expiry(customer, thirty_day_policy):
    # given
    dated = grant_at(T0, customer=customer, amount=100, expires_at=T0 + DAY)
    grant_at(T0, customer=customer, amount=50)
    # when
    entry = set_balance_at(T0 + DAY, customer=customer, target=80)
    # then
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.GRANT, 30, 80)
    assert lot_of(dated).remaining == 0
    assert selectors.available_balance(customer=customer, at=T0 + DAY) == 80
    assert selectors.verify_ledger() == []


@pytest.mark.parametrize("target", [-1, 1.5, 10.0, True, Decimal("10"), "10", None, 10**15],
                         ids=["negative", "float", "integral-float", "bool", "decimal", "str", "none",
                              "huge"])
def test_set_balance_with_invalid_target_raises_and_writes_nothing(funded_customer, target):
    # given
    before = ledger_state()
    # when
    with pytest.raises(services.InvalidPosting) as excinfo:
        services.set_balance(customer=funded_customer, target=target, reason="correction")
    # then
    assert str(excinfo.value) == "The target balance must be a whole number of minor units, zero or more."
    assert ledger_state() == before
