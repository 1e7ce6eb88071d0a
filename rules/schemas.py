"""Request and response schemas of the storefront events API (pydantic, via django-ninja).
Money is an int of minor units of the store currency (cents; won and yen for KRW/JPY)."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from credits_admin.money import MAX_AMOUNT

from . import events

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/+#-]*$"
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _no_control_chars(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _email(value: str) -> str:
    if value:
        try:
            validate_email(value)
        except DjangoValidationError:
            raise ValueError("must be a valid email address") from None
    return value


def _within_range(value: dt.datetime) -> dt.datetime:
    if not _EARLIEST <= value < _LATEST:
        raise ValueError("must be between 2000-01-01 and 2100-01-01")
    return value.astimezone(dt.UTC)


EventId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_ID_PATTERN),
                    Field(description="Your unique id of this event; sending it again replays the first answer.",
                          examples=["evt_000123"])]
MemberId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_ID_PATTERN),
                     Field(description="The customer's member id in the storefront.", examples=["M000123"])]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_ID_PATTERN),
                    Field(description="The storefront's order id.", examples=["ORD-1001"])]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(_no_control_chars)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40, pattern=r"^[0-9+() .-]*$")]
Money = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT - 1,
                             description="Minor units of the store currency (cents; won/yen for KRW/JPY).")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
When = Annotated[AwareDatetime, AfterValidator(_within_range),
                 Field(description="ISO 8601 with a time zone, e.g. 2026-05-01T12:00:00Z.")]


def _clean_strings(value, depth: int = 0):
    """Reject NUL characters and lone surrogates anywhere in the body (PostgreSQL can store
    neither) and absurd nesting."""
    if depth > 32:
        raise ValueError("the body is nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("strings must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("strings must be valid Unicode") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _clean_strings(key, depth + 1)
            _clean_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _clean_strings(item, depth + 1)
    return value


# --------------------------------------------------------------------------- data per type

class CustomerRegisteredData(BaseModel):
    customer_id: MemberId
    name: Name
    email: Email = ""
    phone: Phone = ""
    registered_at: When | None = Field(None, description="Defaults to the event's occurred_at.")


class CustomerUpdatedData(BaseModel):
    customer_id: MemberId
    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None

    @model_validator(mode="after")
    def _something_to_change(self):
        if self.name is None and self.email is None and self.phone is None:
            raise ValueError("give at least one of name, email, phone")
        return self


class OrderPaidData(BaseModel):
    order_id: OrderId
    customer_id: MemberId
    items_total: Money = Field(description="Amount paid for the items (after discounts, before shipping "
                                           "and tax): what the allocation rules count.")
    paid_amount: Money = Field(description="The order's total paid amount: what refunds are measured against.")
    currency: Currency | None = Field(None, description="Must be the store currency when given.")
    placed_at: When | None = None
    paid_at: When | None = Field(None, description="Defaults to the event's occurred_at.")


class OrderRefundedData(BaseModel):
    order_id: OrderId
    refunded_amount: Money = Field(description="CUMULATIVE amount refunded so far for this order (not this "
                                               "refund alone); at most the order's paid_amount.")


class OrderCancelledData(BaseModel):
    order_id: OrderId
    customer_id: MemberId | None = Field(None, description="Needed only for an order never reported as paid.")


# --------------------------------------------------------------------------- envelopes

class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: EventId
    occurred_at: When

    @model_validator(mode="before")
    @classmethod
    def _strings_storable(cls, value):
        return _clean_strings(value)


def _example(type_: str, data: dict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [
        {"id": f"evt_{type_.replace('.', '_')}_1", "type": type_, "occurred_at": "2026-05-01T12:00:00Z",
         "data": data}]})


class CustomerRegistered(_Envelope):
    model_config = _example("customer.registered", {"customer_id": "M000123", "name": "Ada Lovelace",
                                                    "email": "ada@example.com"})
    type: Literal["customer.registered"]
    data: CustomerRegisteredData


class CustomerUpdated(_Envelope):
    model_config = _example("customer.updated", {"customer_id": "M000123", "email": "ada.king@example.com"})
    type: Literal["customer.updated"]
    data: CustomerUpdatedData


class OrderPaid(_Envelope):
    model_config = _example("order.paid", {"order_id": "ORD-1001", "customer_id": "M000123", "items_total": 12000,
                                           "paid_amount": 12500, "currency": "USD"})
    type: Literal["order.paid"]
    data: OrderPaidData


class OrderRefunded(_Envelope):
    model_config = _example("order.refunded", {"order_id": "ORD-1001", "refunded_amount": 5000})
    type: Literal["order.refunded"]
    data: OrderRefundedData


class OrderCancelled(_Envelope):
    model_config = _example("order.cancelled", {"order_id": "ORD-1001"})
    type: Literal["order.cancelled"]
    data: OrderCancelledData


def _registered_types_schema(schema: dict) -> None:
    """Document the types actually registered (the schema is built after apps are ready)."""
    registered = events.registered_types()
    prop = schema.setdefault("properties", {}).setdefault("type", {})
    if registered:
        prop["enum"] = registered
    else:
        prop["not"] = {"enum": list(events.BUILTIN_TYPES)}


class OtherEvent(_Envelope):
    """A type another app registered (rules.events.register); its handler validates `data`."""

    model_config = ConfigDict(json_schema_extra=_registered_types_schema)

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="A type registered by another app, e.g. customer.deletion_requested.")
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _registered(cls, value):
        if value in events.BUILTIN_TYPES:
            return value  # never reached through the union; kept for direct use
        if events.handler_for(value) is None:
            known = ", ".join([*events.BUILTIN_TYPES, *events.registered_types()])
            raise ValueError(f"unknown event type; expected one of: {known}")
        return value


def _event_tag(value) -> str:
    event_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return event_type if event_type in events.BUILTIN_TYPES else "other"


EventIn = Annotated[
    Annotated[CustomerRegistered, Tag("customer.registered")]
    | Annotated[CustomerUpdated, Tag("customer.updated")]
    | Annotated[OrderPaid, Tag("order.paid")]
    | Annotated[OrderRefunded, Tag("order.refunded")]
    | Annotated[OrderCancelled, Tag("order.cancelled")]
    | Annotated[OtherEvent, Tag("other")],
    Discriminator(_event_tag),
]


# --------------------------------------------------------------------------- answers

class GrantOut(BaseModel):
    entry: int
    rule: str
    amount: int
    tier: int | None = None
    expires_at: str | None = None


class ReclaimOut(BaseModel):
    lot: int
    entry: int | None = Field(None, description="The clawback entry; null when nothing could be taken.")
    claimed: int
    collected: int
    uncollected: int = Field(description="What could not be taken back because the balance did not allow it.")


class EventOut(BaseModel):
    id: str
    type: str
    status: Literal["applied", "unchanged", "stale"]
    program: Literal["on", "off"]
    customer: str | None = None
    order: str | None = None
    grants: list[GrantOut] = []
    reclaims: list[ReclaimOut] = []
    notes: list[str] = []
    result: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    detail: str
    code: str | None = None
    errors: list[dict[str, Any]] | None = None
