"""Reads for the orders pages. Pure: nothing here writes."""

from __future__ import annotations

from django.db.models import Q

from .models import Customer, Order, OrderNote
from .selectors import customer_match

# An order rarely has more than a handful of entries or notes; these caps keep a page
# bounded even for an order something went badly wrong with.
ENTRIES_LIMIT = 200
NOTES_LIMIT = 100


def order_search():
    """Every order, newest first, with what the list shows of its customer."""
    return Order.objects.select_related("customer").order_by("-placed_at", "-id")


def order_id_match(text: str) -> Q:
    """An order id typed in a search box: the whole id, or its start (case-insensitive)."""
    text = (text or "").strip()
    return Q(external_id=text) | Q(external_id__istartswith=text)


def customers_matching(text: str):
    """Ids of the customers a search box means (member ID, name, email, card digits)."""
    return Customer.objects.filter(customer_match(text)).values("pk")


def order_entries(*, order, limit: int = ENTRIES_LIMIT) -> list:
    """The ledger entries linked to `order` (what it earned, what was taken back, refunds
    with store credits, redemptions), newest first, with their staff user."""
    from ledger.models import LedgerEntry

    return list(LedgerEntry.objects.filter(order=order).select_related("actor")
                .order_by("-created_at", "-id")[:limit])


def order_notes(*, order, limit: int = NOTES_LIMIT) -> list:
    return list(OrderNote.objects.filter(order=order).select_related("author")
                .order_by("-created_at", "-id")[:limit])


def credits_summary(entries) -> dict:
    """Totals of an order's entries: credited (+), debited (−) and what a clawback could
    not take back."""
    credited = sum(e.amount for e in entries if e.amount > 0)
    debited = -sum(e.amount for e in entries if e.amount < 0)
    uncollected = sum(e.uncollected for e in entries)
    return {"credited": credited, "debited": debited, "net": credited - debited, "uncollected": uncollected}
