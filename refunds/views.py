"""Staff pages and pop-ups of the refunds app.

Every pop-up is one URL answering in three modes (`_mode`):
- "page":  a normal request: the whole page; success redirects with a message;
- "modal": an htmx request into base.html's #modal: the `modal-body` partial; success
           answers 204 with HX-Trigger closeModal + events;
- "panel": an htmx request into #refund-panel, the sub-pop-up area inside the cash refund
           requests pop-up (so the list stays open): the same partial; success answers
           a notice for the panel with the events (the list refreshes itself on them).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

from credits_admin.db import retry_on_lock
from credits_admin.htmx import close_modal_response, message_event
from credits_admin.models import StoreSettings
from credits_admin.money import format_amount
from crm.models import Order

from . import selectors, services
from .exceptions import RefundError
from .filters import RefundRequestFilter
from .forms import ActionForm, CustomerEmailForm, OrderCreditRefundForm, RejectForm, RequestCreateForm
from .models import RefundRequest
from .tables import RefundRequestTable

PANEL = "refund-panel"
LIST_EVENTS = ("refundUpdated", "creditsChanged")
PER_PAGE = 25


def _mode(request) -> str:
    if not request.htmx:
        return "page"
    return "panel" if request.htmx.target == PANEL else "modal"


def _template(name: str, mode: str) -> str:
    return name if mode == "page" else f"{name}#modal-body"


def _back_url(request) -> str:
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return nxt
    return reverse("refunds:request_list")


def _panel_notice(request, text: str, *, level: str = "success", events=LIST_EVENTS):
    response = render(request, "refunds/request_list.html#panel-notice", {"text": text, "level": level})
    if request.htmx.target != PANEL:
        # Only when the caller aimed elsewhere: htmx resolves HX-Retarget from the element that
        # made the request, which a list refresh may have replaced meanwhile.
        response = reswap(retarget(response, f"#{PANEL}"), "innerHTML")
    for name in events:
        trigger_client_event(response, name)
    return response


def _success(request, mode: str, text: str, *, events=LIST_EVENTS, redirect_to: str | None = None):
    if mode == "panel":
        return _panel_notice(request, text, events=events)
    if mode == "modal":
        return close_modal_response(*events, showMessage=message_event(text))
    messages.success(request, text)
    return redirect(redirect_to or _back_url(request))


# --------------------------------------------------------------------------- the list pop-up

@require_GET
@permission_required("refunds.view_refundrequest", raise_exception=True)
def request_list(request):
    filterset = RefundRequestFilter(request.GET, queryset=selectors.request_list())
    qs = filterset.qs if filterset.is_valid() else RefundRequest.objects.none()
    table = RefundRequestTable(qs)
    RequestConfig(request, paginate={"per_page": PER_PAGE, "paginator_class": LazyPaginator}).configure(table)
    target = request.htmx.target if request.htmx else None
    # In the dialog, or a part of it; a link from it opened in a tab of its own is the page.
    popup = bool(request.htmx) and (request.GET.get("popup") == "1" or target == "modal")
    query = request.GET.copy()
    if popup:
        query["popup"] = "1"
    context = {"filter": filterset, "table": table, "popup": popup, "query": query.urlencode()}
    if target == "refund-results":
        template = "refunds/request_list.html#results"
    elif request.htmx:
        template = "refunds/request_list.html#modal-body"
    else:
        template = "refunds/request_list.html"
    return render(request, template, context)


@require_GET
@permission_required("refunds.view_refundrequest", raise_exception=True)
def request_detail(request, pk: int):
    try:
        req = selectors.request_detail(pk=pk)
    except RefundRequest.DoesNotExist:
        raise Http404("No such cash refund request.") from None
    mode = _mode(request)
    context = {"req": req, "mode": mode, "payouts": selectors.request_payouts(request=req),
               "timeline": selectors.request_timeline(request=req)}
    return render(request, _template("refunds/request_detail.html", mode), context)


# --------------------------------------------------------------------------- row actions

def _row_action(request, pk: int, service, done: str):
    req = get_object_or_404(RefundRequest.objects.select_related("customer"), pk=pk)
    form = ActionForm(request.POST)
    version = form.cleaned_data.get("version") if form.is_valid() else None
    try:
        result = retry_on_lock(lambda: service(request=req, actor=request.user, expected_version=version))
    except RefundError as exc:
        if request.htmx:
            return _panel_notice(request, exc.message, level="error", events=("refundUpdated",))
        messages.error(request, exc.message)
        return redirect(_back_url(request))
    if getattr(result, "replayed", False):
        text = f"Request #{req.pk} was already {done}; nothing changed."
    else:
        text = f"Request #{req.pk} {done} ({req.customer.member_id}, {format_amount(req.amount)})."
    if request.htmx:
        return _panel_notice(request, text)
    messages.success(request, text)
    return redirect(_back_url(request))


@require_POST
@permission_required("refunds.approve_refundrequest", raise_exception=True)
def request_pend(request, pk: int):
    return _row_action(request, pk, services.mark_pending, "marked pending")


@require_POST
@permission_required("refunds.approve_refundrequest", raise_exception=True)
def request_refund(request, pk: int):
    return _row_action(request, pk, services.refund, "refunded")


@require_POST
@permission_required("refunds.approve_refundrequest", raise_exception=True)
def request_undo(request, pk: int):
    return _row_action(request, pk, services.undo, "undone: back to pending, credits restored")


@require_http_methods(["GET", "POST"])
@permission_required("refunds.approve_refundrequest", raise_exception=True)
def request_reject(request, pk: int):
    req = get_object_or_404(RefundRequest.objects.select_related("customer"), pk=pk)
    mode = _mode(request)
    form = RejectForm(request.POST or None, initial={"version": req.version})
    if request.method == "POST" and form.is_valid():
        try:
            retry_on_lock(lambda: services.reject(request=req, actor=request.user, reason=form.cleaned_data["reason"],
                                                  expected_version=form.cleaned_data["version"]))
        except RefundError as exc:
            form.add_service_error(exc)
        else:
            return _success(request, mode, f"Request #{req.pk} rejected; the customer is told why.")
    return render(request, _template("refunds/request_reject.html", mode), {"form": form, "req": req, "mode": mode})


@require_http_methods(["GET", "POST"])
@permission_required("refunds.approve_refundrequest", raise_exception=True)
def request_email(request, pk: int):
    req = get_object_or_404(RefundRequest.objects.select_related("customer"), pk=pk)
    mode = _mode(request)
    initial = {"subject": f"Your cash refund request #{req.pk}",
               "message": f"Dear {req.customer.name},\n\n"}
    form = CustomerEmailForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.send_customer_email(request=req, actor=request.user, **form.cleaned_data)
        except RefundError as exc:
            form.add_service_error(exc)
        else:
            return _success(request, mode, f"Email sent to {req.customer.member_id}.", events=("refundUpdated",))
    return render(request, _template("refunds/request_email.html", mode), {"form": form, "req": req, "mode": mode})


# --------------------------------------------------------------------------- submit on a customer's behalf

@sensitive_post_parameters("account_number")  # never in full in an error report
@sensitive_variables("data")
@require_http_methods(["GET", "POST"])
@permission_required("refunds.add_refundrequest", raise_exception=True)
def request_create(request):
    mode = _mode(request)
    target = request.htmx.target if request.htmx else None
    q = (request.GET.get("q") or "").strip()[:200]
    if request.method == "GET" and target == "customer-results":
        return render(request, "refunds/request_create.html#customer-results",
                      {"candidates": selectors.customer_candidates(text=q), "q": q})
    picked = None
    if request.method == "POST":
        pick = request.POST.get("customer")
    else:
        pick = request.GET.get("pick") or request.GET.get("customer")
    if pick and str(pick).isdigit():
        picked = selectors.customer_candidates_by_pk(pk=int(pick))
    if request.method == "GET" and target == "requested-by":
        return render(request, "refunds/request_create.html#requested-by", {"picked": picked})
    form = RequestCreateForm(request.POST or None, initial={"customer": picked.pk if picked else None})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            req = services.create_request(
                customer=data["customer"], amount=data["amount"], account_holder=data["account_holder"],
                bank_name=data["bank_name"], account_number=data["account_number"], memo=data["memo"],
                channel=RefundRequest.Channel.STAFF, actor=request.user,
                idempotency_key=f"staff:{data['idempotency_key']}")
        except RefundError as exc:
            form.add_service_error(exc)
        else:
            return _success(request, mode, f"Request #{req.pk} submitted for {req.customer.member_id} "
                                           f"({format_amount(req.amount)}).")
    context = {"form": form, "mode": mode, "picked": picked, "q": q,
               "candidates": selectors.customer_candidates(text=q) if q else None}
    return render(request, _template("refunds/request_create.html", mode), context)


# --------------------------------------------------------------------------- refund an order with store credits

@require_http_methods(["GET", "POST"])
@permission_required("refunds.add_storecreditrefund", raise_exception=True)
def order_refund_with_credits(request, pk: int):
    order = get_object_or_404(Order.objects.select_related("customer"), pk=pk)
    mode = "modal" if request.htmx else "page"
    form = OrderCreditRefundForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            refund = retry_on_lock(lambda: services.refund_with_store_credits(
                order=order, amount=data["amount"], note=data["note"], notify=data["notify"], actor=request.user,
                idempotency_key=str(data["idempotency_key"])))
        except RefundError as exc:
            form.add_service_error(exc)
        else:
            text = f"Order {order.external_id} refunded with {format_amount(refund.amount)} of store credits."
            if mode == "modal":
                return close_modal_response("creditsChanged", "orderChanged", showMessage=message_event(text))
            messages.success(request, text)
            try:
                return redirect(reverse("crm:order_detail", args=[order.pk]))
            except NoReverseMatch:
                return redirect(reverse("ledger:history") + f"?customer={order.customer.member_id}&period=")
    context = {"form": form, "order": order, "mode": mode,
               "limits": selectors.order_refundable_with_credits(order=order),
               "credits_enabled": StoreSettings.load().credits_enabled,
               "expires_at": services.refund_credits_expiry()}
    return render(request, _template("refunds/order_refund_with_credits.html", mode), context)
