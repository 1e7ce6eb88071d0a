"""The Emails pages: settings (switches, reminder days, staff addresses), the template
editor with its live preview, and the Email log with Resend.

Who may do what (permissions, never group names): Store admin edits everything
(`change_emailtemplate`) and resends (`resend_outboxmessage`); Ops sees the settings
read-only and the log (`view_*`); the support roles have no access (they have none of
these permissions)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

from credits_admin.db import retry_on_lock
from credits_admin.htmx import close_modal_response, message_event

from . import selectors, services
from .exceptions import NotResendable
from .filters import EmailLogFilter
from .forms import EmailSettingsForm, TemplateForm
from .kinds import EMAIL_TYPES, email_type
from .models import OutboxMessage
from .tables import EmailLogTable

PER_PAGE = 50


def _kind_or_404(kind: str) -> str:
    if kind not in EMAIL_TYPES:
        raise Http404("No such email type.")
    return kind


@require_http_methods(["GET", "POST"])
@permission_required("notifications.view_emailtemplate", raise_exception=True)
def email_settings(request):
    can_edit = request.user.has_perm("notifications.change_emailtemplate")
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied
        form = EmailSettingsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            retry_on_lock(lambda: services.save_email_settings(
                enabled=form.enabled(), expiry_reminder_days=data["expiry_reminder_days"],
                staff_recipients=data["staff_recipients"], actor=request.user))
            messages.success(request, "Email settings saved.")
            return redirect("notifications:email_settings")
    else:
        form = EmailSettingsForm(initial=EmailSettingsForm.initial_from_db())
    if not can_edit:
        for field in form.fields.values():
            field.disabled = True
    return render(request, "notifications/email_settings.html", {"form": form, "can_edit": can_edit})


def _editor_context(kind: str, form: TemplateForm) -> dict:
    t = email_type(kind)
    return {"kind": kind, "email_type": t, "form": form, "placeholders": [
        (name, help_text, t.sample.get(name, "")) for name, help_text in t.placeholder_help()]}


@require_http_methods(["GET", "POST"])
@permission_required("notifications.change_emailtemplate", raise_exception=True)
def template_edit(request, kind: str):
    kind = _kind_or_404(kind)
    if request.method == "POST":
        form = TemplateForm(request.POST, kind=kind)
        if form.is_valid():
            data = form.cleaned_data
            retry_on_lock(lambda: services.save_template(kind=kind, subject=data["subject"],
                                                         body_text=data["body_text"], body_html=data["body_html"],
                                                         actor=request.user))
            messages.success(request, f"Template “{email_type(kind).label}” saved.")
            return redirect("notifications:email_settings")
    else:
        template = services.load_template(kind)
        form = TemplateForm(initial={"subject": template.subject, "body_text": template.body_text,
                                     "body_html": template.body_html}, kind=kind)
        form.rendered = services.render_email(template, email_type(kind).sample)
    return render(request, "notifications/template_edit.html", _editor_context(kind, form))


@require_POST
@permission_required("notifications.change_emailtemplate", raise_exception=True)
def template_preview(request, kind: str):
    """The live preview (hx-post on input): the rendered sample, and each field's errors
    swapped out-of-band next to the field. Writes nothing."""
    kind = _kind_or_404(kind)
    form = TemplateForm(request.POST, kind=kind)
    form.is_valid()
    return render(request, "notifications/template_edit.html#preview-update", _editor_context(kind, form))


@require_POST
@permission_required("notifications.change_emailtemplate", raise_exception=True)
def template_reset(request, kind: str):
    kind = _kind_or_404(kind)
    retry_on_lock(lambda: services.reset_template(kind=kind, actor=request.user))
    messages.success(request, f"Template “{email_type(kind).label}” reset to the default.")
    url = reverse("notifications:template_edit", args=[kind])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_GET
@permission_required("notifications.view_outboxmessage", raise_exception=True)
def email_log(request):
    filterset = EmailLogFilter(request.GET, queryset=selectors.email_log())
    qs = filterset.qs if filterset.is_valid() else OutboxMessage.objects.none()
    table = EmailLogTable(qs, request=request)
    RequestConfig(request, paginate={"per_page": PER_PAGE, "paginator_class": LazyPaginator}).configure(table)
    partial = request.htmx and request.htmx.target == "results"
    return render(request, "notifications/email_log.html" + ("#results" if partial else ""),
                  {"filter": filterset, "table": table})


@require_GET
@permission_required("notifications.view_outboxmessage", raise_exception=True)
def message_detail(request, pk: int):
    message = get_object_or_404(OutboxMessage.objects.select_related("customer", "resend_of"), pk=pk)
    template = "notifications/message_detail.html" + ("#modal-body" if request.htmx else "")
    return render(request, template, {"message": message})


@require_POST
@permission_required("notifications.resend_outboxmessage", raise_exception=True)
def message_resend(request, pk: int):
    message = get_object_or_404(OutboxMessage, pk=pk)
    try:
        copy = retry_on_lock(lambda: services.resend(message=message, actor=request.user))
    except NotResendable as exc:
        if request.htmx:
            return trigger_client_event(HttpResponse(status=204), "showMessage", message_event(str(exc), "error"))
        messages.error(request, str(exc))
        return redirect("notifications:email_log")
    text = f"Email queued again to {copy.to}."
    if request.htmx:
        return close_modal_response("emailsChanged", showMessage=message_event(text))
    messages.success(request, text)
    return redirect("notifications:email_log")
