"""Storefront API: customers' own cash-refund requests.

    POST /api/v1/cash-refund-requests             201 (200 when `request_id` replays)
    GET  /api/v1/cash-refund-requests?member_id=  a customer's requests, newest first
    GET  /api/v1/cash-refund-requests/{id}        status, amount, reason if rejected
    POST /api/v1/cash-refund-requests/{id}/cancel the customer cancels (200; 409 if too late)

Amounts are ints of minor units. The same rules as the staff form apply (refunds.services.
create_request): amount > 0 and at most the available credits, valid payout details, one
open request per customer. Errors are JSON: {"detail": ..., "code": ..., "field": ...}
with 404 (unknown member or request), 409 (open request exists, request id reused with
other data, status does not allow it) or 422 (invalid input)."""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Query, Router, Schema, Status
from pydantic import StrictInt

from credits_admin.db import retry_on_lock
from credits_admin.money import store_currency
from crm.models import Customer

from . import services
from .exceptions import (
    IllegalTransition,
    OpenRequestExists,
    RefundError,
    RequestConflict,
)
from .models import RefundRequest

router = Router(tags=["refunds"])
LIST_LIMIT = 50


class PayoutDetailsIn(Schema):
    account_holder: str = Field(..., max_length=200, examples=["Jane Doe"])
    bank_name: str = Field(..., max_length=200, examples=["First Bank"])
    # repr=False: never in a traceback's locals or a log line in full.
    account_number: str = Field(..., max_length=60, repr=False, description="Stored encrypted; answers show only "
                                "the last four digits.", examples=["123-456-7890"])


class CashRefundRequestIn(Schema):
    request_id: str = Field(..., min_length=1, max_length=100,
                            description="The storefront's id of this request. Sending the same id again with "
                                        "the same data answers with the first request (200) and changes "
                                        "nothing; with other data it is a 409.")
    member_id: str = Field(..., min_length=1, max_length=64)
    amount: StrictInt = Field(..., description="Minor units (cents; won and yen for KRW/JPY). > 0 and at "
                                               "most the customer's available credits.", examples=[2500])
    payout: PayoutDetailsIn
    memo: str = Field("", max_length=1000)


class CancelIn(Schema):
    reason: str = Field("", max_length=500)


class PayoutOut(Schema):
    account_holder: str
    bank_name: str
    account_number_masked: str


class CashRefundRequestOut(Schema):
    id: int
    request_id: str | None
    member_id: str
    amount: int
    currency: str
    status: str = Field(..., description="requested, pending, refunded, rejected or cancelled")
    status_label: str
    requested_at: datetime
    status_changed_at: datetime
    refunded_at: datetime | None
    rejection_reason: str | None = Field(None, description="Set when rejected: what to tell the customer.")
    payout: PayoutOut


class CashRefundRequestListOut(Schema):
    member_id: str
    open_request: int | None = Field(None, description="The id of the customer's open (requested or pending) "
                                                       "request, if any: one at a time.")
    items: list[CashRefundRequestOut] = Field(..., description=f"Newest first, at most {LIST_LIMIT}.")


class ErrorOut(Schema):
    detail: str
    code: str
    field: str | None = None
    request: int | None = None


def _out(req: RefundRequest) -> dict:
    key = req.idempotency_key or ""
    return {
        "id": req.pk,
        "request_id": key[4:] if key.startswith("api:") else None,
        "member_id": req.customer.member_id,
        "amount": req.amount,
        "currency": store_currency(),
        "status": req.status,
        "status_label": req.get_status_display(),
        "requested_at": req.requested_at,
        "status_changed_at": req.status_changed_at,
        "refunded_at": req.refunded_at,
        "rejection_reason": req.rejection_reason if req.status == RefundRequest.Status.REJECTED else None,
        "payout": {"account_holder": req.account_holder, "bank_name": req.bank_name,
                   "account_number_masked": req.account_masked},
    }


def _error(exc: RefundError, *, field_names: dict | None = None) -> Status:
    if isinstance(exc, (OpenRequestExists, RequestConflict, IllegalTransition)):
        status = 409
    else:
        status = 422
    field = (field_names or {}).get(exc.field, exc.field) if exc.field else None
    body = {"detail": exc.message, "code": exc.code, "field": field}
    if isinstance(exc, OpenRequestExists):
        body["request"] = exc.existing_id
    return Status(status, body)


FIELD_NAMES = {"bank_name": "payout.bank_name", "account_holder": "payout.account_holder",
               "account_number": "payout.account_number"}


@router.post("/cash-refund-requests", response={200: CashRefundRequestOut, 201: CashRefundRequestOut,
                                                 404: ErrorOut, 409: ErrorOut, 422: ErrorOut},
             summary="Submit a customer's cash-refund request")
def create_cash_refund_request(request, payload: CashRefundRequestIn):
    customer = Customer.objects.filter(member_id=payload.member_id.strip()).first()
    if customer is None:
        return Status(404, {"detail": f"No customer has member ID {payload.member_id!r}.",
                            "code": "unknown_member", "field": "member_id"})
    try:
        req = retry_on_lock(lambda: services.create_request(
            customer=customer, amount=payload.amount, account_holder=payload.payout.account_holder,
            bank_name=payload.payout.bank_name, account_number=payload.payout.account_number,
            memo=payload.memo, channel=RefundRequest.Channel.STOREFRONT,
            idempotency_key=f"api:{payload.request_id.strip()}"))
    except RefundError as exc:
        return _error(exc, field_names=FIELD_NAMES)
    return Status(200 if getattr(req, "replayed", False) else 201, _out(req))


@router.get("/cash-refund-requests", response={200: CashRefundRequestListOut, 404: ErrorOut, 422: ErrorOut},
            summary="A customer's cash-refund requests and their status")
def list_cash_refund_requests(request, member_id: str = Query(..., min_length=1, max_length=64)):
    customer = Customer.objects.filter(member_id=member_id.strip()).first()
    if customer is None:
        return Status(404, {"detail": f"No customer has member ID {member_id!r}.", "code": "unknown_member",
                            "field": "member_id"})
    rows = list(RefundRequest.objects.filter(customer=customer).select_related("customer")
                .order_by("-requested_at", "-id")[:LIST_LIMIT])
    open_request = next((r.pk for r in rows if r.is_open), None)
    if open_request is None:  # older than the page shown (unlikely): ask the table
        open_request = (RefundRequest.objects.filter(customer=customer, status__in=RefundRequest.OPEN_STATUSES)
                        .values_list("pk", flat=True).first())
    return Status(200, {"member_id": customer.member_id, "open_request": open_request,
                        "items": [_out(r) for r in rows]})


def _find(request_id: int) -> RefundRequest | None:
    return RefundRequest.objects.select_related("customer").filter(pk=request_id).first()


def _not_found(request_id: int) -> Status:
    return Status(404, {"detail": f"No cash refund request #{request_id}.", "code": "not_found"})


@router.get("/cash-refund-requests/{request_id}", response={200: CashRefundRequestOut, 404: ErrorOut},
            summary="A cash-refund request's status")
def get_cash_refund_request(request, request_id: int):
    req = _find(request_id)
    if req is None:
        return _not_found(request_id)
    return Status(200, _out(req))


@router.post("/cash-refund-requests/{request_id}/cancel",
             response={200: CashRefundRequestOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut},
             summary="The customer cancels their request (while requested or pending)")
def cancel_cash_refund_request(request, request_id: int, payload: CancelIn | None = None):
    req = _find(request_id)
    if req is None:
        return _not_found(request_id)
    if req.status == RefundRequest.Status.CANCELLED:
        return Status(200, _out(req))  # cancelling twice answers as the first time
    try:
        req = retry_on_lock(lambda: services.cancel(request=req, reason=payload.reason if payload else ""))
    except RefundError as exc:
        if _find(request_id).status == RefundRequest.Status.CANCELLED:
            return Status(200, _out(_find(request_id)))  # cancelled by a concurrent call
        return _error(exc)
    req = _find(request_id)
    return Status(200, _out(req))
