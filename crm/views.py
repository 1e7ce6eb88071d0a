from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event
from django_tables2 import RequestConfig

from ledger import selectors as ledger_selectors

from . import selectors, services
from .filters import CustomerFilter
from .forms import MemoForm
from .models import Customer
from .tables import CustomerPaginator, CustomerTable

LATEST_ENTRIES = 10


@require_GET
@permission_required("crm.view_customer", raise_exception=True)
def customer_list(request):
    filterset = CustomerFilter(request.GET)  # no search yet: every customer, by member ID
    qs = filterset.qs if filterset.is_valid() else Customer.objects.none()
    table = CustomerTable(qs)
    RequestConfig(request, paginate={"per_page": 25, "paginator_class": CustomerPaginator}).configure(table)
    template = "crm/customer_list.html" + ("#results" if request.htmx and request.htmx.target == "results" else "")
    return render(request, template, {"filter": filterset, "table": table})


def _detail_context(request, customer, *, memo_form=None, card_number=None):
    entries = list(ledger_selectors.customer_entries(customer=customer)
                   .select_related("actor", "order")[:LATEST_ENTRIES])
    expiring = list(ledger_selectors.expiring_lots(customer=customer, within_days=30))
    by_date = {}
    for lot in expiring:
        day = timezone.localdate(lot.expires_at)  # the store's calendar day, not UTC's
        by_date[day] = by_date.get(day, 0) + lot.remaining
    return {
        "customer": customer,
        "available": ledger_selectors.available_balance(customer=customer),
        "expiring": sorted(by_date.items()),
        "expiring_total": sum(by_date.values()),
        "entries": entries,
        "memos": selectors.customer_memos(customer=customer),
        "memo_form": memo_form or MemoForm(),
        "card_number": card_number,
        "orders_count": customer.orders.count(),
    }


@require_GET
@permission_required("crm.view_customer", raise_exception=True)
def customer_detail(request, pk: int):
    customer = get_object_or_404(Customer, pk=pk)
    template = "crm/customer_detail.html" + ("#modal-body" if request.htmx else "")
    return render(request, template, _detail_context(request, customer))


@require_POST
@permission_required("crm.reveal_card_number", raise_exception=True)
def customer_card_reveal(request, pk: int):
    customer = get_object_or_404(Customer, pk=pk)
    number = services.reveal_card_number(customer=customer, actor=request.user)
    if request.htmx:
        return render(request, "crm/customer_detail.html#card",
                      {"customer": customer, "card_number": number})
    return render(request, "crm/customer_detail.html", _detail_context(request, customer, card_number=number))


@require_http_methods(["GET", "POST"])
@permission_required("crm.add_customermemo", raise_exception=True)
def memo_add(request, pk: int):
    customer = get_object_or_404(Customer, pk=pk)
    form = MemoForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.add_memo(customer=customer, author=request.user, body=form.cleaned_data["body"])
        if not request.htmx:
            messages.success(request, "Memo added.")
            return redirect("crm:customer_detail", customer.pk)
        form = MemoForm()
        response = render(request, "crm/customer_detail.html#memos",
                          {"customer": customer, "memos": selectors.customer_memos(customer=customer),
                           "memo_form": form})
        return trigger_client_event(response, "customerChanged", {"customer": customer.pk})
    if request.htmx:
        return render(request, "crm/customer_detail.html#memos",
                      {"customer": customer, "memos": selectors.customer_memos(customer=customer),
                       "memo_form": form})
    return render(request, "crm/customer_detail.html", _detail_context(request, customer, memo_form=form))


