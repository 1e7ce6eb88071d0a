"""Helpers shared by the refunds tests."""

import functools

from credits_admin.models import AuditEvent
from refunds.models import Payout, RefundRequest, StoreCreditRefund
from tests.ledger.support import ledger_state


def refunds_state() -> dict:
    """Everything the refunds app, the ledger and the audit log hold: to prove that a
    refused call wrote nothing."""
    return {
        **ledger_state(),
        "requests": list(RefundRequest.objects.order_by("id").values_list(
            "id", "status", "version", "refund_entry_id", "refund_attempts", "rejection_reason")),
        "payouts": list(Payout.objects.order_by("id").values_list("id", "status", "attempts")),
        "credit_refunds": list(StoreCreditRefund.objects.order_by("id").values_list("id", "amount")),
        "audit": AuditEvent.objects.count(),
    }


class SignalLog:
    """Connects to a signal and keeps every call's keyword arguments."""

    def __init__(self, signal):
        self.signal = signal
        self.calls = []

    def __call__(self, sender, **kwargs):
        self.calls.append(kwargs)

    def __enter__(self):
        self.signal.connect(self, weak=False)
        return self

    def __exit__(self, *exc):
        self.signal.disconnect(self)


def run_payout_sends(callbacks) -> int:
    """Run the captured on_commit callbacks that send payouts (and only those: other apps'
    callbacks, like the notifications outbox delivery, refuse to run inside the test's
    transaction). Returns how many ran."""
    ran = 0
    for callback in callbacks:
        task = getattr(getattr(callback, "func", None), "__self__", None)
        if isinstance(callback, functools.partial) and getattr(task, "name", "") == "refunds.tasks.send_payout_task":
            callback()
            ran += 1
    return ran
