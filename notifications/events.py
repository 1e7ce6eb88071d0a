"""Handlers of the storefront's account-deletion events (`POST /api/v1/events`, through
rules.events). Each runs inside the transaction that records the event: a replay of the
same event id gets the stored answer and never runs the handler twice, and an
EventRejected writes nothing."""

from __future__ import annotations

from crm.models import Customer

from . import services

DELETION_REQUESTED = "customer.deletion_requested"
DELETION_CONFIRMED = "customer.deletion_confirmed"


def _customer(event) -> Customer:
    from rules.events import EventRejected

    data = event.data if isinstance(getattr(event, "data", None), dict) else {}
    member_id = data.get("customer_id")
    if not isinstance(member_id, str | int) or isinstance(member_id, bool) or not str(member_id).strip():
        raise EventRejected(422, "data.customer_id (the storefront's customer id) is required.",
                            code="invalid_data")
    customer = Customer.objects.filter(member_id=str(member_id).strip()).first()
    if customer is None:
        raise EventRejected(404, f"No customer with id {str(member_id)[:64]!r}.", code="unknown_customer")
    event.customer = customer
    return customer


def handle_deletion_requested(event) -> dict:
    customer = _customer(event)
    return services.request_account_deletion(customer=customer, event_id=event.event_id)


def handle_deletion_confirmed(event) -> dict:
    customer = _customer(event)
    return services.confirm_account_deletion(customer=customer, event_id=event.event_id)


def register() -> None:
    """Called from NotificationsConfig.ready(). Fails loudly if rules.events is missing:
    the storefront's deletion events would otherwise be refused as unknown types."""
    from rules import events

    events.register(DELETION_REQUESTED, handle_deletion_requested)
    events.register(DELETION_CONFIRMED, handle_deletion_confirmed)
