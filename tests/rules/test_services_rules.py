"""The services' own guard on rule parameters: whatever calls them, a rule the engine
cannot apply is never saved."""

import datetime as dt

import pytest

from credits_admin.models import AuditEvent
from rules import services
from rules.exceptions import InvalidRule
from rules.models import AllocationRule

pytestmark = pytest.mark.django_db

TIERS = [{"threshold": 2, "amount": 100}, {"threshold": 3, "amount": 300}]


@pytest.mark.parametrize(("method", "values", "message"), [
    pytest.param("first_order", {"mode": "tiers", "tiers": TIERS}, "cannot use the mode", id="mode-of-another-method"),
    pytest.param("registration", {"mode": "fixed"}, "amount of credits", id="no-amount"),
    pytest.param("registration", {"mode": "fixed", "amount": 0}, "amount of credits", id="zero-amount"),
    pytest.param("paid_order", {"mode": "fixed", "amount": 1.5}, "amount of credits", id="float-amount"),
    pytest.param("paid_order", {"mode": "per_value", "amount": 100}, "amount X", id="per-value-without-x"),
    pytest.param("spend_history", {"mode": "every", "amount": 100, "per_amount": -1}, "amount X", id="negative-x"),
    pytest.param("paid_order", {"mode": "fixed", "amount": 100, "min_spend": -1}, "minimum spend", id="negative-min"),
    pytest.param("order_history", {"mode": "fixed", "tiers": []}, "1 to 5 tiers", id="no-tiers"),
    pytest.param("order_history", {"mode": "fixed", "tiers": [{"threshold": n, "amount": 1} for n in range(1, 7)]},
                 "1 to 5 tiers", id="six-tiers"),
    pytest.param("order_history", {"mode": "fixed", "tiers": [{"threshold": 3, "amount": 1}, {"threshold": 3,
                                                                                             "amount": 2}]},
                 "thresholds must increase", id="equal-thresholds"),
    pytest.param("spend_history", {"mode": "tiers", "tiers": [{"threshold": 500, "amount": 1},
                                                              {"threshold": 100, "amount": 2}]},
                 "thresholds must increase", id="decreasing-thresholds"),
    pytest.param("spend_history", {"mode": "tiers", "tiers": [{"threshold": 500, "amount": 0}]},
                 "greater than zero", id="zero-tier-amount"),
    pytest.param("registration", {"mode": "fixed", "amount": 100, "expiry_mode": "days"}, "how many days",
                 id="days-without-a-number"),
    pytest.param("registration", {"mode": "fixed", "amount": 100, "expiry_mode": "date"}, "last day",
                 id="date-without-a-date"),
])
def test_create_rule_refuses_parameters_the_engine_cannot_apply(method, values, message):
    # when
    with pytest.raises(InvalidRule) as exc:
        services.create_rule(actor=None, method=method, **values)
    # then
    assert message in str(exc.value)
    assert not AllocationRule.objects.exists()
    assert not AuditEvent.objects.filter(action="rules.rule_added").exists()


def test_update_rule_with_invalid_parameters_keeps_the_rule_as_it_was():
    # given
    rule = services.create_rule(actor=None, method="order_history", mode="fixed", tiers=TIERS)
    # when
    with pytest.raises(InvalidRule):
        services.update_rule(actor=None, rule=rule, tiers=[{"threshold": 3, "amount": 100},
                                                           {"threshold": 2, "amount": 300}])
    # then
    rule.refresh_from_db()
    assert (rule.tiers, rule.version) == (TIERS, 1)
    assert not AuditEvent.objects.filter(action="rules.rule_changed").exists()


def test_valid_rules_of_every_method_are_saved():
    # when
    for method, values in [("first_order", {"mode": "per_value", "amount": 100, "per_amount": 1000}),
                           ("paid_order", {"mode": "fixed", "amount": 300, "min_spend": 0}),
                           ("registration", {"mode": "fixed", "amount": 500, "expiry_mode": "date",
                                             "expiry_date": dt.date(2031, 1, 1)}),
                           ("order_history", {"mode": "fixed", "tiers": TIERS}),
                           ("spend_history", {"mode": "every", "amount": 500, "per_amount": 5000})]:
        services.create_rule(actor=None, method=method, **values)
    # then
    assert AllocationRule.objects.count() == 5
