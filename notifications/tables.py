import django_tables2 as tables
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import format_html

from .models import OutboxMessage


class EmailLogTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d H:i", orderable=False,
                                       attrs={"td": {"class": "date-cell"}})
    kind = tables.Column(verbose_name="Email", orderable=False)
    to = tables.Column(verbose_name="Recipient", orderable=False, attrs={"td": {"class": "recipient-cell"}})
    subject = tables.Column(verbose_name="Subject", orderable=False, attrs={"td": {"class": "subject-cell"}})
    status = tables.Column(verbose_name="Status", orderable=False)
    attempts = tables.Column(verbose_name="Tries", orderable=False, attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    sent_at = tables.DateTimeColumn(verbose_name="Sent", format="Y-m-d H:i", orderable=False, default="—",
                                    attrs={"td": {"class": "date-cell"}})
    last_error = tables.Column(verbose_name="Error", orderable=False, default="",
                               attrs={"td": {"class": "error-cell"}})
    actions = tables.Column(verbose_name="", empty_values=(), orderable=False, attrs={"td": {"class": "actions-cell"}})

    class Meta:
        model = OutboxMessage
        fields = ()
        sequence = ("created_at", "kind", "to", "subject", "status", "attempts", "sent_at", "last_error", "actions")
        attrs = {"class": "table email-log-table", "id": "email-log-table"}
        empty_text = "No emails match this search."

    def __init__(self, *args, request=None, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def render_kind(self, value, record):
        if record.resend_of_id:
            return format_html('{} <span class="badge">resent</span>', record.get_kind_display())
        return record.get_kind_display()

    def render_to(self, value):
        return value or "—"

    def render_subject(self, value, record):
        url = reverse("notifications:message_detail", args=[record.pk])
        short = value if len(value) <= 70 else value[:67] + "…"
        return format_html('<a href="{}" hx-get="{}" hx-target="#modal" hx-swap="innerHTML" aria-haspopup="dialog" '
                           'title="{}">{}</a>', url, url, value, short)

    def render_status(self, value, record):
        return format_html('<span class="badge email-status-{}">{}</span>', record.status, record.get_status_display())

    def render_last_error(self, value):
        text = str(value)
        short = text if len(text) <= 60 else text[:57] + "…"
        return format_html('<span title="{}">{}</span>', text, short)

    def render_actions(self, record):
        user = getattr(self.request, "user", None)
        resendable = record.status in (OutboxMessage.Status.SENT, OutboxMessage.Status.FAILED) and record.to
        if not (user and user.has_perm("notifications.resend_outboxmessage") and resendable):
            return ""
        url = reverse("notifications:message_resend", args=[record.pk])
        return format_html(
            '<form method="post" action="{}" hx-post="{}" hx-confirm="Send this email to {} again?" hx-swap="none">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit" class="small">Resend</button></form>',
            url, url, record.to, get_token(self.request))
