"""The extension point for storefront event types other apps handle.

    # notifications/apps.py
    def ready(self):
        from rules import events
        events.register("customer.deletion_requested", handle_deletion_requested)

    def handle_deletion_requested(event):        # a rules.models.StorefrontEvent
        data = event.data                        # the free `data` dict of the request
        if "customer_id" not in data:
            raise events.EventRejected(422, "data.customer_id is required.")
        ...                                      # writes, in the event's transaction
        return {"customer": data["customer_id"], "status": "deletion requested"}

`POST /api/v1/events` accepts a registered type with any `data` object; the handler runs
inside the transaction that records the event (so a replay of the same event id returns
the stored answer and never runs it twice), validates `data` itself and may raise
EventRejected(status_code, message) to answer a 4xx and write nothing. What it returns
(a JSON-able dict) is the `result` of the answer. It may set `event.customer` /
`event.order` (saved with the event) to link the event to them.
"""

from __future__ import annotations

from collections.abc import Callable

BUILTIN_TYPES = ("customer.registered", "customer.updated", "order.paid", "order.refunded", "order.cancelled")

_handlers: dict[str, Callable] = {}


class EventRejected(Exception):
    """Raised by a handler to refuse an event: nothing is written and the API answers
    `status_code` with {"detail": message, "code": code}."""

    def __init__(self, status_code: int, message: str, *, code: str = "rejected"):
        if not 400 <= int(status_code) <= 499:
            raise ValueError("EventRejected needs a 4xx status code.")
        self.status_code = int(status_code)
        self.message = str(message)
        self.code = code
        super().__init__(message)


def register(event_type: str, handler: Callable) -> None:
    """Handle `event_type` with handler(event) -> dict. Registering the same handler again
    is harmless (apps' ready() may run twice in tests); another handler is an error."""
    if event_type in BUILTIN_TYPES:
        raise ValueError(f"{event_type} is handled by the credits engine itself.")
    if not event_type or len(event_type) > 64 or not all(c.isalnum() or c in "._-" for c in event_type):
        raise ValueError("Event types are 1-64 letters, digits, dots, dashes or underscores.")
    existing = _handlers.get(event_type)
    if existing is not None and existing is not handler:
        raise ValueError(f"{event_type} already has a handler ({existing!r}).")
    _handlers[event_type] = handler


def unregister(event_type: str) -> None:
    """For tests."""
    _handlers.pop(event_type, None)


def handler_for(event_type: str) -> Callable | None:
    return _handlers.get(event_type)


def registered_types() -> list[str]:
    return sorted(_handlers)
