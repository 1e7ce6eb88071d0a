from django.apps import AppConfig


class RulesConfig(AppConfig):
    name = "rules"
    verbose_name = "Credits program"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from credits_admin.models import StoreSettings

        from . import selectors
        from .models import AllocationRule, ProgramSettings

        for model in (StoreSettings, ProgramSettings, AllocationRule):
            for signal in (post_save, post_delete):
                signal.connect(selectors.forget_engine_config_on_change, sender=model,
                               dispatch_uid=f"rules.forget_engine_config.{model.__name__}.{signal is post_save}")
