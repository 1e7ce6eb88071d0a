"""What the refunds app announces. Sent inside the transaction of the change; receivers
(notifications) write outbox rows in that same transaction and never call out."""

from django.dispatch import Signal

# request=RefundRequest, old_status=str, new_status=str, actor=User|None, reason=str
refund_request_status_changed = Signal()
# request=RefundRequest, payout=Payout, attempts=int  (after the last retry failed)
payout_failed = Signal()
# order=crm.Order, entry=LedgerEntry (the grant), notify=bool, note=str, actor=User|None
refunded_with_store_credits = Signal()
