"""Input parsing for the program settings, expiry policy and allocation rule pages. Forms
never save; amounts are parsed with credits_admin.money.parse_amount (store currency)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from credits_admin import money

from .models import MAX_TIERS, AllocationRule, ExpiryMode, Method, Mode, ProgramSettings

CURRENCY_CHOICES = [
    ("USD", "USD — US dollar"),
    ("EUR", "EUR — Euro"),
    ("GBP", "GBP — British pound"),
    ("CAD", "CAD — Canadian dollar"),
    ("AUD", "AUD — Australian dollar"),
    ("KRW", "KRW — South Korean won (no minor unit)"),
    ("JPY", "JPY — Japanese yen (no minor unit)"),
]
MAX_EXPIRY_DAYS = 3650


class ProgramSettingsForm(forms.Form):
    credits_enabled = forms.BooleanField(
        label="Store credits", required=False,
        help_text="Off: no allocation rule grants credits and the member panel and balance API report the "
                  "program as off; customers can still redeem credits that have not expired.")
    store_name = forms.CharField(label="Store name", max_length=120)
    currency = forms.ChoiceField(
        label="Store currency", choices=CURRENCY_CHOICES,
        help_text="Every amount is stored in minor units of this currency, so it cannot change once credits "
                  "have been posted.")
    refund_note = forms.CharField(
        label="Default note for refunds with store credits", max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Pre-filled in the refund pop-up; staff can edit it. It shows in the order's notes.")

    def __init__(self, *args, currency_locked: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency_locked = currency_locked
        if currency_locked:
            self.fields["currency"].help_text = currency_locked



# --------------------------------------------------------------------------- expiry

def _expiry_fields(prefix: str) -> dict:
    return {
        f"{prefix}expiry_mode": forms.ChoiceField(label="Expiry", choices=ExpiryMode.choices,
                                                  initial=ExpiryMode.NEVER, widget=forms.RadioSelect),
        f"{prefix}expiry_days": forms.IntegerField(
            label="Number of days", required=False, min_value=1, max_value=MAX_EXPIRY_DAYS,
            help_text="Counted from the moment the credits are granted.",
            error_messages={"min_value": "Enter at least 1 day.",
                            "max_value": f"Enter at most {MAX_EXPIRY_DAYS} days (10 years)."}),
        f"{prefix}expiry_date": forms.DateField(
            label="Valid until", required=False, widget=forms.DateInput(attrs={"type": "date"}),
            help_text="Credits can be used through the end of this day."),
    }


def clean_expiry(form: forms.Form, data: dict, prefix: str = "") -> dict:
    """Check one expiry group; returns its normalized values (unused parts emptied)."""
    mode = data.get(f"{prefix}expiry_mode")
    days = data.get(f"{prefix}expiry_days")
    date = data.get(f"{prefix}expiry_date")
    if mode == ExpiryMode.DAYS and not days and f"{prefix}expiry_days" not in form.errors:
        form.add_error(f"{prefix}expiry_days", "Enter for how many days the credits are valid.")
    if mode == ExpiryMode.DATE and f"{prefix}expiry_date" not in form.errors:
        today = timezone.localdate()
        if not date:
            form.add_error(f"{prefix}expiry_date", "Pick the last day the credits are valid.")
        elif date <= today:
            form.add_error(f"{prefix}expiry_date", "Pick a date after today.")
        elif date > today + dt.timedelta(days=MAX_EXPIRY_DAYS * 3):
            form.add_error(f"{prefix}expiry_date", "Pick a date within 30 years.")
    return {
        f"{prefix}expiry_mode": mode,
        f"{prefix}expiry_days": days if mode == ExpiryMode.DAYS else None,
        f"{prefix}expiry_date": date if mode == ExpiryMode.DATE else None,
    }


class ExpiryPolicyForm(forms.Form):
    same_expiry_for_all = forms.BooleanField(
        label="All store credits share the same expiry", required=False,
        help_text="Off: each allocation rule sets its own expiry in its pop-up.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for prefix in ("", "staff_", "refund_"):
            self.fields.update(_expiry_fields(prefix))

    def clean(self):
        data = super().clean()
        values = {"same_expiry_for_all": bool(data.get("same_expiry_for_all"))}
        if values["same_expiry_for_all"]:
            values.update(clean_expiry(self, data))
        for prefix in ("staff_", "refund_"):
            values.update(clean_expiry(self, data, prefix))
        self.policy_values = values
        return data

    def group(self, prefix: str) -> list:
        return [self[f"{prefix}expiry_mode"], self[f"{prefix}expiry_days"], self[f"{prefix}expiry_date"]]


# --------------------------------------------------------------------------- rules

class MoneyField(forms.CharField):
    """A money input: text parsed into minor units of the store currency."""

    def __init__(self, *, allow_zero: bool = False, **kwargs):
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
        self.allow_zero = allow_zero
        super().__init__(**kwargs)
        self.validators = []  # the length limit applies to the text, checked in to_python

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        if len(value) > self.max_length:
            raise forms.ValidationError("That amount is too long.")
        try:
            minor = money.parse_amount(value)
        except money.MoneyParseError as exc:
            raise forms.ValidationError(str(exc)) from None
        if minor == 0 and not self.allow_zero:
            raise forms.ValidationError("Enter an amount greater than zero.")
        return minor

    def prepare_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return money.input_value(value)
        return value


MODE_CHOICES = {
    Method.FIRST_ORDER: [(Mode.FIXED, "Fixed amount"), (Mode.PER_VALUE, "Based on the amount paid for the items")],
    Method.PAID_ORDER: [(Mode.FIXED, "Fixed amount"), (Mode.PER_VALUE, "Based on the amount paid for the items")],
    Method.SPEND_HISTORY: [(Mode.EVERY, "Every X spent, receive Y"), (Mode.TIERS, "Accumulated amount tiers")],
}


class RuleForm(forms.Form):
    """One allocation rule. Which fields count depends on the method and mode; the others
    are ignored (and hidden in the pop-up)."""

    mode = forms.ChoiceField(label="How much", widget=forms.RadioSelect, required=False)
    amount = MoneyField(label="Credits", required=False)
    per_amount = MoneyField(label="For every", required=False)
    min_spend = MoneyField(label="Minimum spend", required=False, allow_zero=True,
                           help_text="Orders whose items total less than this earn nothing. Leave empty for "
                                     "no minimum.")

    def __init__(self, *args, method: str, program: ProgramSettings | None = None, rule=None, **kwargs):
        if rule is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_from(rule)
        super().__init__(*args, **kwargs)
        self.method = method
        self.rule = rule
        self.per_rule_expiry = program is not None and not program.same_expiry_for_all
        if method in MODE_CHOICES:
            self.fields["mode"].choices = MODE_CHOICES[method]
            self.fields["mode"].required = True
            self.fields["mode"].initial = MODE_CHOICES[method][0][0]
        else:
            del self.fields["mode"]
        if method != Method.PAID_ORDER:
            del self.fields["min_spend"]
        if method in (Method.ORDER_HISTORY,):
            del self.fields["amount"], self.fields["per_amount"]
        if method == Method.REGISTRATION:
            del self.fields["per_amount"]
        if method == Method.SPEND_HISTORY:
            self.fields["amount"].label = "Receive"
            self.fields["per_amount"].label = "Every time the customer spends"
        elif "per_amount" in self.fields:
            self.fields["amount"].help_text = "A fixed amount, or what the customer receives for every amount below."
            self.fields["per_amount"].help_text = "Used when the rule is based on the amount paid for the items."
        if method in (Method.ORDER_HISTORY, Method.SPEND_HISTORY):
            for n in range(1, MAX_TIERS + 1):
                if method == Method.ORDER_HISTORY:
                    threshold = forms.IntegerField(label=f"Tier {n}: paid orders", required=False, min_value=1,
                                                   max_value=100_000,
                                                   error_messages={"min_value": "Enter at least 1 order."})
                else:
                    threshold = MoneyField(label=f"Tier {n}: total spend reaches", required=False)
                self.fields[f"tier_{n}_threshold"] = threshold
                self.fields[f"tier_{n}_amount"] = MoneyField(label=f"Tier {n}: credits", required=False)
        if self.per_rule_expiry:
            self.fields.update(_expiry_fields(""))

    @staticmethod
    def initial_from(rule: AllocationRule) -> dict:
        initial = {"mode": rule.mode, "amount": rule.amount, "per_amount": rule.per_amount,
                   "min_spend": rule.min_spend or None, "expiry_mode": rule.expiry_mode,
                   "expiry_days": rule.expiry_days, "expiry_date": rule.expiry_date}
        for n, tier in enumerate(rule.tiers or [], start=1):
            initial[f"tier_{n}_threshold"] = tier["threshold"]
            initial[f"tier_{n}_amount"] = tier["amount"]
        return initial

    # -- which fields apply ----------------------------------------------------------------
    @property
    def uses_tiers(self) -> bool:
        return self.method == Method.ORDER_HISTORY or (
            self.method == Method.SPEND_HISTORY and self._mode() == Mode.TIERS)

    def _mode(self) -> str:
        if self.method in MODE_CHOICES:
            return (self.cleaned_data.get("mode") if hasattr(self, "cleaned_data") else None) or \
                MODE_CHOICES[self.method][0][0]
        return Mode.FIXED

    def tier_rows(self) -> list[tuple]:
        return [(n, self[f"tier_{n}_threshold"], self[f"tier_{n}_amount"]) for n in range(1, MAX_TIERS + 1)
                if f"tier_{n}_threshold" in self.fields]

    def clean(self):
        data = super().clean()
        mode = self._mode()
        needs_amount = self.method in (Method.FIRST_ORDER, Method.PAID_ORDER, Method.REGISTRATION) or (
            self.method == Method.SPEND_HISTORY and mode == Mode.EVERY)
        needs_per = mode in (Mode.PER_VALUE, Mode.EVERY)
        if needs_amount and data.get("amount") is None and "amount" not in self.errors:
            self.add_error("amount", "Enter the amount of credits, greater than zero.")
        if needs_per and data.get("per_amount") is None and "per_amount" not in self.errors:
            self.add_error("per_amount", "Enter the amount X, greater than zero.")
        tiers = self._clean_tiers(data) if self.uses_tiers else []
        values = {
            "mode": mode,
            "amount": data.get("amount") if needs_amount else None,
            "per_amount": data.get("per_amount") if needs_per else None,
            "min_spend": (data.get("min_spend") or 0) if self.method == Method.PAID_ORDER else 0,
            "tiers": tiers,
        }
        if self.per_rule_expiry:
            values.update(clean_expiry(self, data))
        elif self.rule is not None:  # keep the rule's own expiry for when per-rule expiry is switched on
            values.update(expiry_mode=self.rule.expiry_mode, expiry_days=self.rule.expiry_days,
                          expiry_date=self.rule.expiry_date)
        self.rule_values = values
        return data

    def _clean_tiers(self, data) -> list[dict]:
        tiers: list[dict] = []
        gap_at = None
        for n in range(1, MAX_TIERS + 1):
            t_name, a_name = f"tier_{n}_threshold", f"tier_{n}_amount"
            if t_name in self.errors or a_name in self.errors:
                tiers.append(None)
                continue
            threshold, amount = data.get(t_name), data.get(a_name)
            if threshold is None and amount is None:
                gap_at = gap_at or n
                continue
            if gap_at is not None:
                self.add_error(t_name, f"Fill tier {gap_at} first: tiers go from the lowest up, without gaps.")
                continue
            if threshold is None:
                self.add_error(t_name, "Enter this tier's threshold.")
            if amount is None:
                self.add_error(a_name, "Enter this tier's credits, greater than zero.")
            if threshold is None or amount is None:
                tiers.append(None)
                continue
            previous = next((t for t in reversed(tiers) if t is not None), None)
            if previous is not None and threshold <= previous["threshold"]:
                shown = threshold if self.method == Method.ORDER_HISTORY else money.format_amount(threshold)
                before = (previous["threshold"] if self.method == Method.ORDER_HISTORY
                          else money.format_amount(previous["threshold"]))
                self.add_error(t_name, f"Thresholds must increase: {shown} is not more than the tier before "
                                       f"({before}).")
                tiers.append(None)
                continue
            tiers.append({"threshold": threshold, "amount": amount})
        if not tiers and "tier_1_threshold" not in self.errors:
            self.add_error("tier_1_threshold", "Add at least one tier.")
        if len(tiers) > MAX_TIERS:
            self.add_error(None, f"At most {MAX_TIERS} tiers.")
        return [t for t in tiers if t is not None]

    def build_rule(self) -> AllocationRule:
        """The rule as edited (unsaved), for the preview, the back-test and saving."""
        rule = AllocationRule(method=self.method, **self.rule_values)
        if self.rule is not None:
            rule.pk = self.rule.pk
            rule.version = self.rule.version
        return rule
