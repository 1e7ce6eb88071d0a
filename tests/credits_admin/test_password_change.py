import json

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.messages import get_messages
from django.urls import reverse

from credits_admin.models import AuditEvent
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db

OLD = "pass-word-123"  # StaffUserFactory's
NEW = "Brand-new-passphrase-42"
URL = reverse("password_change")


@pytest.fixture
def user(client):
    user = StaffUserFactory(role="Support agent")
    client.force_login(user)
    return user


def _data(old=OLD, new1=NEW, new2=NEW):
    return {"old_password": old, "new_password1": new1, "new_password2": new2}


def test_password_change_when_anonymous_redirects_to_login(client):
    # when
    response = client.get(URL)
    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_password_change_get_renders_full_page(client, user):
    # when
    response = client.get(URL)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and '<h2 id="modal-title">Change password</h2>' in html
    assert 'name="old_password"' in html and "autofocus" in html
    assert "hx-post" not in html  # the full page posts normally
    assert f'href="{reverse("dashboard")}"' in html  # Cancel goes back


def test_password_change_htmx_get_renders_only_the_modal_body(client, user, htmx_headers):
    # when
    response = client.get(URL, headers=htmx_headers)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and "topbar" not in html
    assert html.strip().startswith("<form")
    assert f'hx-post="{URL}" hx-target="this" hx-swap="outerHTML"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'id="modal-title"' in html
    assert "data-close-modal" in html


def test_password_change_with_wrong_old_password_rerenders_with_error(client, user, htmx_headers):
    # when
    response = client.post(URL, _data(old="not-my-password"), headers=htmx_headers)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in html
    assert 'aria-invalid="true"' in html
    assert "<html" not in html
    user.refresh_from_db()
    assert user.check_password(OLD)
    assert not AuditEvent.objects.exists()


def test_password_change_with_mismatched_new_passwords_shows_field_error(client, user):
    # when
    response = client.post(URL, _data(new2="something-else-99"))
    # then
    assert response.status_code == 200
    assert "The two password fields didn’t match." in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(OLD)


def test_password_change_with_weak_new_password_shows_validator_errors(client, user):
    # when
    response = client.post(URL, _data(new1="12345678", new2="12345678"))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "This password is too common." in html
    assert "This password is entirely numeric." in html
    user.refresh_from_db()
    assert user.check_password(OLD)


def test_password_change_htmx_success_answers_204_and_closes_the_modal(client, user, htmx_headers):
    # when
    response = client.post(URL, _data(), headers=htmx_headers)
    # then
    assert response.status_code == 204
    events = json.loads(response["HX-Trigger"])
    assert "closeModal" in events
    assert events["showMessage"] == {"text": "Your password was changed.", "level": "success"}
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert client.session[SESSION_KEY] == str(user.pk)  # still signed in
    assert client.get(reverse("dashboard")).status_code == 200


def test_password_change_full_page_success_redirects_with_message(client, user):
    # when
    response = client.post(URL, _data())
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Your password was changed."]
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert client.get(reverse("dashboard")).status_code == 200


def test_password_change_writes_an_audit_event_without_the_password(client, user, htmx_headers):
    # when
    client.post(URL, _data(), headers=htmx_headers)
    # then
    event = AuditEvent.objects.get()
    assert event.action == "staff.password_changed"
    assert event.actor == user
    assert (event.target_type, event.target_id) == ("auth.user", str(user.pk))
    user.refresh_from_db()
    stored = json.dumps([event.summary, event.before, event.after])
    assert NEW not in stored and OLD not in stored and user.password not in stored


def test_password_change_rejects_other_methods(client, user):
    # when
    response = client.put(URL)
    # then
    assert response.status_code == 405


def test_password_change_for_user_without_role_is_allowed(client, htmx_headers):
    # given: a user with no role can still change their own password
    user = StaffUserFactory()
    client.force_login(user)
    # when
    response = client.post(URL, _data(), headers=htmx_headers)
    # then
    assert response.status_code == 204
