"""Program settings and expiry policy pages: permissions per role, validation, audit."""

import pytest
from django.urls import reverse

from credits_admin.models import AuditEvent, StoreSettings
from credits_admin.money import store_currency
from credits_admin.roles import ROLE_NAMES
from ledger import services as ledger_services
from rules.models import ProgramSettings
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

CAN_VIEW = {"Store admin": True, "Ops": True, "Support admin": False, "Support agent": False}
CAN_CHANGE = {"Store admin": True, "Ops": False, "Support admin": False, "Support agent": False}
VALID = {"credits_enabled": "on", "store_name": "Demo Store", "currency": "USD",
         "refund_note": "Refunded with store credits."}


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff("Store admin"))
    return client


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize("url_name", ["rules:program_settings", "rules:expiry_policy"])
def test_settings_pages_open_for_roles_that_may_view(client, staff, role, url_name):
    # given
    client.force_login(staff(role))
    # when
    response = client.get(reverse(url_name))
    # then
    assert response.status_code == (200 if CAN_VIEW[role] else 403)
    if CAN_VIEW[role]:
        assert (b">Save " in response.content) is CAN_CHANGE[role]
        assert (b"only a store admin can change" in response.content) is not CAN_CHANGE[role]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_program_settings_change_only_by_roles_with_the_permission(client, staff, role):
    # given
    client.force_login(staff(role))
    # when
    response = client.post(reverse("rules:program_settings"), {**VALID, "credits_enabled": ""})
    # then
    assert response.status_code == (302 if CAN_CHANGE[role] else 403)
    assert (StoreSettings.objects.filter(pk=1, credits_enabled=False).exists()) is CAN_CHANGE[role]
    assert AuditEvent.objects.filter(action="rules.program_settings_changed").exists() is CAN_CHANGE[role]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_expiry_policy_change_only_by_roles_with_the_permission(client, staff, role):
    # given
    client.force_login(staff(role))
    # when
    response = client.post(reverse("rules:expiry_policy"), {
        "same_expiry_for_all": "on", "expiry_mode": "days", "expiry_days": "30",
        "staff_expiry_mode": "never", "refund_expiry_mode": "never"})
    # then
    assert response.status_code == (302 if CAN_CHANGE[role] else 403)
    assert ProgramSettings.objects.filter(expiry_days=30).exists() is CAN_CHANGE[role]


def test_anonymous_user_is_sent_to_login(client):
    # when
    response = client.get(reverse("rules:program_settings"))
    # then
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_switching_the_program_off_and_on_is_audited_with_before_and_after(admin_client, staff):
    # when
    admin_client.post(reverse("rules:program_settings"), {**VALID, "credits_enabled": ""})
    admin_client.post(reverse("rules:program_settings"), VALID)
    # then
    off, on = AuditEvent.objects.filter(action="rules.program_settings_changed").order_by("id")
    assert (off.before, off.after) == ({"credits_enabled": True}, {"credits_enabled": False})
    assert off.summary == "Credits program switched off"
    assert (on.before, on.after) == ({"credits_enabled": False}, {"credits_enabled": True})
    assert on.actor.groups.get().name == "Store admin"
    assert StoreSettings.objects.get().credits_enabled is True


def test_saving_unchanged_settings_writes_no_audit_event(admin_client):
    # when
    response = admin_client.post(reverse("rules:program_settings"), VALID, follow=True)
    # then
    assert b"Nothing changed." in response.content
    assert not AuditEvent.objects.filter(action="rules.program_settings_changed").exists()


def test_store_name_currency_and_refund_note_are_saved_and_the_currency_cache_forgotten(admin_client):
    # given
    assert store_currency() == "USD"
    # when
    response = admin_client.post(reverse("rules:program_settings"), {
        **VALID, "store_name": "Seoul Shop", "currency": "KRW", "refund_note": "Refunded as credits, thank you."})
    # then
    assert response.status_code == 302
    store = StoreSettings.objects.get()
    assert (store.store_name, store.currency, store.refund_note) == ("Seoul Shop", "KRW",
                                                                      "Refunded as credits, thank you.")
    assert store_currency() == "KRW"
    event = AuditEvent.objects.get(action="rules.program_settings_changed")
    assert event.before == {"store_name": "Demo Store", "currency": "USD", "refund_note": "Refunded with store credits."}
    assert event.after["currency"] == "KRW"


def test_currency_change_is_refused_once_credits_were_posted_and_nothing_is_written(admin_client):
    # given
    ledger_services.grant(customer=CustomerFactory(), amount=100, reason="test setup")
    # when
    response = admin_client.post(reverse("rules:program_settings"), {**VALID, "currency": "EUR",
                                                                      "store_name": "Renamed"})
    # then
    assert response.status_code == 200
    assert "The currency cannot change once credits have been posted" in response.content.decode()
    assert not StoreSettings.objects.filter(currency="EUR").exists()
    assert not StoreSettings.objects.filter(store_name="Renamed").exists()
    assert not AuditEvent.objects.filter(action="rules.program_settings_changed").exists()


def test_currency_change_is_refused_while_rules_exist(admin_client, make_rule):
    # given
    make_rule("registration", amount=100)
    # when
    response = admin_client.post(reverse("rules:program_settings"), {**VALID, "currency": "JPY"})
    # then
    assert "Delete the allocation rules first" in response.content.decode()
    assert not StoreSettings.objects.filter(currency="JPY").exists()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("store_name", "   ", "This field is required."),
    ("refund_note", "", "This field is required."),
    ("currency", "XXX", "Select a valid choice."),
])
def test_invalid_program_settings_show_the_message_and_write_nothing(admin_client, field, value, message):
    # when
    response = admin_client.post(reverse("rules:program_settings"), {**VALID, field: value})
    # then
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"expiry_mode": "days", "expiry_days": ""}, "expiry_days", "Enter for how many days the credits are valid."),
    ({"expiry_mode": "days", "expiry_days": "0"}, "expiry_days", "Enter at least 1 day."),
    ({"expiry_mode": "days", "expiry_days": "99999"}, "expiry_days", "Enter at most 3650 days"),
    ({"expiry_mode": "date", "expiry_date": ""}, "expiry_date", "Pick the last day the credits are valid."),
    ({"expiry_mode": "date", "expiry_date": "2001-01-01"}, "expiry_date", "Pick a date after today."),
    ({"staff_expiry_mode": "days", "staff_expiry_days": ""}, "staff_expiry_days",
     "Enter for how many days the credits are valid."),
    ({"refund_expiry_mode": "date", "refund_expiry_date": "not a date"}, "refund_expiry_date", "Enter a valid date."),
])
def test_invalid_expiry_policy_shows_the_message_next_to_the_field_and_writes_nothing(admin_client, data, field,
                                                                                       message):
    # given
    base = {"same_expiry_for_all": "on", "expiry_mode": "never", "staff_expiry_mode": "never",
            "refund_expiry_mode": "never"}
    # when
    response = admin_client.post(reverse("rules:expiry_policy"), {**base, **data})
    # then
    assert response.status_code == 200
    assert message in str(response.context["form"].errors[field])
    assert message in response.content.decode()
    assert not ProgramSettings.objects.exists()
    assert not AuditEvent.objects.exists()


def test_expiry_policy_change_is_audited_and_unused_values_are_cleared(admin_client):
    # when
    admin_client.post(reverse("rules:expiry_policy"), {
        "same_expiry_for_all": "on", "expiry_mode": "never", "expiry_days": "44",
        "staff_expiry_mode": "days", "staff_expiry_days": "90", "refund_expiry_mode": "never"})
    # then
    program = ProgramSettings.objects.get()
    assert (program.expiry_mode, program.expiry_days, program.staff_expiry_days) == ("never", None, 90)
    event = AuditEvent.objects.get(action="rules.expiry_policy_changed")
    assert event.before == {"staff_expiry_mode": "never", "staff_expiry_days": None}
    assert event.after == {"staff_expiry_mode": "days", "staff_expiry_days": 90}


def test_per_rule_expiry_keeps_the_shared_values_untouched(admin_client):
    # given
    admin_client.post(reverse("rules:expiry_policy"), {
        "same_expiry_for_all": "on", "expiry_mode": "days", "expiry_days": "30",
        "staff_expiry_mode": "never", "refund_expiry_mode": "never"})
    # when: switching to per-rule expiry, with the shared group left invalid
    response = admin_client.post(reverse("rules:expiry_policy"), {
        "expiry_mode": "days", "expiry_days": "", "staff_expiry_mode": "never", "refund_expiry_mode": "never"})
    # then
    assert response.status_code == 302
    program = ProgramSettings.objects.get()
    assert (program.same_expiry_for_all, program.expiry_mode, program.expiry_days) == (False, "days", 30)
