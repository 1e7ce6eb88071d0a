"""The storefront API keys settings page: list, create (the whole key is shown once) and
revoke. Only staff with `credits_admin.manage_apikey` (Store admin) may open it; the
service functions in `apikeys` write the audit events."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import F
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import trigger_client_event

from . import apikeys
from .htmx import close_modal_response, htmx_template, message_event
from .models import ApiKey

EVENT = "apiKeysChanged"


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=100, strip=True,
        help_text="Where the key is used, e.g. “Storefront production”. Shown in the list and the audit log.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Enter a name for the key.")
        if any(not ch.isprintable() for ch in name):
            raise forms.ValidationError("Use letters, digits, spaces and punctuation only.")
        if ApiKey.objects.filter(name__iexact=name, revoked_at__isnull=True).exists():
            raise forms.ValidationError("An active key already has this name; choose another.")
        return name


def _keys():
    """Active keys first, newest first; then revoked ones, most recently revoked first."""
    return ApiKey.objects.select_related("created_by").order_by(
        F("revoked_at").desc(nulls_first=True), "-created_at", "-id")


@require_GET
@permission_required("credits_admin.manage_apikey", raise_exception=True)
def apikey_list(request):
    template = "credits_admin/apikey_list.html"
    if request.htmx and request.htmx.target == "apikeys":
        template += "#apikeys"
    return render(request, template, {"keys": _keys()})


@never_cache
@require_http_methods(["GET", "POST"])
@permission_required("credits_admin.manage_apikey", raise_exception=True)
def apikey_create(request):
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key, raw_key = apikeys.create_api_key(name=form.cleaned_data["name"], actor=request.user)
        # The whole key exists only in this response: it is shown once, never stored.
        response = render(request, htmx_template(request, "credits_admin/apikey_create.html"),
                          {"form": form, "created": key, "raw_key": raw_key})
        return trigger_client_event(response, EVENT, {"key": key.pk})
    return render(request, htmx_template(request, "credits_admin/apikey_create.html"), {"form": form})


@require_http_methods(["GET", "POST"])
@permission_required("credits_admin.manage_apikey", raise_exception=True)
def apikey_revoke(request, pk: int):
    key = get_object_or_404(ApiKey.objects.select_related("created_by"), pk=pk)
    if request.method == "POST":
        was_active = key.is_active
        apikeys.revoke_api_key(key=key, actor=request.user)
        text = f"API key “{key.name}” revoked." if was_active else f"API key “{key.name}” was already revoked."
        if request.htmx:
            return close_modal_response(EVENT, showMessage=message_event(text))
        messages.success(request, text)
        return redirect("apikey_list")
    return render(request, htmx_template(request, "credits_admin/apikey_revoke.html"), {"key": key})
