"""The four staff roles as groups with their permissions (credits_admin.roles.ROLES).
Later apps' migrations re-run sync_roles; post_migrate keeps them in step as well."""

from django.db import migrations

from credits_admin.roles import sync_roles


def noop(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [
        ("credits_admin", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("crm", "0001_initial"),
        ("ledger", "0002_append_only_triggers"),
    ]
    operations = [migrations.RunPython(sync_roles, noop)]
