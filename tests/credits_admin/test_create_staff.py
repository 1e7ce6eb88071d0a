import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from credits_admin.models import AuditEvent
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_create_staff_creates_a_user_with_the_role(capsys):
    # when
    call_command("create_staff", username="ada", password="s3cret-pass", role="Ops", email="ada@store.example")
    # then
    user = User.objects.get(username="ada")
    assert user.is_staff and user.is_active and not user.is_superuser
    assert user.email == "ada@store.example"
    assert user.check_password("s3cret-pass")
    assert list(user.groups.values_list("name", flat=True)) == ["Ops"]
    assert "Created staff user 'ada'" in capsys.readouterr().out


def test_create_staff_updates_an_existing_user_role_and_password():
    # given
    user = StaffUserFactory(username="bob", role="Ops")
    # when
    call_command("create_staff", username="bob", password="new-pass-456", role="Support admin")
    # then
    user.refresh_from_db()
    assert user.check_password("new-pass-456")
    assert list(user.groups.values_list("name", flat=True)) == ["Support admin"]
    assert User.objects.filter(username="bob").count() == 1
    event = AuditEvent.objects.get(action="staff.updated")
    assert event.before == {"roles": ["Ops"]}
    assert event.after == {"roles": ["Support admin"]}


def test_create_staff_writes_an_audit_event_without_the_password():
    # when
    call_command("create_staff", username="cy", password="s3cret-pass", role="Support agent")
    # then
    event = AuditEvent.objects.get(action="staff.created")
    user = User.objects.get(username="cy")
    assert (event.target_type, event.target_id) == ("auth.user", str(user.pk))
    assert event.after == {"roles": ["Support agent"]}
    assert "s3cret-pass" not in f"{event.summary}{event.before}{event.after}"


def test_create_staff_rejects_an_unknown_role():
    # when / then
    with pytest.raises((CommandError, SystemExit)) as excinfo:
        call_command("create_staff", username="dee", password="s3cret-pass", role="Superhero")
    assert "invalid choice" in str(excinfo.value)
    assert not User.objects.filter(username="dee").exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("username", "password", "message"), [
    ("", "s3cret-pass", "username cannot be empty"),
    ("   ", "s3cret-pass", "username cannot be empty"),
    ("eve", "", "password cannot be empty"),
])
def test_create_staff_rejects_empty_username_or_password(username, password, message):
    # given
    users_before = User.objects.count()
    # when / then
    with pytest.raises(CommandError, match=message):
        call_command("create_staff", username=username, password=password, role="Ops")
    assert User.objects.count() == users_before
    assert not AuditEvent.objects.exists()
