"""Ship a template (enabled) for every email type, and the email settings row."""

from django.conf import settings
from django.db import migrations


def create_defaults(apps, schema_editor):
    from notifications.kinds import EMAIL_TYPES

    EmailTemplate = apps.get_model("notifications", "EmailTemplate")
    EmailSettings = apps.get_model("notifications", "EmailSettings")
    for kind, t in EMAIL_TYPES.items():
        EmailTemplate.objects.get_or_create(kind=kind, defaults={
            "enabled": True, "subject": t.default_subject, "body_text": t.default_text, "body_html": t.default_html})
    EmailSettings.objects.get_or_create(pk=1, defaults={
        "expiry_reminder_days": getattr(settings, "EXPIRY_REMINDER_DAYS", 3)})


def remove_defaults(apps, schema_editor):
    apps.get_model("notifications", "EmailTemplate").objects.all().delete()
    apps.get_model("notifications", "EmailSettings").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, remove_defaults)]
