"""The Emails pages: who may open and change what, the settings form, the template editor
with its live preview, and the Email log with Resend."""

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from credits_admin.models import AuditEvent
from credits_admin.roles import ROLE_NAMES
from ledger import services as ledger_services
from notifications.kinds import EMAIL_TYPES, EmailKind
from notifications.models import EmailSettings, EmailTemplate, OutboxMessage
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
S = OutboxMessage.Status
KIND = EmailKind.CREDITS_RECEIVED

# (url name, args, method) -> roles allowed; everyone else gets 403.
ADMIN = {"Store admin"}
VIEWERS = {"Store admin", "Ops"}


def _message(status=S.SENT, **fields) -> OutboxMessage:
    customer = CustomerFactory()
    ledger_services.grant(customer=customer, amount=1250, reason="Welcome")
    message = OutboxMessage.objects.get(customer=customer)
    values = {"status": status, "sent_at": timezone.now() if status == S.SENT else None} | fields
    OutboxMessage.objects.filter(pk=message.pk).update(**values)
    message.refresh_from_db()
    return message


def _template_post(**overrides):
    t = EMAIL_TYPES[KIND]
    return {"subject": t.default_subject, "body_text": t.default_text, "body_html": t.default_html} | overrides


def _settings_post(**overrides):
    data = {f"enabled_{kind}": "on" for kind in EMAIL_TYPES}
    data |= {"expiry_reminder_days": "3", "staff_recipients": "ops@store.example"}
    data |= overrides
    return {k: v for k, v in data.items() if v is not None}


# --------------------------------------------------------------------------- permissions

def _pages():
    message_pk = _message().pk
    return [
        ("notifications:email_settings", [], "get", VIEWERS),
        ("notifications:email_settings", [], "post", ADMIN),
        ("notifications:template_edit", [KIND], "get", ADMIN),
        ("notifications:template_edit", [KIND], "post", ADMIN),
        ("notifications:template_preview", [KIND], "post", ADMIN),
        ("notifications:template_reset", [KIND], "post", ADMIN),
        ("notifications:email_log", [], "get", VIEWERS),
        ("notifications:message_detail", [message_pk], "get", VIEWERS),
        ("notifications:message_resend", [message_pk], "post", ADMIN),
    ]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_each_page_answers_each_role_as_its_permissions_say(client, staff, role):
    # given
    client.force_login(staff(role))
    # when / then
    for name, args, method, allowed in _pages():
        data = _settings_post() if name.endswith("email_settings") else _template_post()
        response = getattr(client, method)(reverse(name, args=args), data if method == "post" else None)
        expected_ok = role in allowed
        assert (response.status_code != 403) == expected_ok, (name, method, role, response.status_code)
        if expected_ok:
            assert response.status_code in (200, 204, 302), (name, method, role, response.status_code)


def test_anonymous_user_is_sent_to_the_login_page(client):
    # given / when
    response = client.get(reverse("notifications:email_settings"))
    # then
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_ops_sees_the_settings_read_only(client, staff):
    # given
    client.force_login(staff("Ops"))
    # when
    response = client.get(reverse("notifications:email_settings"))
    # then
    html = response.content.decode()
    assert "only a Store admin can change them" in html
    assert "Save settings" not in html and "Edit template" not in html
    assert 'name="enabled_credits_received"' in html and "disabled" in html


# --------------------------------------------------------------------------- settings page

def test_settings_page_lists_every_email_type_with_its_switch(client, staff):
    # given
    client.force_login(staff("Store admin"))
    # when
    response = client.get(reverse("notifications:email_settings"))
    # then
    html = response.content.decode()
    for kind, t in EMAIL_TYPES.items():
        assert t.label in html
        assert reverse("notifications:template_edit", args=[kind]) in html


def test_saving_settings_switches_emails_and_stores_days_and_addresses(client, staff):
    # given
    admin = staff("Store admin")
    client.force_login(admin)
    data = _settings_post(enabled_credits_redeemed=None, expiry_reminder_days="5",
                          staff_recipients=" ops@store.example ; Finance@Store.example,ops@STORE.example ")
    # when
    response = client.post(reverse("notifications:email_settings"), data)
    # then
    assert response.status_code == 302
    assert not EmailTemplate.objects.get(kind=EmailKind.CREDITS_REDEEMED).enabled
    assert EmailTemplate.objects.get(kind=KIND).enabled
    config = EmailSettings.load()
    assert config.expiry_reminder_days == 5
    assert config.staff_recipient_list == ["ops@store.example", "Finance@Store.example"]
    event = AuditEvent.objects.get(action="notifications.settings_changed")
    assert event.actor == admin
    assert event.after == {"credits_redeemed.enabled": False, "expiry_reminder_days": 5,
                           "staff_recipients": "ops@store.example, Finance@Store.example"}


@pytest.mark.parametrize("overrides, field, message", [
    ({"staff_recipients": "ops@store.example, not-an-address"}, "staff_recipients",
     "Not a valid email address: “not-an-address”. Separate addresses with commas."),
    ({"staff_recipients": ""}, "staff_recipients",
     "Add at least one address for payout failure alerts, or switch that email off."),
    ({"staff_recipients": ",".join(f"{'x' * 38}{n:02d}@store.example" for n in range(18))}, "staff_recipients",
     "These addresses are too long together; keep them under 1,000 characters."),
    ({"expiry_reminder_days": "0"}, "expiry_reminder_days", "Remind at least 1 day ahead."),
    ({"expiry_reminder_days": "61"}, "expiry_reminder_days", "Remind at most 60 days ahead."),
    ({"expiry_reminder_days": "three"}, "expiry_reminder_days", "Enter a whole number of days, such as 3."),
    ({"expiry_reminder_days": ""}, "expiry_reminder_days", "This field is required."),
])
def test_invalid_settings_show_the_error_next_to_the_field_and_write_nothing(client, staff, overrides, field, message):
    # given
    client.force_login(staff("Store admin"))
    before = list(EmailTemplate.objects.values_list("kind", "enabled"))
    # when
    response = client.post(reverse("notifications:email_settings"),
                           _settings_post(enabled_credits_received=None, **overrides))
    # then
    assert response.status_code == 200
    assert response.context["form"].errors[field] == [message]
    assert f'id="field-{field}"' in response.content.decode()
    assert list(EmailTemplate.objects.values_list("kind", "enabled")) == before
    assert EmailSettings.load().expiry_reminder_days == 3
    assert not AuditEvent.objects.filter(action="notifications.settings_changed").exists()


def test_no_staff_address_is_fine_when_the_alert_is_off(client, staff):
    # given
    client.force_login(staff("Store admin"))
    # when
    response = client.post(reverse("notifications:email_settings"),
                           _settings_post(enabled_payout_failure_alert=None, staff_recipients=""))
    # then
    assert response.status_code == 302
    assert not EmailTemplate.objects.get(kind=EmailKind.PAYOUT_FAILURE_ALERT).enabled


# --------------------------------------------------------------------------- template editor

def test_editor_shows_the_placeholders_and_a_preview_on_sample_data(client, staff):
    # given
    client.force_login(staff("Store admin"))
    # when
    response = client.get(reverse("notifications:template_edit", args=[KIND]))
    # then
    html = response.content.decode()
    for name in EMAIL_TYPES[KIND].placeholders:
        assert "{{ " + name + " }}" in html
    assert "You received $12.50 in store credits at Demo Store" in html  # the sample subject
    assert 'sandbox=""' in html and "srcdoc=" in html


def test_saving_a_valid_template_stores_and_audits_it(client, staff):
    # given
    admin = staff("Store admin")
    client.force_login(admin)
    data = _template_post(subject="{{ customer_name }}, {{ amount }} is yours")
    # when
    response = client.post(reverse("notifications:template_edit", args=[KIND]), data)
    # then
    assert response.status_code == 302 and response["Location"] == reverse("notifications:email_settings")
    template = EmailTemplate.objects.get(kind=KIND)
    assert template.subject == "{{ customer_name }}, {{ amount }} is yours" and template.updated_by == admin
    event = AuditEvent.objects.get(action="notifications.template_changed")
    assert event.after == {"subject": "{{ customer_name }}, {{ amount }} is yours"}


def test_a_saved_template_is_used_for_the_next_email(client, staff, django_capture_on_commit_callbacks):
    # given
    client.force_login(staff("Store admin"))
    client.post(reverse("notifications:template_edit", args=[KIND]),
                _template_post(subject="{{ customer_name|upper }}: +{{ amount }}"))
    customer = CustomerFactory(name="Ada Lovelace")
    # when
    ledger_services.grant(customer=customer, amount=1250, reason="Welcome")
    # then
    assert OutboxMessage.objects.get(customer=customer).subject == "ADA LOVELACE: +$12.50"


INVALID_TEMPLATES = [
    ("subject", "Hello {{ first_name }}", "Line 1: unknown placeholder {{ first_name }}."),
    ("body_text", "Hi\n{{ customer_name.upper }}",
     "Line 2: {{ customer_name.upper }} looks up “upper” on a placeholder."),
    ("body_html", "{% load static %}<p>x</p>", "Line 1: the tag {% load %} is not allowed in email templates."),
    ("body_html", '{% include "x" %}', "Line 1: the tag {% include %} is not allowed in email templates."),
    ("body_html", "{% extends 'base.html' %}", "Line 1: the tag {% extends %} is not allowed"),
    ("body_text", "{% debug %}", "Line 1: the tag {% debug %} is not allowed"),
    ("body_text", "{% url 'dashboard' %}", "Line 1: the tag {% url %} is not allowed"),
    ("body_html", "<p>{% if amount %}never closed</p>", "Unclosed tag on line 1: 'if'."),
    ("body_html", "{{ amount|safe }}", "Line 1: the filter |safe is not allowed in email templates."),
    ("body_text", "{{ customer_name.__class__ }}", "may not begin with underscores"),
    ("body_html", "{% if amount %}" * 60 + "x" + "{% endif %}" * 60, "Line 1: blocks are nested more than 20 deep."),
    ("subject", "", "This field is required."),
    ("subject", "{% if not amount %}{{ reason }}{% endif %}",
     "With the sample data this subject is empty; write some text in it."),
    ("body_html", "{% if not amount %}<p>{{ amount }}</p>{% endif %}",
     "With the sample data this body is empty; write some text in it."),
]


@pytest.mark.parametrize("field, source, message", INVALID_TEMPLATES)
def test_an_invalid_template_shows_a_clear_message_next_to_the_field_and_writes_nothing(
        client, staff, field, source, message):
    # given
    client.force_login(staff("Store admin"))
    before = EmailTemplate.objects.filter(kind=KIND).values().get()
    # when
    response = client.post(reverse("notifications:template_edit", args=[KIND]), _template_post(**{field: source}))
    # then
    assert response.status_code == 200
    errors = response.context["form"].errors[field]
    assert any(message in e for e in errors), errors
    html = response.content.decode()
    assert f'id="errors-{field}"' in html and "errorlist" in html
    assert EmailTemplate.objects.filter(kind=KIND).values().get() == before
    assert not AuditEvent.objects.filter(action="notifications.template_changed").exists()


def test_live_preview_renders_the_sample_and_clears_field_errors(client, staff, htmx_headers):
    # given
    client.force_login(staff("Store admin"))
    # when
    response = client.post(reverse("notifications:template_preview", args=[KIND]),
                           _template_post(subject="Hi {{ customer_name }}!", body_html="<p>{{ amount }}</p>"),
                           headers=htmx_headers)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert '<strong data-testid="preview-subject">Hi Ada Lovelace!</strong>' in html
    assert 'srcdoc="&lt;p&gt;$12.50&lt;/p&gt;"' in html  # escaped into the attribute, shown as HTML
    assert 'id="errors-subject" class="notif-field-errors" aria-live="polite" hx-swap-oob="true"' in html
    assert "errorlist" not in html
    assert not AuditEvent.objects.exists()


def test_live_preview_of_a_broken_template_shows_the_errors_out_of_band_and_writes_nothing(
        client, staff, htmx_headers):
    # given
    client.force_login(staff("Store admin"))
    before = EmailTemplate.objects.filter(kind=KIND).values().get()
    # when
    response = client.post(reverse("notifications:template_preview", args=[KIND]),
                           _template_post(body_text="{{ balanse }}"), headers=htmx_headers)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Fix the highlighted template to see the preview." in html
    assert "unknown placeholder {{ balanse }}. Did you mean {{ balance }}?" in html
    assert EmailTemplate.objects.filter(kind=KIND).values().get() == before


def test_preview_keeps_the_template_html_inside_the_sandboxed_frame(client, staff, htmx_headers):
    # given: a Store admin pastes markup that tries to break out of the preview frame
    client.force_login(staff("Store admin"))
    hostile = '<p style="color: red">{{ amount }}</p>"></iframe><script>alert(1)</script>'
    # when
    response = client.post(reverse("notifications:template_preview", args=[KIND]),
                           _template_post(body_html=hostile), headers=htmx_headers)
    # then: it is all inside srcdoc, escaped, and the frame may run no script
    html = response.content.decode()
    assert "<script>" not in html
    assert ('srcdoc="&lt;p style=&quot;color: red&quot;&gt;$12.50&lt;/p&gt;&quot;&gt;&lt;/iframe&gt;'
            '&lt;script&gt;alert(1)&lt;/script&gt;"') in html
    assert 'sandbox=""' in html


def test_reset_to_default_restores_the_shipped_template(client, staff, htmx_headers):
    # given
    client.force_login(staff("Store admin"))
    client.post(reverse("notifications:template_edit", args=[KIND]), _template_post(subject="Custom {{ amount }}"))
    # when
    response = client.post(reverse("notifications:template_reset", args=[KIND]), headers=htmx_headers)
    # then
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("notifications:template_edit", args=[KIND])
    assert EmailTemplate.objects.get(kind=KIND).subject == EMAIL_TYPES[KIND].default_subject
    assert AuditEvent.objects.filter(action="notifications.template_changed").count() == 2


def test_unknown_email_type_is_404(client, staff):
    # given
    client.force_login(staff("Store admin"))
    # when
    response = client.get(reverse("notifications:template_edit", args=["nope"]))
    # then
    assert response.status_code == 404


def test_every_email_type_ships_an_enabled_default_template():
    # given / when
    stored = {t.kind: t for t in EmailTemplate.objects.all()}
    # then
    assert set(stored) == set(EMAIL_TYPES)
    for kind, t in EMAIL_TYPES.items():
        assert stored[kind].enabled
        assert (stored[kind].subject, stored[kind].body_text, stored[kind].body_html) == (
            t.default_subject, t.default_text, t.default_html)


# --------------------------------------------------------------------------- email log

def test_log_shows_status_sent_time_and_error(client, staff):
    # given
    sent = _message()
    failed = _message(status=S.FAILED, last_error="SMTPRecipientsRefused: 550 No such user", attempts=8)
    client.force_login(staff("Ops"))
    # when
    response = client.get(reverse("notifications:email_log"))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert sent.to in html and failed.to in html
    assert timezone.localtime(sent.sent_at).strftime("%Y-%m-%d %H:%M") in html
    assert "SMTPRecipientsRefused: 550 No such user" in html
    assert 'class="badge email-status-failed">Failed<' in html
    assert "Resend" not in html  # Ops may look, not resend


@pytest.mark.parametrize("query, expected", [
    ({"status": "failed"}, {"failed"}),
    ({"kind": "credits_redeemed"}, {"redeemed"}),
    ({"recipient": "@EXAMPLE.com"}, {"sent", "failed", "redeemed"}),  # any case, part of the address
    ({"recipient": "nobody@"}, set()),
    ({"date_from": "2000-01-01", "date_to": "2000-01-02"}, set()),
])
def test_log_filters_by_kind_status_recipient_and_date(client, staff, query, expected):
    # given
    rows = {"sent": _message(), "failed": _message(status=S.FAILED)}
    customer = CustomerFactory()
    ledger_services.grant(customer=customer, amount=900, reason="x")
    ledger_services.debit(customer=customer, amount=100, kind="redeem", reason="Checkout", source="api")
    rows["redeemed"] = OutboxMessage.objects.get(kind=EmailKind.CREDITS_REDEEMED)
    OutboxMessage.objects.filter(customer=customer, kind=KIND).delete()
    client.force_login(staff("Store admin"))
    # when
    response = client.get(reverse("notifications:email_log"), query, headers={"HX-Request": "true",
                                                                              "HX-Target": "results"})
    # then
    shown = {row.record.pk for row in response.context["table"].page.object_list}
    assert shown == {rows[name].pk for name in expected}
    assert '<div id="results"' in response.content.decode()


def test_log_refuses_a_backwards_date_range_with_a_message(client, staff):
    # given
    _message()
    client.force_login(staff("Store admin"))
    # when
    response = client.get(reverse("notifications:email_log"), {"date_from": "2030-02-01", "date_to": "2030-01-01"})
    # then
    assert "The end date must be on or after the start date." in response.content.decode()
    assert list(response.context["table"].page.object_list) == []


def test_log_page_queries_do_not_grow_with_its_rows(client, staff, django_assert_max_num_queries):
    # given
    for _ in range(30):
        _message()
    client.force_login(staff("Store admin"))
    # when / then
    with django_assert_max_num_queries(12):
        response = client.get(reverse("notifications:email_log"))
    assert len(response.context["table"].page.object_list) == 30


def test_message_detail_popup_shows_both_parts(client, staff, htmx_headers):
    # given
    message = _message()
    client.force_login(staff("Ops"))
    # when
    response = client.get(reverse("notifications:message_detail", args=[message.pk]), headers=htmx_headers)
    # then
    html = response.content.decode()
    assert '<h2 id="modal-title">Store credits received</h2>' in html
    assert "<html" not in html  # the partial only
    assert message.subject in html and "Plain-text part" in html and "srcdoc=" in html


# --------------------------------------------------------------------------- resend

def test_resend_writes_a_new_row_with_its_own_key_and_an_audit_event(client, staff, htmx_headers):
    # given
    admin = staff("Store admin")
    message = _message()
    client.force_login(admin)
    url = reverse("notifications:message_resend", args=[message.pk])
    # when
    first = client.post(url, headers=htmx_headers)
    second = client.post(url, headers=htmx_headers)
    # then
    assert first.status_code == second.status_code == 204
    assert set(json.loads(first["HX-Trigger"])) == {"closeModal", "emailsChanged", "showMessage"}
    copies = list(OutboxMessage.objects.filter(resend_of=message).order_by("pk"))
    assert [c.cause_key for c in copies] == [f"{message.cause_key}:resend:1", f"{message.cause_key}:resend:2"]
    assert all((c.status, c.to, c.subject, c.text, c.html) == (S.PENDING, message.to, message.subject, message.text,
                                                                message.html) for c in copies)
    events = AuditEvent.objects.filter(action="notifications.email_resent")
    assert events.count() == 2 and {e.actor for e in events} == {admin}


def test_resending_a_resend_counts_from_the_original(client, staff):
    # given
    message = _message()
    client.force_login(staff("Store admin"))
    client.post(reverse("notifications:message_resend", args=[message.pk]))
    copy = OutboxMessage.objects.get(resend_of=message)
    OutboxMessage.objects.filter(pk=copy.pk).update(status=S.SENT, sent_at=timezone.now())
    # when
    response = client.post(reverse("notifications:message_resend", args=[copy.pk]))
    # then
    assert response.status_code == 302
    assert OutboxMessage.objects.filter(resend_of=message).count() == 2
    assert OutboxMessage.objects.filter(cause_key=f"{message.cause_key}:resend:2").exists()


@pytest.mark.parametrize("status, to, text", [
    (S.PENDING, "x@example.com", "This email is still waiting to be sent"),
    (S.CANCELLED, "", "This email was cancelled (its customer was deleted)"),
])
def test_resend_of_an_unsent_or_cancelled_email_is_refused_and_writes_nothing(
        client, staff, htmx_headers, status, to, text):
    # given
    message = _message(status=status, to=to)
    client.force_login(staff("Store admin"))
    count = OutboxMessage.objects.count()
    # when
    response = client.post(reverse("notifications:message_resend", args=[message.pk]), headers=htmx_headers)
    # then
    assert response.status_code == 204
    assert text in json.loads(response["HX-Trigger"])["showMessage"]["text"]
    assert OutboxMessage.objects.count() == count
    assert not AuditEvent.objects.filter(action="notifications.email_resent").exists()


def test_resend_button_is_shown_only_for_sent_or_failed_rows(client, staff):
    # given
    sent = _message()
    pending = _message(status=S.PENDING, dispatched_at=timezone.now() - dt.timedelta(minutes=1))
    client.force_login(staff("Store admin"))
    # when
    html = client.get(reverse("notifications:email_log")).content.decode()
    # then
    assert reverse("notifications:message_resend", args=[sent.pk]) in html
    assert reverse("notifications:message_resend", args=[pending.pk]) not in html
