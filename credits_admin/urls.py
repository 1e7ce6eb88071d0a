from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import apikey_views, member_views, views
from .api import api_urls

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", views.password_change, name="password_change"),
    path("healthz", views.healthz, name="healthz"),
    path("credits/", include("ledger.urls")),
    path("customers/", include("crm.urls")),
    path("program/", include("rules.urls")),
    path("refunds/", include("refunds.urls")),
    path("emails/", include("notifications.urls")),
    path("api/v1/", api_urls()),
    path("settings/api-keys/", apikey_views.apikey_list, name="apikey_list"),
    path("settings/api-keys/new/", apikey_views.apikey_create, name="apikey_create"),
    path("settings/api-keys/<int:pk>/revoke/", apikey_views.apikey_revoke, name="apikey_revoke"),
    path("member/<str:token>/", member_views.member_panel, name="member_panel"),
]
