from django.dispatch import Signal

# Sent inside the posting's transaction with `entries=[LedgerEntry, ...]` once they are
# written. Receivers (notifications) write outbox rows in the same transaction; they must
# never call the outside world here.
entries_posted = Signal()
