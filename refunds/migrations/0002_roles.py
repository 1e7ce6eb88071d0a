"""Give the role groups the refunds permissions (credits_admin.roles.ROLES lists them)."""

from django.db import migrations

from credits_admin.roles import sync_roles


def noop(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0001_initial"),
        ("credits_admin", "0002_roles"),
    ]

    operations = [migrations.RunPython(sync_roles, noop)]
