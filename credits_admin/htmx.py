"""Small helpers for the house pop-up pattern (STYLE.md 4), shared by every app's views.

One URL per pop-up: a normal request renders the whole page, an htmx request renders only
the `modal-body` partial into base.html's `#modal`; success answers 204 with HX-Trigger
events, one of which is `closeModal`:

    @require_http_methods(["GET", "POST"])
    def thing_edit(request):
        form = ThingForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            ...
            if request.htmx:
                return close_modal_response("thingChanged", showMessage={"text": "Saved."})
            messages.success(request, "Saved.")
            return redirect(...)
        return render(request, htmx_template(request, "app/thing_edit.html"), {"form": form})
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django_htmx.http import trigger_client_event

CLOSE_MODAL = "closeModal"
SHOW_MESSAGE = "showMessage"


def htmx_template(request: HttpRequest, name: str, partial: str = "modal-body") -> str:
    """`name` for a normal request, `name#partial` (django-template-partials) for htmx."""
    return f"{name}#{partial}" if getattr(request, "htmx", False) else name


def close_modal_response(*events: str, **event_data: dict[str, Any] | None) -> HttpResponse:
    """A 204 whose HX-Trigger closes the pop-up and announces `events` (no payload) and
    `event_data` (name -> payload dict), e.g.
    `close_modal_response("creditsChanged", showMessage={"text": "Saved.", "level": "success"})`.
    htmx 2 swaps nothing on a 204 but still fires the HX-Trigger events on <body>."""
    response = trigger_client_event(HttpResponse(status=204), CLOSE_MODAL)
    for name in events:
        trigger_client_event(response, name)
    for name, params in event_data.items():
        trigger_client_event(response, name, params or {})
    return response


def message_event(text: str, level: str = "success") -> dict[str, str]:
    """Payload of the `showMessage` event, which static/js/modal.js shows as a toast."""
    return {"text": str(text), "level": level}
