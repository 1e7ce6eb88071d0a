"""Demo data for `make run`: cash-refund requests in every status, made through the real
services (so the ledger, audit log and emails agree). Called by crm's seed_demo:

    from refunds.demo import seed_demo_requests
    seed_demo_requests(actor=support_admin_user, rng=random.Random(7))
"""

from __future__ import annotations

import random

from ledger import services as ledger_services
from ledger.models import CreditAccount

from . import services
from .exceptions import RefundError
from .models import RefundRequest

BANKS = ["First Bank", "City Savings", "Harbor Credit Union", "National Bank"]
REASONS = ["Credits from a promotion cannot be cashed out.",
           "The account holder's name does not match the customer's."]


def seed_demo_requests(*, actor, rng: random.Random | None = None, count: int = 12) -> list[RefundRequest]:
    """About `count` requests from customers with at least 20.00 available: some waiting
    (requested/pending), some refunded (one undone and pending again), one rejected, one
    cancelled, and one whose customer has since spent too much to be refunded. Skips
    customers that already have an open request. Does nothing when demo requests exist."""
    if RefundRequest.objects.filter(idempotency_key__startswith="demo:").exists():
        return []
    rng = rng or random.Random(7)
    ids = list(CreditAccount.objects.filter(balance__gte=2000).order_by("pk").values_list("pk", flat=True)[:400])
    rng.shuffle(ids)
    made: list[RefundRequest] = []
    plan = ["requested", "requested", "pending", "pending", "refunded", "refunded", "undone", "rejected",
            "cancelled", "short", "requested", "pending"][:count]
    for customer_id, fate in zip(ids, plan, strict=False):
        available = services.ledger_selectors.available_balance(customer=customer_id)
        amount = max(100, (available // 2 if rng.random() < 0.5 else available) // 100 * 100)
        customer = CreditAccount.objects.get(pk=customer_id).customer
        try:
            req = services.create_request(
                customer=customer, amount=amount, channel="storefront" if rng.random() < 0.8 else "staff",
                actor=actor, account_holder=customer.name, bank_name=rng.choice(BANKS),
                account_number=str(rng.randint(10**9, 10**12 - 1)), idempotency_key=f"demo:{customer_id}")
            if getattr(req, "replayed", False):
                continue
            if fate in ("pending", "refunded", "undone"):
                services.mark_pending(request=req, actor=actor)
            if fate in ("refunded", "undone"):
                services.refund(request=req, actor=actor)
            if fate == "undone":
                services.undo(request=req, actor=actor)
            if fate == "rejected":
                services.reject(request=req, actor=actor, reason=rng.choice(REASONS))
            if fate == "cancelled":
                services.cancel(request=req, reason="Changed my mind.")
            if fate == "short":  # spent at checkout after asking: Refund will be refused
                spend = services.ledger_selectors.available_balance(customer=customer_id) - amount // 2
                if spend > 0:
                    ledger_services.debit(customer=customer_id, amount=spend, kind="redeem", reason="Checkout",
                                          source="api", idempotency_key=f"demo-short:{req.pk}")
        except RefundError:
            continue
        req.refresh_from_db()
        made.append(req)
    return made
