from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from credits_admin.audit import record_change
from credits_admin.roles import ROLE_NAMES


class Command(BaseCommand):
    help = 'Create (or update) a staff user with one role. Non-interactive: --username U --password P --role "Ops".'

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", required=True, choices=ROLE_NAMES)
        parser.add_argument("--email", default="")

    @transaction.atomic
    def handle(self, *args, username, password, role, email, **options):
        username = username.strip()
        if not username:
            raise CommandError("The username cannot be empty.")
        if not password:
            raise CommandError("The password cannot be empty.")
        try:
            group = Group.objects.get(name=role)
        except Group.DoesNotExist:
            raise CommandError(f"Role {role!r} does not exist; run `manage.py migrate` first.") from None
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        before = {"roles": sorted(user.groups.values_list("name", flat=True))} if not created else {}
        user.is_staff = True
        user.is_active = True
        if email:
            user.email = email
        user.set_password(password)
        user.save()
        user.groups.set([group])
        record_change(actor=None, action="staff.created" if created else "staff.updated", target=user,
                      summary=f"{username} as {role} (create_staff)", before=before, after={"roles": [role]})
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} staff user {username!r} with role {role!r}."))
