"""Reads of the refunds app. Pure: nothing here writes."""

from __future__ import annotations

from django.db.models import BigIntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from crm.models import Customer
from crm.selectors import customer_match
from ledger import clock
from ledger import selectors as ledger_selectors
from ledger.models import CreditAccount, CreditLot

from .models import Payout, RefundRequest, StoreCreditRefund


def with_available_credits(qs, *, customer_field: str = "customer_id", now=None):
    """Annotate `available` (what the customer could spend now, like
    ledger.selectors.available_balance) on every row, in the same single query:
    the account's booked balance less its overdue-but-unswept lots."""
    now = now or clock.now()
    booked = Subquery(CreditAccount.objects.filter(pk=OuterRef(customer_field)).values("balance")[:1],
                      output_field=BigIntegerField())
    overdue = Subquery(
        CreditLot.objects.filter(account_id=OuterRef(customer_field), remaining__gt=0, expires_at__lte=now)
        .order_by().values("account_id").annotate(s=Sum("remaining")).values("s")[:1],
        output_field=BigIntegerField(),
    )
    return qs.annotate(available=Coalesce(booked, Value(0)) - Coalesce(overdue, Value(0)))


def request_list():
    """Requests for the list pop-up: customer, submitter, available credits now and the
    state of the current payout, all in one query."""
    current_payout = Payout.objects.filter(request=OuterRef("pk"), refund_attempt=OuterRef("refund_attempts"))
    qs = (RefundRequest.objects.select_related("customer", "created_by")
          .annotate(payout_status=Subquery(current_payout.values("status")[:1]),
                    payout_attempts=Subquery(current_payout.values("attempts")[:1]),
                    payout_next_attempt_at=Subquery(current_payout.values("next_attempt_at")[:1])))
    return with_available_credits(qs).order_by("-requested_at", "-id")


def request_detail(*, pk: int) -> RefundRequest:
    return with_available_credits(RefundRequest.objects.select_related("customer", "created_by",
                                                                      "status_changed_by")).get(pk=pk)


def request_payouts(*, request):
    return Payout.objects.filter(request=request).select_related("confirmed_by").order_by("-refund_attempt")


def request_timeline(*, request):
    from credits_admin.models import AuditEvent

    return (AuditEvent.objects.filter(target_type=RefundRequest._meta.label_lower, target_id=str(request.pk))
            .select_related("actor").order_by("created_at", "id"))


def open_request_for(*, customer) -> RefundRequest | None:
    customer_id = customer if isinstance(customer, int) else customer.pk
    return RefundRequest.objects.filter(customer_id=customer_id, status__in=RefundRequest.OPEN_STATUSES).first()


def unsettled_payout_for(*, customer) -> Payout | None:
    """A gateway payout of this customer still being paid or retried, if any."""
    customer_id = customer if isinstance(customer, int) else customer.pk
    return (Payout.objects.filter(request__customer_id=customer_id, status__in=Payout.UNSETTLED_STATUSES)
            .select_related("request").first())


def customer_search_q(text: str) -> Q:
    """What a refunds search box means: crm's customer match (member ID, name, exact email,
    card digits) plus the start of an email address."""
    text = (text or "").strip()
    q = customer_match(text)
    if len(text) >= 3:
        q |= Q(email__istartswith=text)
    return q


def customer_candidates(*, text: str, limit: int = 10):
    """Customers a staff search means (name, member ID or email), with available credits."""
    text = (text or "").strip()
    if not text:
        return Customer.objects.none()
    qs = Customer.objects.filter(customer_search_q(text)).exclude(status=Customer.Status.DELETED)
    return with_available_credits(qs, customer_field="pk").order_by("name", "member_id")[:limit]


def customer_candidates_by_pk(*, pk: int):
    """One picked customer, with available credits (None if unknown or deleted)."""
    qs = Customer.objects.filter(pk=pk).exclude(status=Customer.Status.DELETED)
    return with_available_credits(qs, customer_field="pk").first()


def available_credits(*, customer) -> int:
    return ledger_selectors.available_balance(customer=customer)


def order_refundable_with_credits(*, order) -> dict:
    """What the order can still be refunded with store credits: what was paid, less what
    the storefront refunded, less earlier refunds with store credits."""
    earlier = (StoreCreditRefund.objects.filter(order=order).aggregate(s=Sum("amount"))["s"] or 0)
    refundable = max(0, order.paid_amount - order.refunded_amount - earlier)
    return {"paid": order.paid_amount, "refunded": order.refunded_amount, "earlier": int(earlier),
            "refundable": refundable}


def order_credit_refunds(*, order):
    return StoreCreditRefund.objects.filter(order=order).select_related("actor", "entry")
