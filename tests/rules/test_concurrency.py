"""Races on PostgreSQL: the same event twice at once, and two events of one customer."""

import threading

import pytest
from django.db import connection
from django.test import Client

from credits_admin.apikeys import create_api_key
from ledger.models import LedgerEntry
from rules import services
from rules.models import StorefrontEvent

from .conftest import paid, registered

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(bodies, key):
    """POST every body at the same moment, one thread each; the responses in order."""
    barrier = threading.Barrier(len(bodies))
    answers = [None] * len(bodies)

    def run(i, body):
        try:
            client = Client()
            barrier.wait()
            answers[i] = client.post("/api/v1/events", body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {key}"})
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, b)) for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_same_event_sent_four_times_at_once_is_applied_once_and_answered_alike():
    # given
    _, key = create_api_key(name="race")
    services.create_rule(actor=None, method="registration", mode="fixed", amount=500)
    body = registered("R1")
    # when
    answers = _race([body] * 4, key)
    # then
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.content for a in answers}) == 1
    assert sum(1 for a in answers if a.get("Idempotent-Replayed") == "true") == 3
    assert StorefrontEvent.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_two_orders_of_one_customer_at_once_reward_first_order_and_each_tier_once():
    # given
    _, key = create_api_key(name="race")
    services.create_rule(actor=None, method="first_order", mode="fixed", amount=1000)
    services.create_rule(actor=None, method="spend_history", mode="tiers",
                         tiers=[{"threshold": 5000, "amount": 100}, {"threshold": 9000, "amount": 900}])
    Client().post("/api/v1/events", registered("R2"), content_type="application/json",
                  headers={"Authorization": f"Bearer {key}"})
    # when
    answers = _race([paid("RA", "R2", 5000), paid("RB", "R2", 5000)], key)
    # then
    assert [a.status_code for a in answers] == [200, 200]
    grants = sorted(LedgerEntry.objects.filter(kind="grant").values_list("amount", flat=True))
    assert grants == [100, 900, 1000]
