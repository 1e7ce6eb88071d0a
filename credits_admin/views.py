from datetime import timedelta

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import Count, Q, Sum
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from crm.models import Customer
from ledger import clock
from ledger.models import CreditAccount, CreditLot, LedgerEntry


@require_GET
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
    expiring = CreditLot.objects.filter(remaining__gt=0, expires_at__gt=now,
                                        expires_at__lte=now + timedelta(days=30)).aggregate(s=Sum("remaining"))
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
        "latest": latest,
    }
    return render(request, "credits_admin/dashboard.html", context)


@login_not_required
@require_GET
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
