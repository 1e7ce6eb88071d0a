"""Storefront endpoints: a customer's balance, redeeming credits at checkout (and
cancelling a redemption), and a fresh link to the customer's member panel.

Mounted on the API root (credits_admin/api.py), which authenticates every call with an
API key. Money is an integer number of minor units of the store currency (`exponent`
says how many decimals it has: 2 for USD, 0 for KRW and JPY).

The credits program switch: while it is off, the balance answer says
`program_enabled: false` and the storefront should not show the balance (the member panel
hides it too), but it still carries `available`, and redemptions still work: credits
already granted and not expired can be spent at checkout with the card number."""

from __future__ import annotations

import datetime as dt
import re

from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from ninja import Field, Path, Router, Schema, Status
from pydantic import field_validator, model_validator

from crm.cards import luhn_valid
from crm.models import Customer, Order
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import EntryKind, EntrySource, LedgerEntry

from . import money
from .db import retry_on_lock
from .member_views import active_customer, expiring_by_day, link_max_age, make_panel_token
from .models import StoreSettings

router = Router(tags=["storefront"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
ID_HELP = "1-100 characters: letters, digits and . _ : - (starting with a letter or digit)."
MEMBER_ID_MAX = 64
# Member and order ids are the storefront's; anything printable, but no control characters
# (PostgreSQL cannot even compare a text with a NUL in it).
TEXT_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
REDEEM_REASON = "Redeemed at checkout"
REPLAYED_HEADER = "Idempotent-Replayed"


# --------------------------------------------------------------------------- schemas

class ErrorOut(Schema):
    detail: str
    code: str


class InsufficientOut(ErrorOut):
    available: int = Field(description="What the customer can spend now, in minor units.")
    requested: int


class ExpiringOut(Schema):
    date: dt.date
    amount: int


class BalanceOut(Schema):
    member_id: str
    card_last4: str
    program_enabled: bool = Field(description="False while the store's credits program is switched off: do not "
                                              "show the balance; redemptions still work.")
    available: int = Field(description="Spendable now, in minor units.")
    currency: str
    exponent: int = Field(description="Decimal places of the currency (2 for USD, 0 for KRW/JPY).")
    expiring_soon: list[ExpiringOut] = Field(description="What expires in the next 30 days, per day.")


def _card_number(value: str) -> str:
    digits = re.sub(r"[\s-]", "", value)
    if not digits.isdigit() or len(digits) != 16:
        raise ValueError("A card number has 16 digits.")
    if not luhn_valid(digits):
        raise ValueError("This is not a valid card number (its check digit does not match).")
    return digits


class RedemptionIn(Schema):
    redemption_id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN,
                               description="The storefront's id of this redemption; the idempotency key. "
                                           + ID_HELP)
    card_number: str | None = Field(None, max_length=40,
                                    description="The 16-digit card number the customer pasted (spaces allowed).")
    member_id: str | None = Field(None, min_length=1, max_length=MEMBER_ID_MAX, pattern=TEXT_ID_PATTERN,
                                  description="Or the customer's member ID. Give exactly one of the two.")
    amount: int = Field(gt=0, lt=money.MAX_AMOUNT, strict=True,
                        description="Credits to spend, an integer of minor units (1250 = $12.50).")
    order_id: str | None = Field(None, min_length=1, max_length=64, pattern=TEXT_ID_PATTERN,
                                 description="The storefront order id, if known (linked when the order is mirrored).")

    @field_validator("card_number")
    @classmethod
    def _valid_card(cls, value):
        return None if value is None else _card_number(value)

    @model_validator(mode="after")
    def _one_customer(self):
        if (self.card_number is None) == (self.member_id is None):
            raise ValueError("Give either card_number or member_id (exactly one).")
        return self


class RedemptionOut(Schema):
    redemption_id: str
    status: str = Field(description="redeemed")
    member_id: str
    card_last4: str
    amount: int
    balance_after: int = Field(description="The customer's balance right after this redemption.")
    currency: str
    exponent: int
    order_id: str | None
    redeemed_at: dt.datetime


class CancellationOut(Schema):
    redemption_id: str
    status: str = Field(description="cancelled")
    member_id: str
    amount: int = Field(description="Credits given back, in minor units.")
    available: int = Field(description="The customer's spendable balance now.")
    currency: str
    exponent: int
    cancelled_at: dt.datetime


class PanelLinkOut(Schema):
    url: str
    expires_at: dt.datetime


# --------------------------------------------------------------------------- helpers

def _error(code: str, detail: str, **extra) -> dict:
    return {"detail": detail, "code": code, **extra}


def _currency() -> tuple[str, int]:
    currency = money.store_currency()
    return currency, money.exponent(currency)


def _unknown_member():
    return Status(404, _error("unknown_customer", "No customer has this member ID."))


def _redemption_answer(entry: LedgerEntry, customer: Customer) -> dict:
    currency, exponent = _currency()
    return {
        "redemption_id": entry.details.get("redemption_id", ""),
        "status": "redeemed",
        "member_id": customer.member_id,
        "card_last4": customer.card_last4,
        "amount": -entry.amount,
        "balance_after": entry.balance_after,
        "currency": currency,
        "exponent": exponent,
        "order_id": entry.details.get("order_id"),
        "redeemed_at": entry.created_at,
    }


def _same_redemption(entry: LedgerEntry, *, customer: Customer, amount: int, order_id: str | None) -> bool:
    return (entry.kind == EntryKind.REDEEM and entry.account_id == customer.pk and -entry.amount == amount
            and entry.details.get("order_id") == order_id)


def _conflict(redemption_id: str):
    return Status(409, _error("idempotency_conflict",
                              f"Redemption {redemption_id!r} was already made with other values "
                              "(customer, amount or order). Use a new redemption_id for a new redemption."))


# --------------------------------------------------------------------------- endpoints

@router.get("/customers/{member_id}/balance", response={200: BalanceOut, 404: ErrorOut},
            summary="A customer's store credit balance")
def customer_balance(request, member_id: str = Path(..., min_length=1, max_length=MEMBER_ID_MAX,
                                                    pattern=TEXT_ID_PATTERN)):
    """What the customer can spend now and what expires in the next 30 days.

    While the credits program is switched off, `program_enabled` is false: hide the
    balance from the customer, but `available` is still given, because credits already
    granted and not expired can still be redeemed at checkout."""
    customer = active_customer(member_id=member_id)
    if customer is None:
        return _unknown_member()
    currency, exponent = _currency()
    return Status(200, {
        "member_id": customer.member_id,
        "card_last4": customer.card_last4,
        "program_enabled": StoreSettings.load().credits_enabled,
        "available": ledger_selectors.available_balance(customer=customer),
        "currency": currency,
        "exponent": exponent,
        "expiring_soon": [{"date": day, "amount": amount} for day, amount in expiring_by_day(customer)],
    })


@router.post("/redemptions",
             response={200: RedemptionOut, 201: RedemptionOut, 404: ErrorOut, 409: InsufficientOut | ErrorOut,
                       422: ErrorOut},
             summary="Spend store credits at checkout")
def redeem(request, response: HttpResponse, payload: RedemptionIn):
    """Take `amount` from the customer's credits (first-expiring first).

    Idempotent by `redemption_id`: sending the same redemption again answers 200 with the
    first answer (header `Idempotent-Replayed: true`) and spends nothing more; the same
    id with another customer, amount or order is a 409. Not enough credits: 409 with
    `code: insufficient_credits` and what is `available`; nothing is spent. Works while
    the credits program is switched off."""
    if payload.card_number is not None:
        customer = active_customer(card_number=payload.card_number)
        if customer is None:
            return Status(404, _error("unknown_card", "No customer has this card number."))
    else:
        customer = active_customer(member_id=payload.member_id)
        if customer is None:
            return _unknown_member()
    order = None
    if payload.order_id is not None:
        order = Order.objects.filter(external_id=payload.order_id).first()
        if order is not None and order.customer_id != customer.pk:
            return Status(422, _error("order_customer_mismatch",
                                      f"Order {payload.order_id!r} belongs to another customer."))
    key = f"redeem:{payload.redemption_id}"
    # A replay is recognised by what the storefront sent, not by the ledger's fingerprint:
    # the order may have been mirrored between the first call and the retry.
    first = LedgerEntry.objects.filter(idempotency_key=key).first()
    if first is not None:
        if not _same_redemption(first, customer=customer, amount=payload.amount, order_id=payload.order_id):
            return _conflict(payload.redemption_id)
        response[REPLAYED_HEADER] = "true"
        return Status(200, _redemption_answer(first, customer))
    comment = f"Storefront redemption {payload.redemption_id}"
    if payload.order_id:
        comment += f", order {payload.order_id}"
    try:
        entry = retry_on_lock(lambda: ledger_services.debit(
            customer=customer, amount=payload.amount, kind=EntryKind.REDEEM, reason=REDEEM_REASON,
            source=EntrySource.API, comment=comment, order=order, idempotency_key=key,
            details={"redemption_id": payload.redemption_id, "order_id": payload.order_id}))
    except ledger_services.InsufficientCredits as exc:
        return Status(409, _error("insufficient_credits",
                                  "The customer does not have enough store credits for this amount.",
                                  available=exc.available, requested=exc.requested))
    except ledger_services.IdempotencyConflict:
        return _conflict(payload.redemption_id)
    except ledger_services.InvalidPosting as exc:
        return Status(422, _error("invalid_redemption", str(exc)))
    if getattr(entry, "replayed", False):
        response[REPLAYED_HEADER] = "true"
        return Status(200, _redemption_answer(entry, customer))
    return Status(201, _redemption_answer(entry, customer))


@router.post("/redemptions/{redemption_id}/cancel",
             response={200: CancellationOut, 404: ErrorOut, 409: ErrorOut},
             summary="Cancel a redemption (give the credits back)")
def cancel_redemption(request, response: HttpResponse,
                      redemption_id: str = Path(..., min_length=1, max_length=100, pattern=ID_PATTERN)):
    """Give back what a redemption took, into the very credits it came from (credits that
    expired meanwhile expire again at once). Idempotent: cancelling again answers 200 with
    the first answer's figures and changes nothing."""
    redeemed = (LedgerEntry.objects.filter(idempotency_key=f"redeem:{redemption_id}", kind=EntryKind.REDEEM)
                .select_related("account__customer").first())
    if redeemed is None:
        return Status(404, _error("unknown_redemption", "No redemption has this id."))
    customer = redeemed.account.customer
    try:
        reversal = retry_on_lock(lambda: ledger_services.reverse(
            entry=redeemed, comment=f"Storefront cancelled redemption {redemption_id}",
            idempotency_key=f"redeem-cancel:{redemption_id}"))
    except ledger_services.NotReversible:
        # Reversed some other way already (e.g. by staff): the redemption is cancelled.
        reversal = LedgerEntry.objects.filter(reverses=redeemed).first()
        if reversal is None:
            return Status(409, _error("not_cancellable", "This redemption cannot be cancelled."))
        reversal.replayed = True
    if getattr(reversal, "replayed", False):
        response[REPLAYED_HEADER] = "true"
    currency, exponent = _currency()
    return Status(200, {
        "redemption_id": redemption_id,
        "status": "cancelled",
        "member_id": customer.member_id,
        "amount": reversal.amount,
        "available": ledger_selectors.available_balance(customer=customer),
        "currency": currency,
        "exponent": exponent,
        "cancelled_at": reversal.created_at,
    })


@router.get("/customers/{member_id}/panel-link", response={200: PanelLinkOut, 404: ErrorOut},
            summary="A fresh link to the customer's member panel")
def member_panel_link(request, member_id: str = Path(..., min_length=1, max_length=MEMBER_ID_MAX,
                                                     pattern=TEXT_ID_PATTERN)):
    """A signed link to the page that shows the customer their card number and balance.
    Give it only to that customer (it needs no login); it works for one hour."""
    customer = active_customer(member_id=member_id)
    if customer is None:
        return _unknown_member()
    token = make_panel_token(customer.member_id)
    return Status(200, {
        "url": request.build_absolute_uri(reverse("member_panel", args=[token])),
        "expires_at": timezone.now() + dt.timedelta(seconds=link_max_age()),
    })
