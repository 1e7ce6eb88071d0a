"""The engine: turns storefront events into mirrored customers/orders and ledger grants.

Each accepted event is recorded (StorefrontEvent) and evaluated against the allocation
rules in ONE transaction with everything it causes, so an event is applied entirely or
not at all. The event row is inserted first: a concurrent request with the same event id
waits on its unique key and then answers as a replay.

Idempotency: a replay of an event id with the same body returns the stored answer and
writes nothing; the same id with another body is a conflict (409). Rejected events
(EventRejected, 4xx) write nothing, so the storefront may retry them with the same id.

Out of order (reject and retry; nothing is parked):
  * order.paid / order.cancelled / customer.updated for a customer not registered yet
    -> 409 customer_not_registered;
  * order.refunded for an order not paid yet -> 409 order_not_paid;
  * order.paid for a cancelled order -> 409 order_cancelled;
  * order.refunded with a cumulative amount below the one already applied, or a
    customer.updated older than the last applied change -> accepted as "stale", no change;
  * paid orders count in the order their order.paid events are applied (first order,
    order-history tiers, spend history), not by their paid_at.

Locks, always in this order: the customer row, the order row, then (inside the ledger)
the credit account. Events of one customer are therefore applied one at a time, which is
what makes "first order", tiers and carried-over spend exact under concurrency."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Sum

from credits_admin import money
from credits_admin.db import RowReader, insert_instance, update_row
from crm import services as crm_services
from crm.models import Customer, Order
from ledger import clock
from ledger import services as ledger_services
from ledger.models import CreditLot, EntryKind, EntrySource, LedgerEntry

from . import allocation, events, selectors
from .events import EventRejected
from .models import AllocationRule, Method, ProgramSettings, Reclaim, StorefrontEvent
from .policy import rule_policy

log = logging.getLogger(__name__)

ORDER_METHODS = (Method.FIRST_ORDER, Method.PAID_ORDER, Method.ORDER_HISTORY, Method.SPEND_HISTORY)


@dataclass
class Answer:
    status_code: int
    text: str  # the JSON body, byte for byte what every replay answers too
    replayed: bool = False

    @property
    def body(self) -> dict:
        return json.loads(self.text)


def body_hash(raw: dict) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def receive(*, raw: dict, event) -> Answer:
    """Apply one validated event (`event`, a schema instance; `raw`, the body as received).
    Raises EventRejected for a 4xx. Call through credits_admin.db.retry_on_lock."""
    digest = body_hash(raw)
    for _attempt in range(3):
        try:
            # The insert of the event row comes first: a known event id fails right there
            # (one statement), a concurrent one waits for the first to commit, then fails.
            return _apply(raw=raw, event=event, digest=digest)
        except IntegrityError:
            stored = StorefrontEvent.objects.filter(event_id=event.id).first()
            if stored is not None:
                return _replay(stored, digest)
            # Another unique key lost a race (e.g. the same new customer registered by two
            # events at once); the next turn sees the winner's row and answers accordingly.
            log.info("event %s lost a race; applying it again", event.id)
    raise EventRejected(409, "The event conflicted with concurrent writes; send it again.", code="retry")


def _replay(stored: StorefrontEvent, digest: str) -> Answer:
    if stored.body_hash != digest:
        raise EventRejected(409, f"Event id {stored.event_id!r} was already used with a different body.",
                            code="event_id_reused")
    return Answer(stored.status_code, stored.response_text, replayed=True)


@dataclass
class _Run:
    """The state of one event while it is applied."""

    record: StorefrontEvent
    config: selectors.EngineConfig
    now: object
    grants: list = field(default_factory=list)
    reclaims: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    status: str = StorefrontEvent.Status.APPLIED

    @property
    def enabled(self) -> bool:
        return self.config.credits_enabled

    @property
    def program(self) -> ProgramSettings:
        """The expiry policy."""
        return self.config.program

    def active_rules(self) -> dict:
        return self.config.rules


def _apply(*, raw: dict, event, digest: str) -> Answer:
    with transaction.atomic():
        now = clock.now()
        record = StorefrontEvent(event_id=event.id, type=event.type, occurred_at=event.occurred_at, payload=raw,
                                 body_hash=digest, received_at=now)
        insert_instance(record)
        run = _Run(record=record, config=selectors.engine_config(), now=now)
        record.program_enabled = run.enabled
        result = None
        builtin = _BUILTIN.get(event.type)
        if builtin is not None:
            builtin(run, event.data)
        else:
            handler = events.handler_for(event.type)
            if handler is None:  # unregistered since validation: treat as unknown
                raise EventRejected(422, f"Unknown event type {event.type!r}.", code="unknown_type")
            result = handler(record)
            if result is not None and not isinstance(result, dict):
                raise TypeError("An event handler must return a dict (or None).")
        body = {
            "id": record.event_id, "type": record.type, "status": run.status,
            "program": "on" if run.enabled else "off",
            "customer": record.customer.member_id if record.customer_id else None,
            "order": record.order.external_id if record.order_id else None,
            "grants": run.grants, "reclaims": run.reclaims, "notes": run.notes, "result": result,
        }
        text = json.dumps(body, default=str)
        record.status = run.status
        record.response_text = text  # exactly what a replay will return
        record.granted = sum(g["amount"] for g in run.grants)
        record.reclaimed = sum(r["collected"] for r in run.reclaims)
        record.uncollected = sum(r["uncollected"] for r in run.reclaims)
        update_row(StorefrontEvent, record.pk, {
            name: getattr(record, name) for name in ("status", "response_text", "granted", "reclaimed", "uncollected",
                                                     "program_enabled", "customer_id", "order_id")})
    return Answer(200, text)


# --------------------------------------------------------------------------- helpers

_CUSTOMER_ROWS = RowReader(Customer, "c")
_ORDER_ROWS = RowReader(Order, "o")


def _lock_customer(member_id: str, *, required: bool = True) -> Customer | None:
    customer = _CUSTOMER_ROWS.first("c.member_id = %s", [member_id], lock=True)
    if customer is None and required:
        raise EventRejected(409, f"Customer {member_id!r} is not registered yet: send customer.registered "
                                 "first, then retry this event with the same id.", code="customer_not_registered")
    return customer


def _grant(run: _Run, rule: AllocationRule, grant: allocation.Grant, *, customer: Customer,
           order: Order | None = None) -> None:
    if grant.amount <= 0:
        return
    if grant.amount >= ledger_services.MAX_AMOUNT:
        run.notes.append(f"{rule.get_method_display()}: not granted, {grant.amount} is beyond the largest "
                         "amount the ledger accepts.")
        return
    policy = rule_policy(settings=run.program, rule=rule)
    expires_at = policy.expires_at(run.now)
    if expires_at is not None and expires_at <= run.now:
        run.notes.append(f"{rule.get_method_display()}: not granted, the expiry date of the policy "
                         f"({policy.date:%Y-%m-%d}) has passed.")
        return
    if grant.tier:
        key = f"grant:{rule.method}:tier{grant.tier}:{customer.pk}"
        if LedgerEntry.objects.filter(idempotency_key=key).exists():
            run.notes.append(f"{rule.get_method_display()}: tier {grant.tier} was already rewarded.")
            return
    else:
        key = f"grant:{rule.method}:{run.record.event_id}"
    details = {"rule": rule.parameters(), "rule_id": rule.pk, "event": run.record.event_id,
               "event_type": run.record.type, "basis": grant.basis, "expiry": policy.as_dict()}
    if grant.tier:
        details["tier"] = grant.tier
    if order is not None:
        details["order"] = order.external_id
    try:
        entry = ledger_services.grant(customer=customer, amount=grant.amount, reason=grant.reason,
                                      expires_at=expires_at, source=EntrySource.RULE, order=order,
                                      idempotency_key=key, details=details)
    except ledger_services.IdempotencyConflict:
        run.notes.append(f"{rule.get_method_display()}: tier {grant.tier} was already rewarded.")
        return
    if getattr(entry, "replayed", False):
        run.notes.append(f"{rule.get_method_display()}: already rewarded.")
        return
    run.grants.append({"entry": entry.pk, "rule": rule.method, "amount": grant.amount, "tier": grant.tier,
                       "expires_at": expires_at.isoformat() if expires_at else None})


def _off_note(run: _Run) -> None:
    run.notes.append("The credits program is off: no allocation rules were applied.")


# --------------------------------------------------------------------------- customers

def _customer_registered(run: _Run, data) -> None:
    if Customer.objects.filter(member_id=data.customer_id).exists():
        raise EventRejected(409, f"Customer {data.customer_id!r} is already registered; send customer.updated "
                                 "to change their details.", code="customer_exists")
    customer = crm_services.register_customer(member_id=data.customer_id, name=data.name, email=data.email,
                                              phone=data.phone,
                                              registered_at=data.registered_at or run.record.occurred_at)
    run.record.customer = customer
    if not run.enabled:
        return _off_note(run)
    rule = run.active_rules().get(Method.REGISTRATION)
    if rule is not None:
        for grant in allocation.registration_grants(rule):
            _grant(run, rule, grant, customer=customer)


def _customer_updated(run: _Run, data) -> None:
    customer = _lock_customer(data.customer_id)
    run.record.customer = customer
    if customer.status == Customer.Status.DELETED:
        run.status = StorefrontEvent.Status.STALE
        run.notes.append("The customer's account was deleted; their details are not stored again.")
        return
    latest = (StorefrontEvent.objects.filter(customer=customer, type__in=("customer.registered", "customer.updated"),
                                             status=StorefrontEvent.Status.APPLIED)
              .exclude(pk=run.record.pk).aggregate(m=Max("occurred_at"))["m"])
    if latest is not None and run.record.occurred_at < latest:
        run.status = StorefrontEvent.Status.STALE
        run.notes.append("A later change of this customer was already applied; nothing changed.")
        return
    changes = {name: getattr(data, name) for name in ("name", "email", "phone") if getattr(data, name) is not None}
    changed = crm_services.update_customer(customer=customer, changes=changes, source="storefront")
    if not changed:
        run.status = StorefrontEvent.Status.UNCHANGED
    run.notes.append(f"Changed: {', '.join(sorted(changed))}." if changed else "Nothing changed.")


# --------------------------------------------------------------------------- orders

def _order_paid(run: _Run, data) -> None:
    store_currency = money.store_currency()
    if data.currency and data.currency != store_currency:
        raise EventRejected(422, f"The order is in {data.currency} but the store currency is {store_currency}; "
                                 "amounts must be minor units of the store currency.", code="currency_mismatch")
    customer = _lock_customer(data.customer_id)
    order = _ORDER_ROWS.first("o.external_id = %s", [data.order_id], lock=True)
    if order is not None:
        if order.customer_id != customer.pk:
            raise EventRejected(409, f"Order {data.order_id!r} belongs to another customer.", code="order_customer")
        if order.status == Order.Status.CANCELLED:
            raise EventRejected(409, f"Order {data.order_id!r} was cancelled; it can no longer be paid.",
                                code="order_cancelled")
        if order.paid_at is not None:
            if (order.items_total, order.paid_amount) != (data.items_total, data.paid_amount):
                raise EventRejected(409, f"Order {data.order_id!r} is already paid with other amounts.",
                                    code="order_already_paid")
            run.record.customer, run.record.order = customer, order
            run.status = StorefrontEvent.Status.UNCHANGED
            run.notes.append("The order was already paid; nothing changed.")
            return
    with connection.cursor() as cursor:  # the orders paid before this one
        cursor.execute("SELECT COUNT(*), COALESCE(SUM(items_total), 0) FROM crm_order "
                       "WHERE customer_id = %s AND paid_at IS NOT NULL AND id <> %s",
                       [customer.pk, order.pk if order is not None else 0])
        paid_before, spent_before = cursor.fetchone()
    paid_at = data.paid_at or run.record.occurred_at
    fields = dict(customer=customer, paid_at=paid_at, status=Order.Status.PAID, items_total=data.items_total,
                  paid_amount=data.paid_amount, currency=store_currency,
                  placed_at=data.placed_at or (order.placed_at if order else paid_at))
    if order is None:
        order = Order(external_id=data.order_id, **fields)
        insert_instance(order)
    else:
        for name, value in fields.items():
            setattr(order, name, value)
        order.save()
    run.record.customer, run.record.order = customer, order
    if not run.enabled:
        return _off_note(run)
    if customer.status == Customer.Status.DELETED:
        run.notes.append("The customer's account was deleted: no allocation rules were applied.")
        return
    facts = allocation.OrderFacts(items_total=data.items_total, prev_paid_orders=int(paid_before),
                                  prev_spend=int(spent_before))
    rules = run.active_rules()
    for method in ORDER_METHODS:
        rule = rules.get(method)
        if rule is not None:
            for grant in allocation.order_grants(rule, facts):
                _grant(run, rule, grant, customer=customer, order=order)


def _locked_order(order_id: str, *, customer_id: str | None = None):
    """(customer, order) locked in that order; order None when unknown."""
    known = Order.objects.filter(external_id=order_id).values_list("customer__member_id", flat=True).first()
    if known is None:
        return (_lock_customer(customer_id) if customer_id else None), None
    customer = _lock_customer(known)
    return customer, Order.objects.select_for_update().get(external_id=order_id)


def _order_refunded(run: _Run, data) -> None:
    customer, order = _locked_order(data.order_id)
    if order is None or order.paid_at is None:
        raise EventRejected(409, f"Order {data.order_id!r} has not been paid yet (no order.paid received); "
                                 "retry this event later with the same id.", code="order_not_paid")
    run.record.customer, run.record.order = customer, order
    if data.refunded_amount > order.paid_amount:
        raise EventRejected(422, f"refunded_amount {data.refunded_amount} exceeds the order's paid amount "
                                 f"{order.paid_amount}.", code="refund_exceeds_paid")
    if data.refunded_amount < order.refunded_amount:
        run.status = StorefrontEvent.Status.STALE
        run.notes.append(f"Already {money.format_amount(order.refunded_amount)} refunded (cumulative); this older "
                         "refund changes nothing.")
        return
    if data.refunded_amount == order.refunded_amount:
        run.status = StorefrontEvent.Status.UNCHANGED
        run.notes.append("The refunded amount is unchanged; nothing to do.")
        return
    order.refunded_amount = data.refunded_amount
    if order.status != Order.Status.CANCELLED:
        order.status = (Order.Status.REFUNDED if data.refunded_amount == order.paid_amount
                        else Order.Status.PARTIALLY_REFUNDED)
    order.save(update_fields=["refunded_amount", "status", "updated_at"])
    full = order.status == Order.Status.CANCELLED
    _reclaim(run, order, refunded=order.paid_amount if full else order.refunded_amount, total=order.paid_amount,
             full=full)


def _order_cancelled(run: _Run, data) -> None:
    customer, order = _locked_order(data.order_id, customer_id=data.customer_id)
    if order is None:
        if customer is None:
            raise EventRejected(404, f"Order {data.order_id!r} is not known; give data.customer_id to record "
                                     "the cancellation of an order that was never paid.", code="order_not_found")
        order = Order.objects.create(external_id=data.order_id, customer=customer, placed_at=run.record.occurred_at,
                                     status=Order.Status.CANCELLED, currency=money.store_currency())
        run.record.customer, run.record.order = customer, order
        run.notes.append("Recorded the cancellation of an order never reported as paid.")
        return
    run.record.customer, run.record.order = customer, order
    if order.status == Order.Status.CANCELLED:
        run.status = StorefrontEvent.Status.UNCHANGED
        run.notes.append("The order was already cancelled.")
        return
    order.status = Order.Status.CANCELLED
    order.save(update_fields=["status", "updated_at"])
    if order.paid_at is not None:
        _reclaim(run, order, refunded=order.paid_amount, total=order.paid_amount, full=True)


def _reclaim(run: _Run, order: Order, *, refunded: int, total: int, full: bool) -> None:
    """Take back, for each lot the order earned, floor(lot.amount * refunded / total) in all:
    only the difference from what earlier refunds of this order already claimed."""
    lots = list(CreditLot.objects.filter(entry__order=order, entry__kind=EntryKind.GRANT,
                                         entry__source=EntrySource.RULE, entry__reversed_by__isnull=True)
                .order_by("id"))
    if not lots:
        return
    claimed = dict(Reclaim.objects.filter(order=order, lot__in=lots).values("lot")
                   .annotate(s=Sum("claimed")).values_list("lot", "s"))
    for lot in lots:
        if full:
            target = lot.amount
        elif total <= 0:
            continue
        else:
            target = lot.amount * refunded // total
        step = target - int(claimed.get(lot.pk) or 0)
        if step <= 0:
            continue
        entry = ledger_services.clawback(
            customer=order.customer_id, amount=step, lot=lot, order=order,
            reason=f"{'Cancellation' if full and order.status == Order.Status.CANCELLED else 'Refund'} "
                   f"of order {order.external_id}",
            idempotency_key=f"clawback:{run.record.event_id}:{lot.pk}",
            details={"event": run.record.event_id, "lot": lot.pk, "lot_amount": lot.amount, "refunded": refunded,
                     "total": total, "target": target, "claimed_before": target - step, "claimed": step})
        collected = -entry.amount if entry is not None else 0
        uncollected = step - collected
        Reclaim.objects.create(event=run.record, order=order, lot=lot, entry=entry, refunded=refunded, total=total,
                               target=target, claimed=step, collected=collected, uncollected=uncollected,
                               created_at=run.now)
        run.reclaims.append({"lot": lot.pk, "entry": entry.pk if entry else None, "claimed": step,
                             "collected": collected, "uncollected": uncollected})
        if uncollected:
            run.notes.append(f"{money.format_amount(uncollected)} of lot {lot.pk} could not be taken back: the "
                             "balance did not allow it.")


_BUILTIN = {
    "customer.registered": _customer_registered,
    "customer.updated": _customer_updated,
    "order.paid": _order_paid,
    "order.refunded": _order_refunded,
    "order.cancelled": _order_cancelled,
}
