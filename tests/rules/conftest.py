"""Helpers for the credits program tests: an API key, event bodies, rules set up through
the services (never written directly)."""

import datetime as dt
import itertools

import pytest

from credits_admin.apikeys import create_api_key
from credits_admin.models import StoreSettings
from rules import services

_ids = itertools.count(1)
T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def event(type_, data, *, id=None, occurred_at=None):
    """A request body for POST /api/v1/events."""
    return {"id": id or f"evt-{next(_ids):06d}", "type": type_,
            "occurred_at": (occurred_at or dt.datetime.now(dt.UTC)).isoformat(), "data": data}


def registered(member_id, **extra):
    return event("customer.registered", {"customer_id": member_id, "name": extra.pop("name", f"Customer {member_id}"),
                                         "email": extra.pop("email", f"{member_id.lower()}@example.com"), **extra})


def paid(order_id, member_id, items_total, *, paid_amount=None, **extra):
    return event("order.paid", {"order_id": order_id, "customer_id": member_id, "items_total": items_total,
                                "paid_amount": items_total if paid_amount is None else paid_amount, **extra})


def refunded(order_id, refunded_amount, **kwargs):
    return event("order.refunded", {"order_id": order_id, "refunded_amount": refunded_amount}, **kwargs)


def cancelled(order_id, member_id=None, **kwargs):
    data = {"order_id": order_id}
    if member_id:
        data["customer_id"] = member_id
    return event("order.cancelled", data, **kwargs)


@pytest.fixture
def api_key(db):
    _, raw = create_api_key(name="storefront")
    return raw


@pytest.fixture
def send(client, api_key):
    """send(body) -> response of POST /api/v1/events with the API key."""

    def post(body, *, key=api_key):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return client.post("/api/v1/events", body, content_type="application/json", headers=headers)

    return post


@pytest.fixture
def make_rule(db):
    """make_rule("paid_order", mode="per_value", amount=500, per_amount=5000) through the service."""

    def make(method, **values):
        values.setdefault("mode", "fixed")
        return services.create_rule(actor=None, method=method, **values)

    return make


@pytest.fixture
def program_off(db):
    store = StoreSettings.load()
    services.update_program_settings(actor=None, credits_enabled=False, store_name=store.store_name or "Demo Store",
                                     currency="USD", refund_note=store.refund_note)
