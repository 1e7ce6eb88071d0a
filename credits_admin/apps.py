from django.apps import AppConfig


class CreditsAdminConfig(AppConfig):
    name = "credits_admin"
    verbose_name = "Store Credits Admin"

    def ready(self):
        from django.db.models.signals import post_migrate

        from .roles import sync_roles_after_migrate

        # Keeps the role groups in step when later apps add permissions; the data
        # migration creates them in the first place.
        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="credits_admin.sync_roles")
