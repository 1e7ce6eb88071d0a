from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Emails and jobs"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from ledger.signals import entries_posted
        from refunds import signals as refund_signals

        from . import events, receivers, services
        from .models import EmailTemplate

        uid = "notifications"
        entries_posted.connect(receivers.on_entries_posted, dispatch_uid=f"{uid}.entries_posted")
        refund_signals.refunded_with_store_credits.connect(
            receivers.on_refunded_with_store_credits, dispatch_uid=f"{uid}.refunded_with_store_credits")
        refund_signals.refund_request_status_changed.connect(
            receivers.on_refund_request_status_changed, dispatch_uid=f"{uid}.refund_request_status_changed")
        refund_signals.payout_failed.connect(receivers.on_payout_failed, dispatch_uid=f"{uid}.payout_failed")
        for signal in (post_save, post_delete):
            signal.connect(services.forget_templates_on_change, sender=EmailTemplate, dispatch_uid=f"{uid}.forget_templates")
        events.register()
