"""The storefront events API: POST /api/v1/events (and GET /api/v1/events/{id}).
API-key auth is applied by credits_admin.api to every endpoint."""

from __future__ import annotations

import json

from django.http import HttpResponse, JsonResponse
from ninja import Body, Router
from ninja.errors import HttpError

from credits_admin.db import retry_on_lock

from . import engine
from .events import EventRejected
from .models import StorefrontEvent
from .schemas import ErrorOut, EventIn, EventOut

router = Router(tags=["rules"])

EVENTS_DOC = """
Report what happened in the storefront. The credits engine records the event, mirrors the
customer or order, and applies the allocation rules (when the credits program is on) in one
transaction with the grants it causes. Amounts are integers of minor units of the store
currency (cents; won/yen for KRW/JPY).

| type | data |
| --- | --- |
| `customer.registered` | `customer_id`, `name`, `email`, `phone`, `registered_at` |
| `customer.updated` | `customer_id` and any of `name`, `email`, `phone` |
| `order.paid` | `order_id`, `customer_id`, `items_total`, `paid_amount`, `currency`, `placed_at`, `paid_at` |
| `order.refunded` | `order_id`, `refunded_amount` (**cumulative** refunded so far) |
| `order.cancelled` | `order_id` (`customer_id` for an order never reported as paid) |

Other apps may register more types (e.g. `customer.deletion_requested`); their `data` is
validated by their handler.

**Idempotency.** `id` identifies the event. Sending the same id with the same body again
returns exactly the first answer (header `Idempotent-Replayed: true`) and changes nothing;
the same id with a different body is refused with 409 `event_id_reused`. Rejected events
(any 4xx) write nothing, so they can be sent again with the same id.

**Out of order.** Events are never parked; the engine refuses what it cannot apply yet with
409, and the storefront retries later with the same id:

* `order.paid`, `order.cancelled` or `customer.updated` for a customer not registered yet:
  409 `customer_not_registered`;
* `order.refunded` for an order not paid yet: 409 `order_not_paid`;
* `order.paid` for an order already cancelled: 409 `order_cancelled`;
* `order.paid` again for a paid order: 200 `unchanged` when the amounts are the same,
  409 `order_already_paid` otherwise;
* `order.refunded` whose cumulative amount is below the one already applied (an older
  refund arriving late) and `customer.updated` older than the last applied change:
  accepted as `stale`, nothing changes;
* `order.cancelled` for an unknown order without `customer_id`: 404 `order_not_found`;
* paid orders count in the order their `order.paid` events are applied (one customer's
  events are applied one at a time): "first order", order-history tiers and spend history
  look at the orders paid before this event was applied, whatever their `paid_at`.

**Refunds.** For every credit lot the order earned, the engine takes back
`floor(lot_amount * refunded_amount / paid_amount)` in all (a cancellation takes back
everything); each refund posts only the difference, from that lot first, never below a zero
balance. What could not be taken is reported as `uncollected`.

**Program off.** Events are still recorded and orders mirrored, but no rule grants credits
(`program: "off"`); refunds still take back what orders earned.
"""


@router.post("/events", response={200: EventOut, 401: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut},
             summary="Report a storefront event", description=EVENTS_DOC, operation_id="post_event")
def post_event(request, event: Body[EventIn]):
    raw = json.loads(request.body)
    try:
        answer = retry_on_lock(lambda: engine.receive(raw=raw, event=event))
    except EventRejected as exc:
        return JsonResponse({"detail": exc.message, "code": exc.code}, status=exc.status_code)
    response = HttpResponse(answer.text, status=answer.status_code, content_type="application/json")
    if answer.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


@router.get("/events/{event_id}", response={200: EventOut, 401: ErrorOut, 404: ErrorOut},
            summary="The answer given to an event", operation_id="get_event",
            description="What `POST /events` answered for this event id (404 if the event was never "
                        "accepted: rejected events are not recorded).")
def get_event(request, event_id: str):
    stored = StorefrontEvent.objects.filter(event_id=event_id).first()
    if stored is None:
        raise HttpError(404, f"No event with id {event_id!r} was accepted.")
    return HttpResponse(stored.response_text, status=stored.status_code, content_type="application/json")
