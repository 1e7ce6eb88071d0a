"""Pages of the credits program: settings, expiry policy, allocation rules (list + pop-ups
with a live preview and a back-test) and the storefront events log."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from credits_admin.htmx import close_modal_response, htmx_template, message_event
from credits_admin.models import StoreSettings
from credits_admin.paging import BadCursor, keyset_page
from ledger import clock

from . import allocation, selectors, services
from .events import BUILTIN_TYPES, registered_types
from .exceptions import CurrencyLocked, DuplicateRule, InvalidRule
from .forms import ExpiryPolicyForm, ProgramSettingsForm, RuleForm
from .models import METHOD_HELP, AllocationRule, Method, ProgramSettings, StorefrontEvent
from .policy import refund_policy, rule_policy, staff_policy

EVENTS_PER_PAGE = 50


def _store():
    return StoreSettings.objects.filter(pk=1).first() or StoreSettings()


# --------------------------------------------------------------------------- program settings

@require_http_methods(["GET", "POST"])
@permission_required("rules.view_programsettings", raise_exception=True)
def program_settings(request):
    can_change = request.user.has_perm("rules.change_programsettings")
    if request.method == "POST" and not can_change:
        raise PermissionDenied
    store = _store()
    current = services.effective_store_values(store)
    locked = services.currency_lock_reason(current["currency"])
    form = ProgramSettingsForm(request.POST or None, initial=current, currency_locked=locked)
    if request.method == "POST" and form.is_valid():
        try:
            changed = services.update_program_settings(actor=request.user, **form.cleaned_data)
        except CurrencyLocked as exc:
            form.add_error("currency", str(exc))
        else:
            if changed:
                messages.success(request, "Program settings saved.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("rules:program_settings")
    if not can_change:
        for field in form.fields.values():
            field.disabled = True
    context = {"form": form, "can_change": can_change, "current": current, "currency_locked": locked,
               "rules_count": AllocationRule.objects.count()}
    return render(request, "rules/program_settings.html", context)


# --------------------------------------------------------------------------- expiry policy

@require_http_methods(["GET", "POST"])
@permission_required("rules.view_programsettings", raise_exception=True)
def expiry_policy(request):
    can_change = request.user.has_perm("rules.change_programsettings")
    if request.method == "POST" and not can_change:
        raise PermissionDenied
    program = ProgramSettings.current()
    initial = {name: getattr(program, name) for name in services.EXPIRY_FIELDS}
    form = ExpiryPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = services.update_expiry_policy(actor=request.user, **form.policy_values)
        messages.success(request, "Expiry policy saved. Credits already granted keep their expiry."
                         if changed else "Nothing changed.")
        return redirect("rules:expiry_policy")
    if not can_change:
        for field in form.fields.values():
            field.disabled = True
    now = clock.now()
    shared = rule_policy(settings=program)
    context = {"form": form, "can_change": can_change, "program": program,
               "shared": shared, "staff": staff_policy(program), "refund": refund_policy(program),
               "passed": [label for label, policy in (("rule credits", shared), ("staff credits", staff_policy(program)),
                                                      ("refunds with store credits", refund_policy(program)))
                          if policy.has_passed(now)]}
    return render(request, "rules/expiry_policy.html", context)


# --------------------------------------------------------------------------- rules

def _rule_cards(program: ProgramSettings) -> list[dict]:
    rules = selectors.rules_by_method()
    cards = []
    for method in Method:
        rule = rules.get(method.value)
        cards.append({
            "method": method.value, "label": method.label, "help": METHOD_HELP[method], "rule": rule,
            "sentence": allocation.describe(rule) if rule else "",
            "expiry": rule_policy(settings=program, rule=rule).describe() if rule else "",
        })
    return cards


@require_GET
@permission_required("rules.view_allocationrule", raise_exception=True)
def rule_list(request):
    program = ProgramSettings.current()
    context = {"cards": _rule_cards(program), "program": program, "store": _store()}
    partial = request.htmx and request.htmx.target == "rules"
    return render(request, "rules/rule_list.html" + ("#rules" if partial else ""), context)


def _editor_context(form: RuleForm, *, rule=None, program=None) -> dict:
    program = program or ProgramSettings.current()
    return {"form": form, "rule": rule, "method": form.method, "method_label": Method(form.method).label,
            "method_help": METHOD_HELP[form.method], "program": program,
            "shared_expiry": rule_policy(settings=program).describe(), "preview": None}


@require_http_methods(["GET", "POST"])
@permission_required("rules.add_allocationrule", raise_exception=True)
def rule_add(request):
    method = request.POST.get("method") or request.GET.get("method")
    taken = set(AllocationRule.objects.values_list("method", flat=True))
    if method not in Method.values or method in taken:
        context = {"methods": [{"value": m.value, "label": m.label, "help": METHOD_HELP[m], "taken": m.value in taken}
                               for m in Method],
                   "error": "There is already a rule for this method; edit it instead." if method in taken else ""}
        return render(request, htmx_template(request, "rules/rule_add.html"), context)
    program = ProgramSettings.current()
    form = RuleForm(request.POST or None, method=method, program=program)
    if request.method == "POST" and form.is_valid():
        try:
            services.create_rule(actor=request.user, method=method, **form.rule_values)
        except DuplicateRule:
            form.add_error(None, f"There is already a rule for {Method(method).label.lower()}; edit it instead.")
        except InvalidRule as exc:
            form.add_error(None, str(exc))
        else:
            return _saved(request, f"{Method(method).label} rule added.")
    context = _editor_context(form, program=program)
    context["preview"] = _preview(form) if request.method == "POST" else None
    return render(request, htmx_template(request, "rules/rule_form.html"), context)


@require_http_methods(["GET", "POST"])
@permission_required("rules.change_allocationrule", raise_exception=True)
def rule_edit(request, pk: int):
    rule = get_object_or_404(AllocationRule, pk=pk)
    program = ProgramSettings.current()
    form = RuleForm(request.POST or None, method=rule.method, program=program, rule=rule)
    if request.method == "POST" and form.is_valid():
        try:
            changed = services.update_rule(actor=request.user, rule=rule, **form.rule_values)
        except InvalidRule as exc:
            form.add_error(None, str(exc))
        else:
            return _saved(request, f"{rule.get_method_display()} rule saved; it applies to events from now on."
                          if changed else "Nothing changed.")
    context = _editor_context(form, rule=rule, program=program)
    context["preview"] = _preview(form) if request.method == "POST" else {
        "ok": True, "sentence": allocation.describe(rule), "expiry": rule_policy(settings=program, rule=rule).describe()}
    return render(request, htmx_template(request, "rules/rule_form.html"), context)


@require_http_methods(["GET", "POST"])
@permission_required("rules.delete_allocationrule", raise_exception=True)
def rule_delete(request, pk: int):
    rule = get_object_or_404(AllocationRule, pk=pk)
    if request.method == "POST":
        services.delete_rule(actor=request.user, rule=rule)
        return _saved(request, f"{rule.get_method_display()} rule deleted.")
    context = {"rule": rule, "sentence": allocation.describe(rule)}
    return render(request, htmx_template(request, "rules/rule_delete.html"), context)


def _saved(request, text: str):
    if request.htmx:
        return close_modal_response("rulesChanged", showMessage=message_event(text))
    messages.success(request, text)
    return redirect("rules:rule_list")


def _can_edit_rules(user) -> bool:
    return user.has_perm("rules.add_allocationrule") or user.has_perm("rules.change_allocationrule")


def _form_from_post(request) -> RuleForm:
    if not _can_edit_rules(request.user):
        raise PermissionDenied
    rule = None
    if request.POST.get("rule"):
        rule = AllocationRule.objects.filter(pk=request.POST["rule"]).first() if request.POST["rule"].isdigit() else None
        if rule is None:
            raise Http404("No such rule.")
    method = rule.method if rule else request.POST.get("method")
    if method not in Method.values:
        raise Http404("Unknown method.")
    return RuleForm(request.POST, method=method, program=ProgramSettings.current(), rule=rule)


def _preview(form: RuleForm) -> dict:
    if not form.is_valid():
        return {"ok": False}
    rule = form.build_rule()
    return {"ok": True, "sentence": allocation.describe(rule),
            "expiry": rule_policy(settings=ProgramSettings.current(), rule=rule).describe()}


@require_POST
def rule_preview(request):
    """The plain-words preview of the rule as edited (the pop-up posts here on change)."""
    form = _form_from_post(request)
    return render(request, "rules/rule_form.html#rule-preview",
                  {"preview": _preview(form), "form": form, "program": ProgramSettings.current()})


@require_POST
def rule_backtest(request):
    """What the rule as edited would have granted over the last 90 days. Writes nothing."""
    form = _form_from_post(request)
    result = selectors.backtest(form.build_rule()) if form.is_valid() else None
    return render(request, "rules/rule_form.html#rule-backtest", {"backtest": result, "form": form, "ran": True})


# --------------------------------------------------------------------------- events

@require_GET
@permission_required("rules.view_storefrontevent", raise_exception=True)
def event_list(request):
    text = request.GET.get("q", "")[:100]
    event_type = request.GET.get("type", "")[:64]
    status = request.GET.get("status", "")
    if status not in StorefrontEvent.Status.values:
        status = ""
    qs = selectors.recent_events(text=text, event_type=event_type, status=status)
    cursor_error = None
    try:
        page = keyset_page(qs, field="received_at", descending=True, after=request.GET.get("after"),
                           before=request.GET.get("before"), per_page=EVENTS_PER_PAGE)
    except BadCursor as exc:
        cursor_error = str(exc)
        page = keyset_page(qs, field="received_at", descending=True, per_page=EVENTS_PER_PAGE)
    query = request.GET.copy()
    for key in ("after", "before"):
        query.pop(key, None)
    context = {"page": page, "q": text, "type": event_type, "status": status, "cursor_error": cursor_error,
               "types": [*BUILTIN_TYPES, *registered_types()], "statuses": StorefrontEvent.Status.choices,
               "base_query": query.urlencode()}
    partial = request.htmx and request.htmx.target == "events"
    return render(request, "rules/event_list.html" + ("#events" if partial else ""), context)


@require_GET
@permission_required("rules.view_storefrontevent", raise_exception=True)
def event_detail(request, pk: int):
    event = get_object_or_404(StorefrontEvent.objects.select_related("customer", "order"), pk=pk)
    context = {"event": event, "entries": selectors.event_entries(event),
               "reclaims": list(selectors.event_reclaims(event)),
               "payload": json.dumps(event.payload, indent=2, ensure_ascii=False),
               "response": json.dumps(event.response, indent=2, ensure_ascii=False)}
    return render(request, htmx_template(request, "rules/event_detail.html"), context)
