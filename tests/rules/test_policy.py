"""The expiry policy: what rules.policy.expiry_for answers, and that lots keep theirs."""

import datetime as dt

import pytest
from django.conf import settings

from ledger import clock
from ledger import services as ledger_services
from ledger.models import CreditLot
from rules import services
from rules.models import ProgramSettings
from rules.policy import ExpiryPolicy, expiry_for
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2030, 6, 15, 9, 30, tzinfo=dt.UTC)


def test_settings_point_the_ledger_at_the_rules_policy():
    # then
    assert settings.LEDGER_EXPIRY_POLICY == "rules.policy.expiry_for"


def test_default_policy_is_permanent_for_every_source_and_writes_nothing():
    # when
    answers = [expiry_for(source="rule", now=NOW, rule="paid_order"), expiry_for(source="staff", now=NOW),
               expiry_for(source="staff", now=NOW, purpose="refund"), expiry_for(source="api", now=NOW)]
    # then
    assert answers == [None, None, None, None]
    assert not ProgramSettings.objects.exists()


def test_policy_answers_per_source_and_purpose():
    # given
    services.update_expiry_policy(actor=None, same_expiry_for_all=True, expiry_mode="days", expiry_days=30,
                                  staff_expiry_mode="date", staff_expiry_date=dt.date(2030, 12, 31),
                                  refund_expiry_mode="days", refund_expiry_days=365)
    # then
    assert expiry_for(source="rule", now=NOW, rule="first_order") == NOW + dt.timedelta(days=30)
    assert expiry_for(source="staff", now=NOW) == dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    assert expiry_for(source="bulk", now=NOW) == dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    assert expiry_for(source="staff", now=NOW, purpose="refund") == NOW + dt.timedelta(days=365)
    assert expiry_for(source="system", now=NOW) is None


def test_per_rule_expiry_when_not_shared(make_rule):
    # given
    services.update_expiry_policy(actor=None, same_expiry_for_all=False, expiry_mode="days", expiry_days=30)
    make_rule("registration", amount=100, expiry_mode="days", expiry_days=10)
    # then
    assert expiry_for(source="rule", now=NOW, rule="registration") == NOW + dt.timedelta(days=10)
    assert expiry_for(source="rule", now=NOW, rule="paid_order") == NOW + dt.timedelta(days=30)  # no such rule


@pytest.mark.parametrize(("policy", "text"), [
    (ExpiryPolicy(), "Credits never expire."),
    (ExpiryPolicy(mode="days", days=1), "Credits expire 1 day after they are granted."),
    (ExpiryPolicy(mode="days", days=365), "Credits expire 365 days after they are granted."),
    (ExpiryPolicy(mode="date", date=dt.date(2030, 12, 31)), "Credits expire at the end of 2030-12-31."),
])
def test_policy_describes_itself_in_plain_words(policy, text):
    # then
    assert policy.describe() == text


def test_set_balance_uses_the_staff_policy_and_later_changes_leave_the_lot_alone():
    # given
    customer = CustomerFactory()
    services.update_expiry_policy(actor=None, staff_expiry_mode="days", staff_expiry_days=90)
    # when
    with clock.posting_at(NOW):
        ledger_services.set_balance(customer=customer, target=1500, reason="Correction")
    services.update_expiry_policy(actor=None, staff_expiry_mode="days", staff_expiry_days=1)
    services.update_expiry_policy(actor=None, staff_expiry_mode="never")
    # then
    assert CreditLot.objects.get().expires_at == NOW + dt.timedelta(days=90)


def test_policy_expiry_for_refunds_reaches_the_ledger_hook():
    # given
    services.update_expiry_policy(actor=None, refund_expiry_mode="days", refund_expiry_days=60)
    # when
    answer = ledger_services.policy_expiry(source="staff", now=NOW, purpose="refund")
    # then
    assert answer == NOW + dt.timedelta(days=60)


def test_per_rule_expiry_changes_never_touch_lots_already_granted(client):
    # given: per-rule expiry, a registration rule valid for 10 days, one customer rewarded
    from credits_admin.apikeys import create_api_key

    from .conftest import registered

    _, key = create_api_key(name="storefront")
    services.update_expiry_policy(actor=None, same_expiry_for_all=False)
    rule = services.create_rule(actor=None, method="registration", mode="fixed", amount=100, expiry_mode="days",
                                expiry_days=10)
    with clock.posting_at(NOW):
        response = client.post("/api/v1/events", registered("M1"), content_type="application/json",
                               headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    # when: the rule's own expiry changes, then the shared policy takes over again
    services.update_rule(actor=None, rule=rule, mode="fixed", amount=100, expiry_mode="date",
                         expiry_date=dt.date(2031, 1, 31))
    services.update_expiry_policy(actor=None, same_expiry_for_all=True, expiry_mode="days", expiry_days=1)
    services.update_expiry_policy(actor=None, expiry_mode="never")
    # then
    assert CreditLot.objects.get().expires_at == NOW + dt.timedelta(days=10)


def test_refund_with_store_credits_expires_as_the_refund_policy_says_and_keeps_it():
    # given
    from refunds import services as refund_services
    from tests.factories import OrderFactory

    order = OrderFactory()
    services.update_expiry_policy(actor=None, refund_expiry_mode="days", refund_expiry_days=60,
                                  expiry_mode="days", expiry_days=5, staff_expiry_mode="days", staff_expiry_days=7)
    # when
    with clock.posting_at(NOW):
        refund = refund_services.refund_with_store_credits(order=order, amount=500, note="Sorry.", notify=False,
                                                           actor=None, idempotency_key="k-policy")
    services.update_expiry_policy(actor=None, refund_expiry_mode="never")
    # then: the refunds policy, not the rules' or staff's, fixed on the lot
    assert refund.entry.lot.expires_at == NOW + dt.timedelta(days=60)
    assert CreditLot.objects.get().expires_at == NOW + dt.timedelta(days=60)


def test_refund_with_store_credits_when_the_refund_expiry_date_has_passed_is_refused_and_writes_nothing():
    # given: a fixed date that was in the future when set, and has passed since
    from crm.models import OrderNote
    from ledger.models import LedgerEntry
    from refunds import services as refund_services
    from refunds.exceptions import RequestInvalid
    from tests.factories import OrderFactory

    order = OrderFactory()
    services.update_expiry_policy(actor=None, refund_expiry_mode="date", refund_expiry_date=dt.date(2030, 6, 1))
    # when
    with clock.posting_at(NOW), pytest.raises(RequestInvalid) as exc:
        refund_services.refund_with_store_credits(order=order, amount=500, note="Sorry.", notify=False, actor=None,
                                                  idempotency_key="k-passed")
    # then
    assert "has passed" in exc.value.message
    assert not LedgerEntry.objects.exists() and not OrderNote.objects.exists()
