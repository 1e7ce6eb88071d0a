"""The email types: what each one is for, who gets it, which placeholders its templates may
use (with sample values for the live preview) and its default templates.

A template sees ONLY the placeholders of its type, as plain strings (see sandbox.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models


class EmailKind(models.TextChoices):
    CREDITS_RECEIVED = "credits_received", "Store credits received"
    CREDITS_REDEEMED = "credits_redeemed", "Store credits redeemed"
    CREDITS_EXPIRING = "credits_expiring", "Store credits expiring soon"
    REFUND_WITH_STORE_CREDITS = "refund_with_store_credits", "Refund with store credits"
    CASH_REFUND_STATUS_CHANGED = "cash_refund_status_changed", "Cash refund request status changed"
    DELETION_NOTICE = "deletion_notice", "Remaining credits before account deletion"
    PAYOUT_FAILURE_ALERT = "payout_failure_alert", "Payout failure alert (staff)"


PLACEHOLDER_HELP = {
    "customer_name": "The customer's name",
    "store_name": "Your store's name",
    "card_last4": "Last 4 digits of the customer's member card number",
    "balance": "The customer's credit balance after this change",
    "amount": "The amount of credits of this email",
    "reason": "Why (the reason of the entry, or the error for staff alerts)",
    "expiry_date": "When the credits expire (empty when they never do)",
    "order_id": "The storefront order number (empty when none)",
    "note": "The note of the refund",
    "status": "The new status of the cash refund request",
    "old_status": "The previous status of the cash refund request (empty for a new request)",
    "request_id": "The number of the cash refund request",
    "member_id": "The customer's member ID",
    "attempts": "How many payout attempts failed",
}

_COMMON = ["customer_name", "store_name", "card_last4", "balance"]


@dataclass(frozen=True)
class EmailType:
    kind: str
    description: str
    audience: str  # "customer" or "staff"
    placeholders: tuple[str, ...]
    sample: dict[str, str]
    default_subject: str
    default_text: str
    default_html: str
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return EmailKind(self.kind).label

    def placeholder_help(self) -> list[tuple[str, str]]:
        return [(name, PLACEHOLDER_HELP[name]) for name in self.placeholders]


_SAMPLE = {
    "customer_name": "Ada Lovelace",
    "store_name": "Demo Store",
    "card_last4": "4242",
    "balance": "$57.50",
    "amount": "$12.50",
    "reason": "Thank you for your first order",
    "expiry_date": "June 30, 2026",
    "order_id": "ORD-1042",
    "note": "Refunded with store credits.",
    "status": "Completed",
    "old_status": "Pending",
    "request_id": "318",
    "member_id": "M000042",
    "attempts": "3",
}


def _sample(names) -> dict[str, str]:
    return {name: _SAMPLE[name] for name in names}


def _html(*paragraphs: str) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        '<div style="font-family: Arial, sans-serif; font-size: 15px; line-height: 1.5; color: #1f2937;">\n'
        f"{body}\n"
        '<p style="color: #6b7280; font-size: 13px;">{{ store_name }}</p>\n'
        "</div>\n"
    )


_HOW_TO_USE_TEXT = ("To use them, enter your member card number ending in {{ card_last4 }} "
                    "in the gift card / discount code field at checkout.")
_HOW_TO_USE_HTML = ("To use them, enter your member card number ending in <strong>{{ card_last4 }}</strong> "
                    "in the gift card / discount code field at checkout.")

EMAIL_TYPES: dict[str, EmailType] = {}


def _register(t: EmailType) -> None:
    EMAIL_TYPES[t.kind] = t


_register(EmailType(
    kind=EmailKind.CREDITS_RECEIVED,
    description="Sent to a customer when store credits are added to their account.",
    audience="customer",
    placeholders=(*_COMMON, "amount", "reason", "expiry_date", "order_id"),
    sample=_sample((*_COMMON, "amount", "reason", "expiry_date", "order_id")),
    default_subject="You received {{ amount }} in store credits at {{ store_name }}",
    default_text=(
        "Hi {{ customer_name }},\n\n"
        "You received {{ amount }} in store credits{% if reason %} ({{ reason }}){% endif %}.\n"
        "Your balance is now {{ balance }}.\n"
        "{% if expiry_date %}These credits expire on {{ expiry_date }}.\n{% endif %}\n"
        f"{_HOW_TO_USE_TEXT}\n\n"
        "{{ store_name }}\n"
    ),
    default_html=_html(
        "Hi {{ customer_name }},",
        "You received <strong>{{ amount }}</strong> in store credits{% if reason %} ({{ reason }}){% endif %}. "
        "Your balance is now <strong>{{ balance }}</strong>.",
        "{% if expiry_date %}These credits expire on {{ expiry_date }}.{% else %}These credits do not expire."
        "{% endif %}",
        _HOW_TO_USE_HTML,
    ),
))

_register(EmailType(
    kind=EmailKind.CREDITS_REDEEMED,
    description="Sent to a customer when they pay with store credits at checkout.",
    audience="customer",
    placeholders=(*_COMMON, "amount", "order_id"),
    sample=_sample((*_COMMON, "amount", "order_id")),
    default_subject="You used {{ amount }} in store credits at {{ store_name }}",
    default_text=(
        "Hi {{ customer_name }},\n\n"
        "You used {{ amount }} in store credits{% if order_id %} on order {{ order_id }}{% endif %}.\n"
        "Your remaining balance is {{ balance }}.\n\n"
        "{{ store_name }}\n"
    ),
    default_html=_html(
        "Hi {{ customer_name }},",
        "You used <strong>{{ amount }}</strong> in store credits{% if order_id %} on order {{ order_id }}"
        "{% endif %}.",
        "Your remaining balance is <strong>{{ balance }}</strong>.",
    ),
))

_register(EmailType(
    kind=EmailKind.CREDITS_EXPIRING,
    description="Sent to a customer some days before store credits expire (once per credit lot).",
    audience="customer",
    placeholders=(*_COMMON, "amount", "expiry_date"),
    sample=_sample((*_COMMON, "amount", "expiry_date")),
    default_subject="{{ amount }} of your store credits expire on {{ expiry_date }}",
    default_text=(
        "Hi {{ customer_name }},\n\n"
        "{{ amount }} of your store credits at {{ store_name }} expire on {{ expiry_date }}.\n"
        "Your balance today is {{ balance }}.\n\n"
        f"{_HOW_TO_USE_TEXT}\n\n"
        "{{ store_name }}\n"
    ),
    default_html=_html(
        "Hi {{ customer_name }},",
        "<strong>{{ amount }}</strong> of your store credits at {{ store_name }} expire on "
        "<strong>{{ expiry_date }}</strong>. Your balance today is {{ balance }}.",
        _HOW_TO_USE_HTML,
    ),
))

_register(EmailType(
    kind=EmailKind.REFUND_WITH_STORE_CREDITS,
    description="Sent to a customer when an order is refunded with store credits "
                "(instead of the \u201ccredits received\u201d email for that refund).",
    audience="customer",
    placeholders=(*_COMMON, "amount", "order_id", "note", "expiry_date"),
    sample=_sample((*_COMMON, "amount", "order_id", "note", "expiry_date")),
    default_subject="Your order {{ order_id }} was refunded with {{ amount }} in store credits",
    default_text=(
        "Hi {{ customer_name }},\n\n"
        "We refunded {{ amount }} in store credits for your order {{ order_id }}.\n"
        "{% if note %}{{ note }}\n{% endif %}"
        "Your balance is now {{ balance }}.\n"
        "{% if expiry_date %}These credits expire on {{ expiry_date }}.\n{% endif %}\n"
        f"{_HOW_TO_USE_TEXT}\n\n"
        "{{ store_name }}\n"
    ),
    default_html=_html(
        "Hi {{ customer_name }},",
        "We refunded <strong>{{ amount }}</strong> in store credits for your order {{ order_id }}.",
        "{% if note %}{{ note }}{% endif %}",
        "Your balance is now <strong>{{ balance }}</strong>."
        "{% if expiry_date %} These credits expire on {{ expiry_date }}.{% endif %}",
        _HOW_TO_USE_HTML,
    ),
))

_register(EmailType(
    kind=EmailKind.CASH_REFUND_STATUS_CHANGED,
    description="Sent to a customer when their request to cash out store credits changes status.",
    audience="customer",
    placeholders=(*_COMMON, "amount", "status", "old_status", "reason", "request_id"),
    sample=_sample((*_COMMON, "amount", "status", "old_status", "reason", "request_id")),
    default_subject="{% if old_status %}Your cash refund request #{{ request_id }} is now {{ status|lower }}"
                    "{% else %}We received your cash refund request #{{ request_id }}{% endif %}",
    default_text=(
        "Hi {{ customer_name }},\n\n"
        "{% if old_status %}Your request to refund {{ amount }} of store credits in cash (#{{ request_id }}) "
        "changed from {{ old_status|lower }} to {{ status|lower }}."
        "{% else %}We received your request to refund {{ amount }} of store credits in cash "
        "(#{{ request_id }}).{% endif %}\n"
        "{% if reason %}{{ reason }}\n{% endif %}"
        "Your credit balance is {{ balance }}.\n\n"
        "{{ store_name }}\n"
    ),
    default_html=_html(
        "Hi {{ customer_name }},",
        "{% if old_status %}Your request to refund <strong>{{ amount }}</strong> of store credits in cash "
        "(#{{ request_id }}) changed from {{ old_status|lower }} to <strong>{{ status|lower }}</strong>."
        "{% else %}We received your request to refund <strong>{{ amount }}</strong> of store credits in cash "
        "(#{{ request_id }}).{% endif %}",
        "{% if reason %}{{ reason }}{% endif %}",
        "Your credit balance is {{ balance }}.",
    ),
))

_register(EmailType(
    kind=EmailKind.DELETION_NOTICE,
    description="Sent to a customer who asked to delete their account while they still have credits.",
    audience="customer",
    placeholders=(*_COMMON,),
    sample=_sample(_COMMON),
    default_subject="You still have {{ balance }} in store credits at {{ store_name }}",
    default_text=(
        "Hi {{ customer_name }},\n\n"
        "We received your request to delete your account at {{ store_name }}.\n"
        "You still have {{ balance }} in store credits (member card ending in {{ card_last4 }}). "
        "When the deletion is completed these credits are forfeited and cannot be restored.\n\n"
        "If you want to use them first, spend them at checkout before the deletion is confirmed.\n\n"
        "{{ store_name }}\n"
    ),
    default_html=_html(
        "Hi {{ customer_name }},",
        "We received your request to delete your account at {{ store_name }}.",
        "You still have <strong>{{ balance }}</strong> in store credits (member card ending in "
        "{{ card_last4 }}). When the deletion is completed these credits are forfeited and cannot be restored.",
        "If you want to use them first, spend them at checkout before the deletion is confirmed.",
    ),
))

_register(EmailType(
    kind=EmailKind.PAYOUT_FAILURE_ALERT,
    description="Sent to the staff addresses below when a cash refund payout failed after its last retry.",
    audience="staff",
    placeholders=("customer_name", "member_id", "store_name", "amount", "request_id", "attempts", "reason"),
    sample=_sample(("customer_name", "member_id", "store_name", "amount", "request_id", "attempts", "reason"))
    | {"reason": "Bank account closed"},
    default_subject="[{{ store_name }}] Payout failed: cash refund #{{ request_id }} ({{ amount }})",
    default_text=(
        "The payout of cash refund request #{{ request_id }} failed after {{ attempts }} attempts.\n\n"
        "Customer: {{ customer_name }} ({{ member_id }})\n"
        "Amount: {{ amount }}\n"
        "Last error: {{ reason }}\n\n"
        "Open the request in the admin to retry or undo it.\n"
    ),
    default_html=(
        '<div style="font-family: Arial, sans-serif; font-size: 15px; line-height: 1.5; color: #1f2937;">\n'
        "<p>The payout of cash refund request <strong>#{{ request_id }}</strong> failed after "
        "{{ attempts }} attempts.</p>\n"
        "<ul>\n<li>Customer: {{ customer_name }} ({{ member_id }})</li>\n<li>Amount: {{ amount }}</li>\n"
        "<li>Last error: {{ reason }}</li>\n</ul>\n"
        "<p>Open the request in the admin to retry or undo it.</p>\n"
        "</div>\n"
    ),
))


def email_type(kind: str) -> EmailType:
    return EMAIL_TYPES[kind]
