"""Input parsing for the manual credit/debit and export pop-ups. Forms never save."""

from __future__ import annotations

import datetime as dt
import uuid

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from credits_admin import money
from crm.models import Customer

from . import clock, selectors

REASON_CHOICES = [
    ("Goodwill", "Goodwill"),
    ("Service recovery", "Service recovery"),
    ("Promotion", "Promotion"),
    ("Order problem", "Order problem"),
    ("Correction", "Correction"),
    ("Event reward", "Event reward"),
    ("other", "Other…"),
]
EXPIRY_CHOICES = [
    ("policy", "Store policy"),
    ("never", "Never expires"),
    ("days", "Valid for a number of days"),
    ("date", "Valid until a date"),
]


SHOWN_EXPIRY_MAX_AGE = dt.timedelta(days=1)


def parse_amount_input(text, *, allow_negative: bool = False) -> int:
    """money.parse_amount for text typed into a form, as a field error."""
    try:
        return money.parse_amount(text, allow_negative=allow_negative)
    except money.MoneyParseError as exc:
        raise forms.ValidationError(str(exc)) from None


def find_customer(text: str) -> Customer:
    """Exactly one customer for a member ID, email or card number; ValidationError otherwise."""
    text = (text or "").strip()
    if not text:
        raise forms.ValidationError("Enter the customer's member ID, email or card number.")
    matches = list(Customer.objects.filter(pk__in=selectors.matching_customer_ids(text, exact=True))[:2])
    if not matches:
        raise forms.ValidationError("No customer matches this member ID, email or card number.")
    if len(matches) > 1:
        raise forms.ValidationError("More than one customer matches; enter the exact member ID.")
    return matches[0]


class CreditAdjustForm(forms.Form):
    customer = forms.CharField(
        label="Customer", max_length=200, required=False,
        help_text="Member ID, email or card number.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}))
    amount = forms.CharField(
        label="Amount", max_length=32,
        help_text="A negative amount deducts credits, e.g. -10.00.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
    reason = forms.ChoiceField(label="Reason", choices=REASON_CHOICES)
    reason_other = forms.CharField(label="Other reason", max_length=120, required=False)
    comment = forms.CharField(label="Comment", max_length=500,
                              help_text="Shown in the customer's credits history.",
                              widget=forms.Textarea(attrs={"rows": 2}))
    expiry = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, initial="policy")
    expiry_days = forms.IntegerField(label="Days", min_value=1, max_value=3650, required=False)
    expiry_date = forms.DateField(label="Until", required=False,
                                  widget=forms.DateInput(attrs={"type": "date"}))
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)
    # The expiry the preview showed, carried to the confirm step: what was shown is what is
    # posted, and a re-sent confirm has the very same arguments (a replay, not a conflict).
    expires_at_shown = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def __init__(self, *args, customer: Customer | None = None, **kwargs):
        kwargs.setdefault("auto_id", "adjust_%s")  # unique beside the page's search form
        super().__init__(*args, **kwargs)
        self.fixed_customer = customer
        self.fields["expiry"].help_text = self.policy_label()
        if customer is not None:
            del self.fields["customer"]
        else:
            self.fields["customer"].required = True
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4())

    def clean_customer(self):
        return find_customer(self.cleaned_data.get("customer", ""))

    def clean_amount(self):
        amount = parse_amount_input(self.cleaned_data["amount"], allow_negative=True)
        if amount == 0:
            raise forms.ValidationError("Enter an amount other than zero.")
        return amount

    def clean(self):
        data = super().clean()
        if data.get("reason") == "other" and not (data.get("reason_other") or "").strip():
            self.add_error("reason_other", "Describe the reason.")
        amount = data.get("amount")
        if amount is not None and amount > 0:
            expiry = data.get("expiry")
            today = timezone.localdate()
            if expiry == "policy" and self.policy_has_passed():
                self.add_error("expiry", "The store policy's expiry date has passed; choose another expiry.")
            if expiry == "days" and not data.get("expiry_days") and "expiry_days" not in self.errors:
                self.add_error("expiry_days", "Enter for how many days the credits are valid.")
            if expiry == "date":
                until = data.get("expiry_date")
                if "expiry_date" in self.errors:
                    pass  # already told what is wrong with it
                elif not until:
                    self.add_error("expiry_date", "Pick the last day the credits are valid.")
                elif until <= today:
                    self.add_error("expiry_date", "Pick a date after today.")
                elif until > today + dt.timedelta(days=3650 * 3):
                    self.add_error("expiry_date", "Pick a date within 30 years.")
        return data

    # -- the store's expiry policy for staff credits ------------------------------
    def policy_expiry(self):
        """What the store policy gives a credit posted now (None: never); asked once."""
        from . import services

        if not hasattr(self, "_policy_expiry"):
            self._policy_expiry = services.policy_expiry(source="staff", now=clock.now())
        return self._policy_expiry

    def policy_has_passed(self) -> bool:
        """A fixed policy date already behind us: such credits would be born expired."""
        expires = self.policy_expiry()
        return expires is not None and expires <= clock.now()

    def policy_label(self) -> str:
        expires = self.policy_expiry()
        if expires is None:
            return "Store policy: never expires."
        if self.policy_has_passed():
            return "Store policy: its date has passed."
        return f"Store policy: until {timezone.localtime(expires):%Y-%m-%d}."

    # -- what the form means ----------------------------------------------------
    @property
    def target_customer(self) -> Customer:
        return self.fixed_customer or self.cleaned_data["customer"]

    @property
    def reason_text(self) -> str:
        data = self.cleaned_data
        return data["reason_other"].strip() if data["reason"] == "other" else data["reason"]

    def expires_at(self, *, now=None):
        """The expiry for a credit (None: never)."""
        from . import services

        now = now or clock.now()
        data = self.cleaned_data
        if data["expiry"] == "never":
            return None
        if data["expiry"] == "date":
            tz = timezone.get_current_timezone()
            end = dt.datetime.combine(data["expiry_date"] + dt.timedelta(days=1), dt.time.min)
            return timezone.make_aware(end, tz)
        if data["expiry"] == "days":
            fresh = now + dt.timedelta(days=data["expiry_days"])
        else:
            fresh = services.policy_expiry(source="staff", now=now)
        try:
            shown = parse_datetime(data.get("expires_at_shown") or "")
        except ValueError:  # well-formed but impossible, e.g. month 13
            shown = None
        # The previewed moment, if it is what this choice gave at most a day ago.
        if (fresh is not None and shown is not None and shown.tzinfo is not None
                and now < shown <= fresh and fresh - shown <= SHOWN_EXPIRY_MAX_AGE):
            return shown
        return fresh
