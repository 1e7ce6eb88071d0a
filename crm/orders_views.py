"""The orders pages: a searchable list and an order's detail page (facts, customer, the
ledger entries linked to the order and its notes, and the actions staff can take on it)."""

from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET
from django_tables2 import RequestConfig

from . import orders_selectors
from .models import Order
from .orders_filters import OrderFilter
from .orders_tables import OrderPaginator, OrderTable

PER_PAGE = 25
REFUND_WITH_CREDITS = "refunds:order_refund_with_credits"
# Posting credits, and the refunds app's own permission for its pop-up (so the button
# never leads to a 403).
REFUND_WITH_CREDITS_PERMS = ("ledger.add_ledgerentry", "refunds.add_storecreditrefund")


@require_GET
@permission_required("crm.view_order", raise_exception=True)
def order_list(request):
    filterset = OrderFilter(request.GET)
    qs = filterset.qs if filterset.is_valid() else Order.objects.none()
    table = OrderTable(qs, order_by=("-placed_at",))
    RequestConfig(request, paginate={"per_page": PER_PAGE, "paginator_class": OrderPaginator}).configure(table)
    partial = request.htmx and request.htmx.target == "results"
    return render(request, "crm/order_list.html" + ("#results" if partial else ""),
                  {"filter": filterset, "table": table})


def _refund_with_credits_url(request, order) -> str | None:
    """The "Refund with store credits" pop-up, for staff who may post credits and open
    it, once the refunds app provides it."""
    if not request.user.has_perms(REFUND_WITH_CREDITS_PERMS):
        return None
    try:
        return reverse(REFUND_WITH_CREDITS, args=[order.pk])
    except NoReverseMatch:
        return None


def _activity_context(order) -> dict:
    entries = orders_selectors.order_entries(order=order)
    return {
        "order": order,
        "entries": entries,
        "entries_capped": len(entries) >= orders_selectors.ENTRIES_LIMIT,
        "credits": orders_selectors.credits_summary(entries),
        "notes": orders_selectors.order_notes(order=order),
        "notes_limit": orders_selectors.NOTES_LIMIT,
    }


@require_GET
@permission_required("crm.view_order", raise_exception=True)
def order_detail(request, pk: int):
    order = get_object_or_404(Order.objects.select_related("customer"), pk=pk)
    context = _activity_context(order)
    if request.htmx and request.htmx.target == "order-activity":
        return render(request, "crm/order_detail.html#order-activity", context)
    context["refund_url"] = _refund_with_credits_url(request, order)
    return render(request, "crm/order_detail.html", context)
