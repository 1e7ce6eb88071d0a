"""The "Export as CSV" pop-up, export progress, the Exports page and downloads.

Every URL here needs `ledger.export_ledgerentry` (Ops and Store admin). A small export
(at most exports.DIRECT_LIMIT rows) is the CSV file itself; a larger one is a background
job with a progress bar. From the pop-up (an htmx request) the small download is handed
to the browser with `HX-Redirect` to a short-lived signed link: a navigation to an
attachment downloads it and leaves the page as it is. The link is signed for the user
who asked, so the export itself never runs from a bare, forgeable GET.
"""

from __future__ import annotations

import datetime as dt

import django_tables2 as tables
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from credits_admin.htmx import close_modal_response, htmx_template, message_event
from credits_admin.paging import BadCursor, keyset_page

from . import exports
from .models import Export

TOKEN_SALT = "ledger.export_csv.download"
TOKEN_MAX_AGE = 300  # seconds
SCOPE_CHOICES = [("search", "The current search"), ("period", "A period")]


class ExportForm(forms.Form):
    scope = forms.ChoiceField(choices=SCOPE_CHOICES, widget=forms.RadioSelect, label="What to export",
                              error_messages={"invalid_choice": "Choose the current search or a period."})
    search = forms.CharField(required=False, widget=forms.HiddenInput, max_length=exports.MAX_SEARCH_LENGTH,
                             error_messages={"max_length": "This search is too long to export."})
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    columns = forms.MultipleChoiceField(
        choices=exports.COLUMN_CHOICES, widget=forms.CheckboxSelectMultiple, label="Columns",
        error_messages={"required": "Choose at least one column.",
                        "invalid_choice": "Unknown column: %(value)s."})
    excel = forms.BooleanField(required=False, label="Excel-compatible (UTF-8 with BOM)",
                               help_text="Lets Excel show non-English names correctly.")

    def clean_columns(self):
        return [str(c)[:50] for c in self.cleaned_data["columns"]]

    def clean(self):
        data = super().clean()
        scope = data.get("scope")
        if scope == "period":
            date_from, date_to = data.get("date_from"), data.get("date_to")
            if not date_from and "date_from" not in self.errors:
                self.add_error("date_from", "Pick the first day of the period.")
            if not date_to and "date_to" not in self.errors:
                self.add_error("date_to", "Pick the last day of the period.")
            for name in ("date_from", "date_to"):
                d = data.get(name)
                if d and not (dt.date(2000, 1, 1) <= d <= dt.date(2100, 1, 1)):
                    self.add_error(name, "Pick a date between 2000 and 2100.")
            if date_from and date_to and date_from > date_to:
                self.add_error("date_to", "The last day must be on or after the first day.")
        elif scope == "search" and "search" not in self.errors:
            try:
                exports.entries_for(data.get("search") or "")
            except exports.ExportError as exc:
                self.add_error("scope", f"{exc} Choose a period instead.")
        return data

    def export_params(self) -> dict:
        data = self.cleaned_data
        if data["scope"] == "period":
            search = exports.period_search(data["date_from"], data["date_to"])
        else:
            search = exports.normalize_search(data.get("search") or "")
        return {"scope": data["scope"], "search": search, "columns": data["columns"], "bom": bool(data["excel"])}


def _search_facts(search: str) -> dict:
    """What the pop-up says about the current search: its description, or why it is not
    valid, and a capped row count."""
    filterset = exports.search_filterset(search)
    if not filterset.is_valid():
        return {"search_error": f"The search is not valid: {exports.filterset_errors(filterset)}"}
    if len(search) > exports.MAX_SEARCH_LENGTH:
        return {"search_error": "This search is too long to export."}
    count = exports.capped_count(filterset.qs)
    return {"search_description": exports.describe_search(filterset), "search_count": count,
            "search_is_big": count > exports.DIRECT_LIMIT, "search_filterset": filterset}


def _initial(search: str, facts: dict) -> dict:
    today = timezone.localdate()
    date_from, date_to = today - dt.timedelta(days=29), today
    filterset = facts.get("search_filterset")
    if filterset is not None:
        start, end = filterset.period_range
        if start:
            date_from = timezone.localtime(start).date()
        if end:
            date_to = timezone.localtime(end - dt.timedelta(microseconds=1)).date()
    return {"scope": "period" if "search_error" in facts else "search", "search": search,
            "date_from": date_from, "date_to": date_to, "columns": exports.DEFAULT_COLUMNS, "excel": True}


def _describe(params: dict) -> str:
    return exports.describe_search(exports.search_filterset(params["search"]))


def _csv_response(content: bytes) -> HttpResponse:
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{exports.download_name()}"'
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@permission_required("ledger.export_ledgerentry", raise_exception=True)
def export_csv(request):
    if request.method == "GET" and "token" in request.GET:
        return _download_signed(request)
    if request.method == "POST":
        form = ExportForm(request.POST)
        search = exports.normalize_search(request.POST.get("search", "")[: exports.MAX_SEARCH_LENGTH + 1])
    else:
        search = exports.normalize_search(request.GET)
        form = None
    facts = _search_facts(search)
    if form is None:
        form = ExportForm(initial=_initial(search, facts))
    elif form.is_valid():
        params = form.export_params()
        description = _describe(params)
        count = exports.capped_count(exports.entries_for(params["search"]))
        if count <= exports.DIRECT_LIMIT:
            if request.htmx:
                token = signing.dumps({"user": request.user.pk, "params": params}, salt=TOKEN_SALT, compress=True)
                response = close_modal_response(showMessage=message_event(
                    f"Downloading {count:,} row{'s' if count != 1 else ''} as CSV."))
                response["HX-Redirect"] = f"{reverse('ledger:export_csv')}?token={token}"
                return response
            content, _rows = exports.export_direct(actor=request.user, params=params, description=description)
            return _csv_response(content)
        export = exports.start_export(actor=request.user, params=params, description=description)
        if request.htmx:
            return render(request, "ledger/export_status.html#export-progress", {"export": export})
        messages.info(request, "The export is being prepared; it will be listed here when it is ready.")
        return redirect("ledger:export_status", export.pk)
    context = {"form": form, "direct_limit": exports.DIRECT_LIMIT, **facts}
    return render(request, htmx_template(request, "ledger/export_csv.html"), context)


def _download_signed(request):
    """The small export behind the pop-up's HX-Redirect."""
    try:
        payload = signing.loads(request.GET["token"][:4000], salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
        if payload.get("user") != request.user.pk:
            raise signing.BadSignature("another user's link")
        params = payload["params"]
        exports.columns_for(params["columns"])
        qs = exports.entries_for(params["search"])
    except (signing.BadSignature, KeyError, TypeError, AttributeError, exports.ExportError):
        return _link_error(request, "This download link is not valid or has expired (links last 5 minutes). "
                                    "Export again.")
    if exports.capped_count(qs) > exports.DIRECT_LIMIT:
        return _link_error(request, "This search now has more than "
                                    f"{exports.DIRECT_LIMIT:,} rows. Export again to prepare it in the background.")
    content, _rows = exports.export_direct(actor=request.user, params=params, description=_describe(params))
    return _csv_response(content)


def _link_error(request, message: str):
    search = exports.normalize_search("")
    facts = _search_facts(search)
    form = ExportForm(initial=_initial(search, facts))
    context = {"form": form, "direct_limit": exports.DIRECT_LIMIT, "link_error": message, **facts}
    return render(request, "ledger/export_csv.html", context, status=400)


def _visible_export(request, pk: int) -> Export:
    export = get_object_or_404(Export.objects.select_related("requested_by"), pk=pk)
    if export.requested_by_id != request.user.pk and not exports.can_see_all_exports(request.user):
        raise PermissionDenied("This export belongs to another user.")
    return export


def _is_active(export: Export) -> bool:
    return export.status in (Export.Status.QUEUED, Export.Status.RUNNING)


@require_GET
@permission_required("ledger.export_ledgerentry", raise_exception=True)
def export_status(request, pk: int):
    export = _visible_export(request, pk)
    context = {"export": export}
    if request.htmx and request.htmx.target == "export-state":
        # the poll: just the state; 286 tells htmx to stop polling once it is finished
        response = render(request, "ledger/export_status.html#export-state", context)
        if not _is_active(export):
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, htmx_template(request, "ledger/export_status.html", "export-progress"), context)


@require_GET
@permission_required("ledger.export_ledgerentry", raise_exception=True)
def export_download(request, pk: int):
    export = _visible_export(request, pk)
    if export.status == Export.Status.EXPIRED:
        raise Http404("This export has expired and its file was deleted.")
    if export.status != Export.Status.DONE or not export.file:
        raise Http404("This export is not ready.")
    try:
        path = exports.export_path(export.file)
        handle = open(path, "rb")  # noqa: SIM115 (FileResponse closes it)
    except (exports.ExportError, OSError):
        raise Http404("The export file is missing.") from None
    return FileResponse(handle, as_attachment=True, filename=exports.download_name(export.created_at),
                        content_type="text/csv; charset=utf-8")


class ExportTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d H:i", orderable=False)
    requested_by = tables.Column(verbose_name="Requested by", accessor="requested_by__username", orderable=False)
    description = tables.Column(verbose_name="Search", orderable=False, attrs={"td": {"class": "export-desc"}})
    status = tables.Column(verbose_name="Status", orderable=False)
    rows_written = tables.Column(verbose_name="Rows", orderable=False,
                                 attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    size_bytes = tables.Column(verbose_name="Size", orderable=False,
                               attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    expires_at = tables.DateTimeColumn(verbose_name="Expires", format="Y-m-d H:i", orderable=False, default="—")
    download = tables.Column(verbose_name="", accessor="pk", orderable=False, empty_values=())

    class Meta:
        model = Export
        fields = ()
        sequence = ("created_at", "requested_by", "description", "status", "rows_written", "size_bytes",
                    "expires_at", "download")
        attrs = {"class": "table export-table", "id": "export-table"}
        empty_text = "No exports yet. Use “Export as CSV” on the credits history."

    def render_status(self, value, record):
        text = record.get_status_display()
        if _is_active(record):
            text = f"{text} ({record.progress_percent}%)"
        badge = format_html('<span class="badge export-{}">{}</span>', record.status, text)
        if record.status == Export.Status.FAILED and record.error:
            return format_html('{} <span class="export-error">{}</span>', badge, record.error)
        return badge

    def render_rows_written(self, value, record):
        if _is_active(record) and record.total_rows:
            return f"{value:,} / {record.total_rows:,}"
        return f"{value:,}"

    def render_size_bytes(self, value, record):
        return filesizeformat(value) if record.status == Export.Status.DONE else "—"

    def render_download(self, value, record):
        if record.status == Export.Status.DONE:
            return format_html('<a class="button" href="{}" download>Download</a>',
                               reverse("ledger:export_download", args=[record.pk]))
        if _is_active(record):
            url = reverse("ledger:export_status", args=[record.pk])
            return format_html('<a href="{}" hx-get="{}" hx-target="#modal" hx-swap="innerHTML" '
                               'aria-haspopup="dialog">Progress</a>', url, url)
        return ""


@require_GET
@permission_required("ledger.export_ledgerentry", raise_exception=True)
def export_list(request):
    qs = exports.visible_exports(request.user)
    try:
        page = keyset_page(qs, field="created_at", descending=True, after=request.GET.get("after"), per_page=50)
    except BadCursor:
        page = keyset_page(qs, field="created_at", descending=True, per_page=50)
    see_all = exports.can_see_all_exports(request.user)
    table = ExportTable(page.rows, exclude=() if see_all else ("requested_by",))
    context = {"table": table, "page": page, "see_all": see_all,
               "any_active": any(_is_active(e) for e in page.rows)}
    partial = request.htmx and request.htmx.target == "exports"
    return render(request, "ledger/export_list.html" + ("#exports" if partial else ""), context)
