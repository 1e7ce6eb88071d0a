import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser

from credits_admin.audit import record_change
from credits_admin.models import AuditEvent
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def test_record_change_writes_who_what_before_and_after():
    # given
    actor = StaffUserFactory(role="Support agent")
    customer = CustomerFactory()
    # when
    event = record_change(actor=actor, action="crm.customer_changed", target=customer,
                          summary="renamed", before={"name": "Old"}, after={"name": "New"})
    # then
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor == actor
    assert event.action == "crm.customer_changed"
    assert (event.target_type, event.target_id) == ("crm.customer", str(customer.pk))
    assert event.summary == "renamed"
    assert event.before == {"name": "Old"}
    assert event.after == {"name": "New"}
    assert event.created_at is not None


def test_record_change_without_target_or_values_stores_empty_fields():
    # when
    event = record_change(actor=None, action="system.did_something")
    # then
    assert (event.actor, event.target_type, event.target_id) == (None, "", "")
    assert (event.before, event.after) == ({}, {})


def test_record_change_stores_dates_and_decimals_as_json():
    # when
    event = record_change(actor=None, action="x.y", after={"when": dt.date(2026, 1, 2), "rate": Decimal("1.5")})
    # then
    assert AuditEvent.objects.get(pk=event.pk).after == {"when": "2026-01-02", "rate": "1.5"}


def test_record_change_with_anonymous_actor_stores_no_actor():
    # when
    event = record_change(actor=AnonymousUser(), action="x.y")
    # then
    assert event.actor is None


def test_audit_event_cannot_be_updated():
    # given
    event = record_change(actor=None, action="x.y", after={"a": 1})
    # when / then
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    event.action = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "x.y"


def test_audit_event_cannot_be_deleted():
    # given
    event = record_change(actor=None, action="x.y")
    # when / then
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()
