import random

import pytest

from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from refunds.demo import seed_demo_requests
from refunds.models import RefundRequest
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_seed_demo_requests_makes_every_status_through_the_services(staff):
    # given
    for _ in range(14):
        ledger_services.grant(customer=CustomerFactory(), amount=6000, reason="setup")
    # when
    made = seed_demo_requests(actor=staff("Support admin"), rng=random.Random(3))
    again = seed_demo_requests(actor=staff("Support admin"), rng=random.Random(3))
    # then
    assert {r.status for r in made} == {"requested", "pending", "refunded", "rejected", "cancelled"}
    assert len(made) == 12 and again == [] and RefundRequest.objects.count() == 12
    short = [r for r in made if r.status == "requested"
             and r.amount > ledger_selectors.available_balance(customer=r.customer)]
    assert len(short) == 1
    assert ledger_selectors.verify_ledger() == []
