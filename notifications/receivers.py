"""Receivers of the other apps' announcements. Each runs inside the transaction of the
change it hears about and only writes outbox rows there (never sends: delivery is a task
enqueued after commit). Connected in NotificationsConfig.ready()."""

from __future__ import annotations

from ledger.models import EntryKind

from . import services

_EMAILED_KINDS = frozenset({EntryKind.GRANT, EntryKind.REDEEM})


def on_entries_posted(sender, entries, **kwargs):
    # The expiry sweep announces thousands of entries at a time: filter in memory first.
    wanted = [e for e in entries if e.kind in _EMAILED_KINDS]
    if wanted:
        services.queue_ledger_emails(entries=wanted)


def on_refunded_with_store_credits(sender, order, entry, notify=True, note="", actor=None, **kwargs):
    services.queue_refund_with_store_credits_email(order=order, entry=entry, notify=notify, note=note or "")


def on_refund_request_status_changed(sender, request, old_status, new_status, actor=None, reason="", **kwargs):
    services.queue_cash_refund_status_email(request=request, old_status=old_status, new_status=new_status,
                                            reason=reason or "")


def on_payout_failed(sender, request, payout, attempts, **kwargs):
    services.queue_payout_failure_alert(request=request, payout=payout, attempts=attempts)
