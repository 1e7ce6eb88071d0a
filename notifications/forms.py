from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from . import sandbox, services
from .kinds import EMAIL_TYPES, email_type
from .models import EmailSettings

MAX_STAFF_RECIPIENTS = 20


def enabled_field_name(kind: str) -> str:
    return f"enabled_{kind}"


class EmailSettingsForm(forms.Form):
    """The Emails page: a switch per email type, the reminder lead time, the staff addresses."""

    expiry_reminder_days = forms.IntegerField(
        label="Remind customers this many days before credits expire", min_value=1, max_value=60,
        error_messages={"min_value": "Remind at least 1 day ahead.", "max_value": "Remind at most 60 days ahead.",
                        "invalid": "Enter a whole number of days, such as 3."},
        widget=forms.NumberInput(attrs={"class": "days-input"}))
    staff_recipients = forms.CharField(
        label="Staff alert addresses", required=False, max_length=1000,
        help_text="Comma-separated email addresses that get payout failure alerts.",
        widget=forms.TextInput(attrs={"placeholder": "ops@store.example, finance@store.example",
                                      "autocomplete": "off"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind, t in EMAIL_TYPES.items():
            self.fields[enabled_field_name(kind)] = forms.BooleanField(label=t.label, required=False)
        self.order_fields([enabled_field_name(k) for k in EMAIL_TYPES])

    @classmethod
    def initial_from_db(cls) -> dict:
        config = EmailSettings.load()
        initial = {"expiry_reminder_days": config.expiry_reminder_days, "staff_recipients": config.staff_recipients}
        for kind in EMAIL_TYPES:
            initial[enabled_field_name(kind)] = services.load_template(kind).enabled
        return initial

    def switch_fields(self):
        return [(email_type(kind), self[enabled_field_name(kind)]) for kind in EMAIL_TYPES]

    def clean_staff_recipients(self) -> list[str]:
        raw = self.cleaned_data.get("staff_recipients") or ""
        addresses = [a.strip() for a in raw.replace(";", ",").split(",") if a.strip()]
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            shown = ", ".join(f"“{b[:60]}”" for b in bad[:3])
            raise ValidationError(f"Not a valid email address: {shown}. Separate addresses with commas.")
        if len(addresses) > MAX_STAFF_RECIPIENTS:
            raise ValidationError(f"Enter at most {MAX_STAFF_RECIPIENTS} addresses.")
        unique: dict[str, str] = {}
        for address in addresses:
            unique.setdefault(address.lower(), address)
        # Stored joined by ", ", which can be longer than what was typed ("a,b" -> "a, b").
        if len(", ".join(unique.values())) > EmailSettings._meta.get_field("staff_recipients").max_length:
            raise ValidationError("These addresses are too long together; keep them under 1,000 characters.")
        return list(unique.values())

    def clean(self):
        data = super().clean()
        alert_on = data.get(enabled_field_name("payout_failure_alert"))
        if alert_on and "staff_recipients" in data and not data["staff_recipients"]:
            self.add_error("staff_recipients",
                           "Add at least one address for payout failure alerts, or switch that email off.")
        return data

    def enabled(self) -> dict[str, bool]:
        return {kind: bool(self.cleaned_data.get(enabled_field_name(kind))) for kind in EMAIL_TYPES}


class TemplateForm(forms.Form):
    """Subject, text and HTML of one email type. Each is checked in the sandbox: an unknown
    placeholder, an attribute lookup, a forbidden tag or filter, or broken syntax is an
    error next to that field."""

    subject = forms.CharField(label="Subject", max_length=300,
                              widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "true"}))
    body_text = forms.CharField(label="Plain-text body", max_length=sandbox.MAX_TEMPLATE_LENGTH, strip=False,
                                widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "true", "class": "code"}))
    body_html = forms.CharField(label="HTML body", max_length=sandbox.MAX_TEMPLATE_LENGTH, strip=False,
                                widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code"}))

    def __init__(self, *args, kind: str, **kwargs):
        self.kind = kind
        self.email_type = email_type(kind)
        super().__init__(*args, **kwargs)
        self.rendered: dict[str, str] | None = None

    def _check(self, name: str, *, html: bool) -> str:
        value = self.cleaned_data.get(name, "")
        try:
            sandbox.compile_template(value, placeholders=self.email_type.placeholders, html=html)
        except sandbox.TemplateProblem as exc:
            raise ValidationError(str(exc)) from None
        return value

    def clean_subject(self):
        return self._check("subject", html=False)

    def clean_body_text(self):
        return self._check("body_text", html=False)

    def clean_body_html(self):
        return self._check("body_html", html=True)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.rendered = services.render_parts(kind=self.kind, subject=data["subject"],
                                                  body_text=data["body_text"], body_html=data["body_html"],
                                                  values=self.email_type.sample)
        except sandbox.TemplateProblem as exc:
            raise ValidationError(str(exc)) from None
        if not self.rendered["subject"]:
            self.add_error("subject", "With the sample data this subject is empty; write some text in it.")
        if not self.rendered["text"].strip():
            self.add_error("body_text", "With the sample data this body is empty; write some text in it.")
        if not self.rendered["html"].strip():
            self.add_error("body_html", "With the sample data this body is empty; write some text in it.")
        return data
