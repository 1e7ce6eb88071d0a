from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from .cards import generate_card_number


class Customer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DORMANT = "dormant", "Dormant"
        DELETION_REQUESTED = "deletion_requested", "Deletion requested"
        DELETED = "deleted", "Deleted (anonymised)"

    member_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254, blank=True, db_index=True)
    phone = models.CharField(max_length=40, blank=True)
    card_number = models.CharField(
        max_length=16,
        unique=True,
        default=generate_card_number,
        editable=False,
        validators=[RegexValidator(r"^\d{16}$", "A card number has 16 digits.")],
    )
    registered_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["member_id"]
        permissions = [("reveal_card_number", "Can see a customer's full card number")]
        indexes = [
            models.Index(fields=["name"], name="crm_customer_name_idx"),
            # email__iexact (the history's customer search) compares UPPER(email)
            models.Index(Upper("email"), name="crm_customer_email_upper_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(card_number__regex=r"^[0-9]{16}$"), name="crm_customer_card_16_digits"),
        ]

    def __str__(self):
        return f"{self.name} ({self.member_id})"

    @property
    def card_last4(self) -> str:
        return self.card_number[-4:]


class Order(models.Model):
    """An order mirrored from the storefront. Amounts are ints of minor units."""

    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"
        CANCELLED = "cancelled", "Cancelled"

    external_id = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    placed_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.PLACED, db_index=True)
    items_total = models.BigIntegerField(default=0)
    paid_amount = models.BigIntegerField(default=0)
    refunded_amount = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="USD")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [models.Index(fields=["customer", "-placed_at"], name="crm_order_customer_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(items_total__gte=0), name="crm_order_items_total_gte_0"),
            models.CheckConstraint(condition=Q(paid_amount__gte=0), name="crm_order_paid_amount_gte_0"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("paid_amount")),
                name="crm_order_refunded_within_paid",
            ),
        ]

    def __str__(self):
        return self.external_id


class CustomerMemo(models.Model):
    """A staff note on a customer."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memos")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Memo on {self.customer_id} at {self.created_at:%Y-%m-%d}"


class OrderNote(models.Model):
    """A note shown on an order's detail page (e.g. the note of a refund with store credits)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    body = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Note on {self.order_id}"


class CustomerEditLog(models.Model):
    """What changed in a customer's profile, by whom (staff user or the storefront).
    Kept one year (a daily job purges older rows)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="edit_logs")
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    source = models.CharField(max_length=32, default="staff")  # staff / storefront / system
    changes = models.JSONField(default=dict)  # {"field": [before, after], ...}

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self):
        return f"Edit of {self.customer_id} at {self.changed_at:%Y-%m-%d}"
