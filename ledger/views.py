from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from credits_admin.audit import record_change
from credits_admin.db import retry_on_lock
from credits_admin.htmx import close_modal_response, message_event
from credits_admin.paging import BadCursor, keyset_page
from crm.models import Customer

from . import selectors, services
from .filters import HistoryFilter, with_default_period
from .forms import CreditAdjustForm
from .tables import HistoryTable

SORTS = {"-created_at": ("created_at", True), "created_at": ("created_at", False),
         "-amount": ("amount", True), "amount": ("amount", False)}
PER_PAGE = 50


def _search(request):
    """The history search of GET params: (filterset, params)."""
    params = with_default_period(request.GET.copy())
    return HistoryFilter(params), params


def _history_data(request) -> dict:
    """Everything the results partial shows, for GET params of the history search. The
    summary is not computed here: the results carry a placeholder that fetches it
    (history_summary) as soon as it is on the page, so the table never waits for totals
    over a long period."""
    filterset, params = _search(request)
    sort = params.get("sort") or "-created_at"
    notices = []
    if sort not in SORTS:
        notices.append("Unknown sort order; showing the newest entries first.")
        sort = "-created_at"
        params["sort"] = sort
    field, descending = SORTS[sort]
    context = {"filter": filterset, "sort": sort, "page": None, "table": None, "notices": notices,
               "filter_errors": [], "summary_query": None}
    query = params.copy()
    for key in ("after", "before"):
        query.pop(key, None)
    context["base_query"] = query.urlencode()  # the search and sort, without a page cursor
    query.pop("sort", None)
    context["sort_query"] = query.urlencode()  # the search alone: a new sort starts at page 1
    if not filterset.is_valid():
        context["filter_errors"] = filterset.error_messages()
        context["table"] = HistoryTable([], order_by=sort)
        return context
    qs = filterset.qs
    try:
        page = keyset_page(qs, field=field, descending=descending, after=params.get("after"),
                           before=params.get("before"), per_page=PER_PAGE)
    except BadCursor as exc:
        notices.append(str(exc))
        page = keyset_page(qs, field=field, descending=descending, per_page=PER_PAGE)
    context["page"] = page
    context["table"] = HistoryTable(page.rows, order_by=sort)
    context["summary_query"] = context["sort_query"]
    return context


def _summary_data(request) -> dict:
    """The summary of the history search of GET params: totals for exactly the rows it
    selects, and for a period search (perhaps with a customer) the opening and closing
    balances. None for a search that is not valid."""
    filterset, _params = _search(request)
    context = {"summary": None, "opening": None, "closing": None}
    if not filterset.is_valid():
        return context
    start, end = filterset.period_range
    summary = None
    if filterset.is_period_search and not filterset.customer_text and start is not None:
        # everyone's entries of a period: from daily rollups when that is exact
        summary = selectors.period_summary(start=start, end=end)
    context["summary"] = summary if summary is not None else selectors.history_summary(filterset.qs)
    if filterset.is_period_search:
        ids = filterset.customer_ids
        if start is not None:
            # The summary covers exactly the period's entries (no other filter is set), so
            # opening = closing - net, exactly: one balance lookup instead of two, and the
            # cheap one (just before the end, which is near now for the usual periods).
            context["closing"] = selectors.balance_at(moment=end, customer_ids=ids)
            context["opening"] = context["closing"] - context["summary"]["net"]
            context["period_start"], context["period_end"] = start, end
    return context


@require_GET
@permission_required("ledger.view_ledgerentry", raise_exception=True)
def history(request):
    context = _history_data(request)
    partial = request.htmx and request.htmx.target == "results"
    return render(request, "ledger/history.html" + ("#results" if partial else ""), context)


@require_GET
@permission_required("ledger.view_ledgerentry", raise_exception=True)
def history_summary(request):
    """The summary section alone, for the same GET params as the history page."""
    return render(request, "ledger/history_summary.html", _summary_data(request))


@require_http_methods(["GET", "POST"])
@permission_required("ledger.add_ledgerentry", raise_exception=True)
def credit_adjust(request, customer_id: int | None = None):
    customer = get_object_or_404(Customer, pk=customer_id) if customer_id is not None else None
    form = CreditAdjustForm(request.POST or None, customer=customer)
    context = {"form": form, "customer": customer, "step": "form"}
    if request.method == "POST" and form.is_valid():
        target = form.target_customer
        amount = form.cleaned_data["amount"]
        available = selectors.available_balance(customer=target)
        context.update(target=target, available=available, amount=amount, resulting=available + amount,
                       expires_at=form.expires_at() if amount > 0 else None)
        step = request.POST.get("step")
        if step == "edit":
            pass  # back from the preview to the form, values kept
        elif step != "confirm":
            if amount < 0 and -amount > available:
                form.add_error("amount", f"Only {_fmt(available)} is available; "
                                         f"you cannot deduct {_fmt(-amount)}.")
            else:
                context["step"] = "confirm"  # show the preview, then confirm
        else:
            # No pre-check here: a re-sent confirm must replay the first posting even though
            # the balance has since dropped; the ledger refuses a real overdraft itself.
            try:
                entry = retry_on_lock(lambda: _post_adjustment(request, form))
            except services.InsufficientCredits as exc:
                form.add_error("amount", f"Only {_fmt(exc.available)} is available; "
                                         f"you cannot deduct {_fmt(exc.requested)}.")
            except services.IdempotencyConflict:
                form.add_error(None, "This form was already submitted with other values. "
                                     "Close it and start again.")
            else:
                if not request.htmx:
                    messages.success(request, f"{_fmt(entry.amount, signed=True)} posted for {target}.")
                    return redirect(reverse("ledger:history") + "?" + urlencode({"customer": target.member_id,
                                                                                 "period": ""}))
                return close_modal_response(
                    creditsChanged={"customer": target.pk, "entry": entry.pk},
                    showMessage=message_event(f"{_fmt(entry.amount, signed=True)} posted for {target}."))
    template = "ledger/credit_adjust.html" + ("#modal-body" if request.htmx else "")
    return render(request, template, context)


def _post_adjustment(request, form: CreditAdjustForm):
    data = form.cleaned_data
    target = form.target_customer
    amount = data["amount"]
    key = f"staff:{data['idempotency_key']}"
    with transaction.atomic():
        if amount > 0:
            entry = services.grant(customer=target, amount=amount, reason=form.reason_text,
                                   expires_at=form.expires_at(), actor=request.user, source="staff",
                                   comment=data["comment"], idempotency_key=key)
        else:
            entry = services.debit(customer=target, amount=-amount, kind="deduct", reason=form.reason_text,
                                   actor=request.user, source="staff", comment=data["comment"],
                                   idempotency_key=key)
        if getattr(entry, "replayed", False):
            return entry  # a double click: posted and audited once already
        record_change(actor=request.user, action="ledger.credit" if amount > 0 else "ledger.debit",
                      target=target, summary=f"{entry.get_kind_display()} {_fmt(amount, signed=True)} ({form.reason_text})",
                      after={"entry": entry.pk, "amount": entry.amount, "balance_after": entry.balance_after,
                             "reason": entry.reason, "comment": entry.comment})
    return entry


def _fmt(minor, signed=False):
    from credits_admin.money import format_amount

    return format_amount(minor, signed=signed)
