"""Cash-refund requests, the payouts that pay them, and refunds of orders with store credits.

Only refunds/services.py writes these tables. Amounts are ints of minor units. Bank
account numbers are stored encrypted (refunds/crypto.py); only the last four digits are
kept in clear, for display."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class RefundRequest(models.Model):
    """A customer's request to be paid out their credits in cash.

    requested -> pending -> refunded; requested/pending -> rejected (by staff, with a reason
    the customer is told) or cancelled (by the customer); refunded -> pending on Undo or
    when the gateway gave up on the payout. A customer has at most one open
    (requested/pending) request at a time: a partial unique constraint holds that even
    when two submissions race."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        PENDING = "pending", "Awaiting/Pending"
        REFUNDED = "refunded", "Refunded"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    class Channel(models.TextChoices):
        STOREFRONT = "storefront", "Storefront (the customer)"
        STAFF = "staff", "Staff on the customer's behalf"

    OPEN_STATUSES = (Status.REQUESTED, Status.PENDING)

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="refund_requests")
    amount = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    requested_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    # "api:<storefront request id>" or "staff:<uuid of the form>": a replay answers as the first time.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    # Payout details. The account number is Fernet-encrypted; never shown or logged in full.
    account_holder = models.CharField(max_length=120)
    bank_name = models.CharField(max_length=120)
    account_number_encrypted = models.TextField()
    account_last4 = models.CharField(max_length=4)

    memo = models.TextField(blank=True, max_length=1000)
    rejection_reason = models.TextField(blank=True, max_length=500)

    # The cash_refund debit while the request is refunded (null otherwise).
    refund_entry = models.ForeignKey("ledger.LedgerEntry", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    # How many times it was refunded (an Undo and a new Refund post a new debit).
    refund_attempts = models.PositiveIntegerField(default=0)
    refunded_at = models.DateTimeField(null=True, blank=True)
    # +1 on every transition: a form that saw an older version is a double click or stale.
    version = models.PositiveIntegerField(default=0)
    status_changed_at = models.DateTimeField()
    status_changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                          on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        permissions = [("approve_refundrequest", "Can process cash refund requests (refund, undo, reject)")]
        indexes = [
            models.Index(fields=["-requested_at", "-id"], name="refunds_req_recent_idx"),
            models.Index(fields=["status", "-requested_at"], name="refunds_req_status_idx"),
            models.Index(fields=["customer", "-requested_at"], name="refunds_req_customer_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refunds_req_amount_gt_0"),
            models.UniqueConstraint(fields=["customer"], condition=Q(status__in=["requested", "pending"]),
                                    name="refunds_one_open_request_per_customer"),
            models.CheckConstraint(
                condition=(Q(status="refunded", refund_entry__isnull=False)
                           | (~Q(status="refunded") & Q(refund_entry__isnull=True))),
                name="refunds_req_entry_iff_refunded",
            ),
        ]

    def __str__(self):
        return f"Cash refund request #{self.pk} ({self.get_status_display()})"

    def __repr__(self):  # never the account number
        return f"<RefundRequest #{self.pk} {self.status} {self.amount} customer={self.customer_id}>"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def account_masked(self) -> str:
        return f"••••{self.account_last4}"

    @property
    def payout_display(self) -> str:
        return f"{self.bank_name} {self.account_masked}"


class Payout(models.Model):
    """Paying one refund out. Manual payouts are paid when staff confirm the Refund; gateway
    payouts are sent after the refund commits and retried once a day when they fail."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Failed, will retry"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed (gave up)"
        CANCELLED = "cancelled", "Cancelled (refund undone)"

    DUE_STATUSES = (Status.QUEUED, Status.RETRYING)
    UNSETTLED_STATUSES = (Status.QUEUED, Status.SENDING, Status.RETRYING)

    request = models.ForeignKey(RefundRequest, on_delete=models.PROTECT, related_name="payouts")
    refund_attempt = models.PositiveIntegerField()  # which refund of the request it pays
    amount = models.BigIntegerField()
    backend = models.CharField(max_length=200)  # dotted path of the backend that handles it
    status = models.CharField(max_length=16, choices=Status.choices)
    attempts = models.PositiveSmallIntegerField(default=0)  # gateway calls made
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, max_length=1000)
    reference = models.CharField(max_length=200, blank=True)  # the gateway's id of the payout
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="refunds_payout_due_idx")]
        constraints = [
            models.UniqueConstraint(fields=["request", "refund_attempt"], name="refunds_payout_one_per_refund"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refunds_payout_amount_gt_0"),
        ]

    def __str__(self):
        return f"Payout {self.pk} of request {self.request_id} ({self.get_status_display()})"

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


class StoreCreditRefund(models.Model):
    """An order refunded with store credits: the grant, the note and whether the customer
    was told. The sum per order limits what can still be refunded this way."""

    order = models.ForeignKey("crm.Order", on_delete=models.PROTECT, related_name="store_credit_refunds")
    entry = models.OneToOneField("ledger.LedgerEntry", on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    note = models.TextField(max_length=500)
    notify = models.BooleanField(default=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refunds_credit_refund_amount_gt_0")]

    def __str__(self):
        return f"Store-credit refund of {self.order_id}: {self.amount}"
