"""The storefront JSON API (django-ninja) under /api/v1/, OpenAPI docs at /api/v1/docs.
Every endpoint authenticates with an API key (`Authorization: Bearer sca_...` or
`X-Api-Key: sca_...`); anonymous calls get a 401 JSON answer, never a login redirect."""

import functools
import json

from django.contrib.auth.decorators import login_not_required
from django.db import DataError
from django.http import JsonResponse
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError
from ninja.security import APIKeyHeader, HttpBearer

from . import apikeys


class BearerKey(HttpBearer):
    def authenticate(self, request, token):
        return apikeys.authenticate(token)


class HeaderKey(APIKeyHeader):
    param_name = "X-Api-Key"

    def authenticate(self, request, key):
        return apikeys.authenticate(key)


NUL_MESSAGE = "Text may not contain NUL (\\x00) characters."


api = NinjaAPI(
    title="Store Credits Admin — storefront API",
    version="1",
    description="Events from the storefront (customers, orders), balances, redemptions and cash-refund requests.",
    auth=[BearerKey(), HeaderKey()],
    urls_namespace="api",
    docs_url="/docs",
)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc):
    return api.create_response(request, {"detail": "A valid API key is required."}, status=401)


@api.exception_handler(ValidationError)
def invalid(request, exc):
    return api.create_response(request, {"detail": "Invalid request.", "errors": exc.errors}, status=422)


@api.exception_handler(DataError)
def unstorable(request, exc):
    """A value the database cannot hold (a NUL character in any text, a number out of its
    range) that got past validation: the caller's mistake, answered as one, never a 500."""
    first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
    message = NUL_MESSAGE if "NUL" in first_line or "\\u0000" in first_line else first_line
    return api.create_response(request, {"detail": "Invalid request: a value cannot be stored.",
                                         "errors": [{"msg": message}]}, status=422)


api.add_router("", "rules.api.router")
api.add_router("", "refunds.api.router")
api.add_router("", "notifications.api.router")
api.add_router("", "credits_admin.storefront_api.router")


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _refusing_nul(view):
    """A NUL character in the path, a query parameter or any string of a JSON body answers
    422 before the view runs, on every database: PostgreSQL text cannot hold one (the
    DataError handler above is the backstop), and SQLite would store or look it up as if
    it were text, answering something else (a 404 for a member ID that cannot exist)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        found = "\x00" in request.path or any(_has_nul(k) or _has_nul(v) for k, v in request.GET.lists())
        if not found and b"\\u0000" in request.body:  # only a body that spells one out can hold one
            try:
                found = _has_nul(json.loads(request.body))
            except ValueError:
                found = False  # not JSON: the view answers that
        if found:
            return JsonResponse({"detail": "Invalid request.", "errors": [{"msg": NUL_MESSAGE}]}, status=422)
        return view(request, *args, **kwargs)

    return wrapper


def _exempt(patterns):
    """LoginRequiredMiddleware must not redirect API calls: API keys authenticate them. And
    no API call gets past a NUL character."""
    for p in patterns:
        if isinstance(p, URLResolver):
            _exempt(p.url_patterns)
        elif isinstance(p, URLPattern):
            p.callback = login_not_required(_refusing_nul(p.callback))
    return patterns


def api_urls():
    patterns, app_name, namespace = api.urls
    return _exempt(patterns), app_name, namespace
