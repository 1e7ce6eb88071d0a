from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_not_required, permission_required
from django.contrib.auth.forms import PasswordChangeForm
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from crm.models import Customer
from ledger import clock
from ledger.models import CreditAccount, CreditLot, LedgerEntry

from .audit import record_change
from .htmx import close_modal_response, htmx_template, message_event


@require_GET
@permission_required("ledger.view_ledgerentry", raise_exception=True)
def dashboard(request):
    now = clock.now()
    since = now - timedelta(days=30)
    accounts = CreditAccount.objects.aggregate(outstanding=Sum("balance"),
                                               holders=Count("pk", filter=Q(balance__gt=0)))
    recent = LedgerEntry.objects.filter(created_at__gte=since).aggregate(
        rewarded=Sum("amount", filter=Q(amount__gt=0)),
        deducted=Sum("amount", filter=Q(amount__lt=0)),
        entries=Count("id"),
    )
    expiring_until = now + timedelta(days=30)
    expiring = CreditLot.objects.filter(remaining__gt=0, expires_at__gt=now,
                                        expires_at__lte=expiring_until).aggregate(
        s=Sum("remaining"), holders=Count("account", distinct=True))
    latest = (LedgerEntry.objects.select_related("account__customer", "actor")
              .order_by("-created_at", "-id")[:10])
    context = {
        "customers": Customer.objects.count(),
        "outstanding": accounts["outstanding"] or 0,
        "holders": accounts["holders"] or 0,
        "rewarded_30d": recent["rewarded"] or 0,
        "deducted_30d": -(recent["deducted"] or 0),
        "entries_30d": recent["entries"] or 0,
        "expiring_30d": expiring["s"] or 0,
        "expiring_holders": expiring["holders"] or 0,
        "expiring_until": expiring_until,
        "latest": latest,
    }
    return render(request, "credits_admin/dashboard.html", context)


@login_not_required
@require_GET
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@require_http_methods(["GET", "POST"])
def password_change(request):
    """The signed-in staff user changes their own password (a pop-up from the top bar)."""
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save()
            # Never the password (nor its hash) in the audit trail: only that it changed.
            record_change(actor=user, action="staff.password_changed", target=user,
                          summary=f"{user.get_username()} changed their password")
        update_session_auth_hash(request, user)  # stay signed in on this session
        text = _("Your password was changed.")
        if request.htmx:
            return close_modal_response(showMessage=message_event(text))
        messages.success(request, text)
        return redirect("dashboard")
    return render(request, htmx_template(request, "credits_admin/password_change.html"), {"form": form})
