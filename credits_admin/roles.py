"""The four staff roles as Django groups. One table, used by the data migration, by the
post_migrate re-sync (so permissions added by later apps reach their roles) and by tests.
Views check permissions, never group names."""

ROLE_NAMES = ["Store admin", "Support admin", "Support agent", "Ops"]

_SUPPORT_COMMON = [
    "crm.view_customer",
    "crm.change_customer",
    "crm.view_order",
    "crm.add_customermemo",
    "crm.view_customermemo",
    "crm.reveal_card_number",
    "refunds.view_refundrequest",
    "refunds.add_refundrequest",
    "refunds.approve_refundrequest",
    "refunds.view_payout",
    "refunds.add_storecreditrefund",
    "refunds.view_storecreditrefund",
    "ledger.add_ledgerentry",
    "ledger.view_ledgerentry",
    "ledger.view_creditaccount",
    "ledger.view_creditlot",
]

ROLES = {
    # Store admin: every permission of the project's apps.
    "Store admin": "__all__",
    # Support admin: customers, refunds, adjustments, blocklist.
    "Support admin": [*_SUPPORT_COMMON, "crm.add_blocklistentry", "crm.change_blocklistentry",
                      "crm.delete_blocklistentry", "crm.view_blocklistentry"],
    # Support agent: customers, refunds, adjustments; cannot blocklist or change rules.
    "Support agent": [p for p in _SUPPORT_COMMON if p != "crm.reveal_card_number"],
    # Ops: read-only everywhere, plus exports.
    "Ops": ["__view__", "ledger.export_ledgerentry"],
}

PROJECT_APPS = ["credits_admin", "crm", "ledger", "rules", "refunds", "notifications"]


def resolve_permissions(Permission, spec):
    """Turn a ROLES value into a Permission queryset/list. Unknown codenames (an app not
    built yet) are skipped; the post_migrate re-sync picks them up once they exist."""
    project = Permission.objects.filter(content_type__app_label__in=PROJECT_APPS)
    if spec == "__all__":
        return list(project)
    perms = []
    for item in spec:
        if item == "__view__":
            perms.extend(project.filter(codename__startswith="view_"))
            continue
        app_label, codename = item.split(".", 1)
        perms.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    return perms


def sync_roles(apps, schema_editor=None):
    """RunPython target; idempotent. Creates missing permissions first (they are normally
    created after migrate) so a fresh database gets complete roles."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_contenttypes(app_config, verbosity=0, apps=apps)
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, spec in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(resolve_permissions(Permission, spec))


def sync_roles_after_migrate(sender, app_config=None, using="default", apps=None, **kwargs):
    # post_migrate is sent once per app, after that app's permissions exist; re-sync after
    # each project app so the last one leaves every role complete.
    if app_config is None or app_config.label not in PROJECT_APPS:
        return
    from django.apps import apps as global_apps

    Group = global_apps.get_model("auth", "Group")
    Permission = global_apps.get_model("auth", "Permission")
    for name, spec in ROLES.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set(resolve_permissions(Permission, spec))
