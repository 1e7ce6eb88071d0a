"""Reads of the notifications app."""

from .models import OutboxMessage


def email_log():
    """The Email log: every outbox row, newest first (the page and its filter start here)."""
    return OutboxMessage.objects.select_related("customer").order_by("-created_at", "-id")
