import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from credits_admin.roles import PROJECT_APPS, ROLE_NAMES, ROLES
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db


def _perms(group_name):
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}"
            for p in group.permissions.select_related("content_type")}


def _project_perms():
    return {f"{p.content_type.app_label}.{p.codename}"
            for p in Permission.objects.filter(content_type__app_label__in=PROJECT_APPS)
            .select_related("content_type")}


def test_roles_table_and_role_names_agree():
    assert list(ROLES) == ROLE_NAMES


@pytest.mark.parametrize("role", ROLES)
def test_role_group_exists_after_migrate_with_permissions(role):
    # when
    perms = _perms(role)
    # then
    assert perms, f"{role} has no permissions"
    assert perms <= _project_perms(), "roles only grant the project's own permissions"
    assert "ledger.view_ledgerentry" in perms  # every role can open the dashboard


@pytest.mark.parametrize("role", [name for name, spec in ROLES.items() if spec != "__all__"])
def test_role_has_every_listed_permission_that_exists(role):
    # given
    spec = ROLES[role]
    existing = _project_perms()
    # when
    perms = _perms(role)
    # then
    listed = {p for p in spec if not p.startswith("__")}
    assert listed & existing <= perms


def test_store_admin_has_every_project_permission():
    assert _perms("Store admin") == _project_perms()


def test_store_admin_has_no_django_internal_permissions():
    assert not any(p.startswith(("auth.", "admin.", "sessions.")) for p in _perms("Store admin"))


def test_support_agent_cannot_reveal_cards_or_touch_the_blocklist():
    # when
    perms = _perms("Support agent")
    # then
    assert "crm.reveal_card_number" not in perms
    assert not [p for p in perms if "blocklist" in p]
    assert {"crm.view_customer", "crm.change_customer", "ledger.add_ledgerentry"} <= perms


def test_support_admin_has_what_support_agent_has_and_card_reveal():
    # when
    admin, agent = _perms("Support admin"), _perms("Support agent")
    # then
    assert agent <= admin
    assert "crm.reveal_card_number" in admin


def test_ops_is_read_only_plus_export():
    # when
    perms = _perms("Ops")
    codenames = {p.split(".", 1)[1] for p in perms}
    # then
    assert "ledger.export_ledgerentry" in perms
    assert all(c.startswith("view_") for c in codenames - {"export_ledgerentry"})
    assert not [c for c in codenames if c.startswith(("add_", "change_", "delete_"))]
    assert {p for p in _project_perms() if p.split(".", 1)[1].startswith("view_")} <= perms


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_load_the_dashboard(client, role):
    # given
    client.force_login(StaffUserFactory(role=role))
    # when
    response = client.get(reverse("dashboard"))
    # then
    assert response.status_code == 200


def test_user_without_role_gets_403_on_dashboard(client):
    # given
    client.force_login(StaffUserFactory())
    # when
    response = client.get(reverse("dashboard"))
    # then
    assert response.status_code == 403
