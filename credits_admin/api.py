"""The storefront JSON API (django-ninja) under /api/v1/, OpenAPI docs at /api/v1/docs.
Every endpoint authenticates with an API key (`Authorization: Bearer sca_...` or
`X-Api-Key: sca_...`); anonymous calls get a 401 JSON answer, never a login redirect."""

from django.contrib.auth.decorators import login_not_required
from django.db import DataError
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError
from ninja.parser import Parser
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


def _refuse_nul(value, loc: tuple) -> None:
    """A 422 for any string (key or value) with a NUL character: PostgreSQL text cannot
    hold one, so it would otherwise fail deep inside a query."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError([{"loc": list(loc), "msg": NUL_MESSAGE, "type": "value_error"}])
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, loc)
            _refuse_nul(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, (*loc, index))


class StrictParser(Parser):
    """Query strings refuse NUL characters with a 422 naming the parameter. (A JSON body's
    NUL reaches the database and comes back as the DataError answered below: raising here
    would turn into ninja's bare "Cannot parse request body".)"""

    def parse_querydict(self, data, list_fields, request):
        result = super().parse_querydict(data, list_fields, request)
        _refuse_nul(result, ("query",))
        return result


api = NinjaAPI(
    title="Store Credits Admin — storefront API",
    version="1",
    description="Events from the storefront (customers, orders), balances, redemptions and cash-refund requests.",
    auth=[BearerKey(), HeaderKey()],
    urls_namespace="api",
    docs_url="/docs",
    parser=StrictParser(),
)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc):
    return api.create_response(request, {"detail": "A valid API key is required."}, status=401)


@api.exception_handler(ValidationError)
def invalid(request, exc):
    return api.create_response(request, {"detail": "Invalid request.", "errors": exc.errors}, status=422)


@api.exception_handler(DataError)
def unstorable(request, exc):
    """A value the database cannot hold (a NUL in a path, a number out of its range) that
    got past validation: the caller's mistake, answered as one, never a 500."""
    first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
    message = NUL_MESSAGE if "NUL" in first_line or "\\u0000" in first_line else first_line
    return api.create_response(request, {"detail": "Invalid request: a value cannot be stored.",
                                         "errors": [{"msg": message}]}, status=422)


api.add_router("", "rules.api.router")
api.add_router("", "refunds.api.router")
api.add_router("", "notifications.api.router")
api.add_router("", "credits_admin.storefront_api.router")


def _exempt(patterns):
    """LoginRequiredMiddleware must not redirect API calls: API keys authenticate them."""
    for p in patterns:
        if isinstance(p, URLResolver):
            _exempt(p.url_patterns)
        elif isinstance(p, URLPattern):
            p.callback = login_not_required(p.callback)
    return patterns


def api_urls():
    patterns, app_name, namespace = api.urls
    return _exempt(patterns), app_name, namespace
