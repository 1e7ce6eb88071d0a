import hashlib
import json
import re

import pytest
from django.urls import reverse

from credits_admin import apikeys
from credits_admin.models import ApiKey, AuditEvent
from credits_admin.roles import ROLE_NAMES
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
KEY_RE = re.compile(r"sca_[0-9a-f]{8}_[A-Za-z0-9_\-]{20,}")
MAY_MANAGE = {"Store admin": True, "Support admin": False, "Support agent": False, "Ops": False}


@pytest.fixture
def admin(db):
    return StaffUserFactory(role="Store admin", username="owner")


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def _create(client, name="Storefront production", htmx=True):
    return client.post(reverse("apikey_create"), {"name": name}, headers=HTMX if htmx else {})


def test_apikey_list_shows_name_prefix_creator_and_status_never_the_secret(admin_client, admin):
    # given
    active, raw = apikeys.create_api_key(name="Production", actor=admin)
    old, _ = apikeys.create_api_key(name="Old staging", actor=admin)
    apikeys.revoke_api_key(key=old, actor=admin)
    # when
    response = admin_client.get(reverse("apikey_list"))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Production" in html and "Old staging" in html
    assert f"sca_{active.prefix}_…" in html and "owner" in html
    assert "Active" in html and "Revoked" in html and "Never" in html
    assert raw not in html and raw.split("_", 2)[2] not in html and active.hashed_secret not in html
    assert html.count(">Revoke</a>") == 1   # only the active key can be revoked
    assert [k.name for k in response.context["keys"]] == ["Production", "Old staging"]  # active first


def test_apikey_list_without_keys_says_so(admin_client):
    # when
    response = admin_client.get(reverse("apikey_list"))
    # then
    assert 'data-testid="no-keys"' in response.content.decode()


def test_apikey_list_refetches_itself_when_keys_change(admin_client):
    # when
    response = admin_client.get(reverse("apikey_list"))
    # then
    assert ('<section id="apikeys" class="card table-card" hx-get="/settings/api-keys/" '
            'hx-trigger="apiKeysChanged from:body"') in response.content.decode()


def test_apikey_list_htmx_refetch_renders_only_the_table(admin_client, admin):
    # given
    apikeys.create_api_key(name="Production", actor=admin)
    # when
    response = admin_client.get(reverse("apikey_list"), headers={**HTMX, "HX-Target": "apikeys"})
    # then
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="apikeys"') and "<html" not in html


def test_apikey_create_popup_shows_the_form(admin_client):
    # when
    response = admin_client.get(reverse("apikey_create"), headers=HTMX)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="modal-title">New API key<' in html and 'name="name"' in html and "<html" not in html


def test_apikey_create_shows_the_whole_key_once_and_stores_only_its_hash(admin_client, admin):
    # when
    response = _create(admin_client)
    # then: 200 with the key and a copy button; the list behind the pop-up refreshes
    html = response.content.decode()
    assert response.status_code == 200
    raw = KEY_RE.search(html).group(0)
    assert f'value="{raw}"' in html and 'data-copy="#new-api-key"' in html
    assert "shown only this once" in html
    assert "apiKeysChanged" in json.loads(response["HX-Trigger"])
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get()
    _, prefix, secret = raw.split("_", 2)
    assert key.prefix == prefix and key.name == "Storefront production" and key.created_by == admin
    assert key.hashed_secret == hashlib.sha256(secret.encode()).hexdigest()
    stored = " ".join(str(v) for v in ApiKey.objects.values_list().get())
    assert secret not in stored
    assert apikeys.authenticate(raw) == key


def test_apikey_create_is_audit_logged_without_the_secret(admin_client, admin):
    # when
    response = _create(admin_client)
    # then
    raw = KEY_RE.search(response.content.decode()).group(0)
    event = AuditEvent.objects.get(action="api_key.created")
    assert event.actor == admin and event.target_id == str(ApiKey.objects.get().pk)
    assert raw.split("_", 2)[2] not in json.dumps([event.summary, event.before, event.after])


def test_apikey_after_creation_the_list_shows_only_the_prefix(admin_client):
    # given
    raw = KEY_RE.search(_create(admin_client).content.decode()).group(0)
    # when
    response = admin_client.get(reverse("apikey_list"))
    # then
    html = response.content.decode()
    assert raw not in html
    assert f"sca_{raw.split('_')[1]}_…" in html


def test_apikey_create_without_htmx_shows_the_key_on_a_full_page(admin_client):
    # when
    response = _create(admin_client, htmx=False)
    # then
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert KEY_RE.search(html)


@pytest.mark.parametrize(("name", "message"), [
    ("", "This field is required."),
    ("   ", "This field is required."),
    ("x" * 101, "Ensure this value has at most 100 characters (it has 101)."),
    ("bad\x07name", "Use letters, digits, spaces and punctuation only."),
])
def test_apikey_create_with_a_bad_name_shows_the_error_and_writes_nothing(admin_client, name, message):
    # when
    response = _create(admin_client, name=name)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    assert not KEY_RE.search(html)
    assert ApiKey.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_apikey_create_with_the_name_of_an_active_key_is_refused(admin_client, admin):
    # given
    apikeys.create_api_key(name="Production", actor=admin)
    # when
    response = _create(admin_client, name="  production ")
    # then
    assert "An active key already has this name; choose another." in response.content.decode()
    assert ApiKey.objects.count() == 1


def test_apikey_create_may_reuse_the_name_of_a_revoked_key(admin_client, admin):
    # given
    old, _ = apikeys.create_api_key(name="Production", actor=admin)
    apikeys.revoke_api_key(key=old, actor=admin)
    # when
    response = _create(admin_client, name="Production")
    # then
    assert KEY_RE.search(response.content.decode())
    assert ApiKey.objects.filter(name="Production").count() == 2


def test_apikey_revoke_popup_asks_for_confirmation(admin_client, admin):
    # given
    key, _ = apikeys.create_api_key(name="Production", actor=admin)
    # when
    response = admin_client.get(reverse("apikey_revoke", args=[key.pk]), headers=HTMX)
    # then
    html = response.content.decode()
    assert "Revoke “Production”?" in html and f"sca_{key.prefix}_…" in html and "Revoke key" in html
    key.refresh_from_db()
    assert key.is_active


def test_apikey_revoke_closes_the_popup_refuses_the_key_and_is_audit_logged(admin_client, admin, client):
    # given
    key, raw = apikeys.create_api_key(name="Production", actor=admin)
    # when
    response = admin_client.post(reverse("apikey_revoke", args=[key.pk]), headers=HTMX)
    # then
    assert response.status_code == 204
    events = json.loads(response["HX-Trigger"])
    assert {"closeModal", "apiKeysChanged", "showMessage"} <= set(events)
    assert events["showMessage"]["text"] == "API key “Production” revoked."
    key.refresh_from_db()
    assert key.revoked_at is not None
    event = AuditEvent.objects.get(action="api_key.revoked")
    assert event.actor == admin and event.before == {"active": True} and event.after == {"active": False}
    assert apikeys.authenticate(raw) is None


def test_apikey_revoked_key_gets_401_from_the_api(admin_client, admin, funded_customer):
    # given
    key, raw = apikeys.create_api_key(name="Production", actor=admin)
    url = f"/api/v1/customers/{funded_customer.member_id}/balance"
    assert admin_client.get(url, headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    # when
    admin_client.post(reverse("apikey_revoke", args=[key.pk]), headers=HTMX)
    response = admin_client.get(url, headers={"Authorization": f"Bearer {raw}"})
    # then
    assert response.status_code == 401


def test_apikey_revoke_twice_changes_nothing_the_second_time(admin_client, admin):
    # given
    key, _ = apikeys.create_api_key(name="Production", actor=admin)
    admin_client.post(reverse("apikey_revoke", args=[key.pk]), headers=HTMX)
    first_revoked_at = ApiKey.objects.get().revoked_at
    # when
    response = admin_client.post(reverse("apikey_revoke", args=[key.pk]), headers=HTMX)
    # then
    assert response.status_code == 204
    assert json.loads(response["HX-Trigger"])["showMessage"]["text"] == "API key “Production” was already revoked."
    assert ApiKey.objects.get().revoked_at == first_revoked_at
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1


def test_apikey_revoke_without_htmx_redirects_to_the_list(admin_client, admin):
    # given
    key, _ = apikeys.create_api_key(name="Production", actor=admin)
    # when
    response = admin_client.post(reverse("apikey_revoke", args=[key.pk]))
    # then
    assert response.status_code == 302 and response["Location"] == reverse("apikey_list")


def test_apikey_revoke_of_unknown_key_is_404(admin_client):
    # when
    response = admin_client.post(reverse("apikey_revoke", args=[424242]), headers=HTMX)
    # then
    assert response.status_code == 404


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_apikey_pages_only_for_roles_that_manage_keys(client, admin, role):
    # given
    key, _ = apikeys.create_api_key(name="Production", actor=admin)
    client.force_login(StaffUserFactory(role=role))
    expected = 200 if MAY_MANAGE[role] else 403
    # when
    pages = [client.get(reverse("apikey_list")), client.get(reverse("apikey_create")),
             client.get(reverse("apikey_revoke", args=[key.pk]))]
    # then
    assert [p.status_code for p in pages] == [expected] * 3


@pytest.mark.parametrize("role", [r for r in ROLE_NAMES if not MAY_MANAGE[r]])
def test_apikey_writes_by_other_roles_are_forbidden_and_change_nothing(client, admin, role):
    # given
    key, _ = apikeys.create_api_key(name="Production", actor=admin)
    client.force_login(StaffUserFactory(role=role))
    # when
    created = client.post(reverse("apikey_create"), {"name": "Sneaky"}, headers=HTMX)
    revoked = client.post(reverse("apikey_revoke", args=[key.pk]), headers=HTMX)
    # then
    assert created.status_code == 403 and revoked.status_code == 403
    assert list(ApiKey.objects.values_list("name", "revoked_at")) == [("Production", None)]
    assert AuditEvent.objects.filter(actor__isnull=False).exclude(actor=admin).count() == 0


@pytest.mark.parametrize("name", ["apikey_list", "apikey_create"])
def test_apikey_pages_when_anonymous_redirect_to_login(client, name):
    # when
    response = client.get(reverse(name))
    # then
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_apikey_store_admin_role_has_the_manage_permission(admin):
    assert admin.has_perm("credits_admin.manage_apikey")
