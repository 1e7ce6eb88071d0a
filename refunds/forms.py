"""Input parsing for the refunds pop-ups. Forms never save: views hand cleaned data to
refunds.services, whose domain errors come back as field errors (`add_service_error`)."""

from __future__ import annotations

import uuid

from django import forms

from credits_admin import money
from credits_admin.models import StoreSettings
from crm.models import Customer

from .exceptions import RefundError


class AmountField(forms.CharField):
    """Major units typed by a person ('12.50') -> an int of minor units."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        try:
            amount = money.parse_amount(value)
        except money.MoneyParseError as exc:
            raise forms.ValidationError(str(exc)) from None
        if amount <= 0:
            raise forms.ValidationError("Enter an amount greater than zero.")
        return amount


class ServiceErrorsMixin:
    # service field names -> form field names
    field_map: dict[str, str] = {}

    def add_service_error(self, exc: RefundError) -> None:
        field = self.field_map.get(exc.field, exc.field) if exc.field else None
        self.add_error(field if field in self.fields else None, exc.message)


class RequestCreateForm(ServiceErrorsMixin, forms.Form):
    """A cash-refund request submitted by staff on a customer's behalf."""

    customer = forms.ModelChoiceField(
        queryset=Customer.objects.exclude(status=Customer.Status.DELETED), widget=forms.HiddenInput,
        error_messages={"required": "Search for the customer and pick one.",
                        "invalid_choice": "Search for the customer and pick one."})
    amount = AmountField(label="Amount", help_text="At most the customer's available credits.")
    account_holder = forms.CharField(label="Account holder", max_length=120)
    bank_name = forms.CharField(label="Bank", max_length=120)
    account_number = forms.CharField(
        label="Account number", max_length=60,
        help_text="Stored encrypted; only the last four digits are shown afterwards.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    memo = forms.CharField(label="Memo", max_length=1000, required=False,
                           widget=forms.Textarea(attrs={"rows": 2, "placeholder": "For the team (optional)"}))
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4())


class RejectForm(ServiceErrorsMixin, forms.Form):
    reason = forms.CharField(label="Reason (the customer is told)", max_length=500,
                             widget=forms.Textarea(attrs={"rows": 3}))
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)


class ActionForm(forms.Form):
    """The hidden fields of a row's action button."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0, required=False)


class CustomerEmailForm(ServiceErrorsMixin, forms.Form):
    subject = forms.CharField(label="Subject", max_length=200)
    message = forms.CharField(label="Message", max_length=5000, widget=forms.Textarea(attrs={"rows": 8}))


class OrderCreditRefundForm(ServiceErrorsMixin, forms.Form):
    amount = AmountField(label="Amount to refund as store credits")
    notify = forms.BooleanField(label="Send notification to customer", required=False, initial=True)
    note = forms.CharField(label="Note", max_length=500, help_text="Shown in the order's notes.",
                           widget=forms.Textarea(attrs={"rows": 3}))
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4())
            self.initial.setdefault("note", StoreSettings.load().refund_note)
