from django.urls import path

from . import views

app_name = "rules"

urlpatterns = [
    path("", views.program_settings, name="program_settings"),
    path("expiry/", views.expiry_policy, name="expiry_policy"),
    path("rules/", views.rule_list, name="rule_list"),
    path("rules/add/", views.rule_add, name="rule_add"),
    path("rules/<int:pk>/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("rules/preview/", views.rule_preview, name="rule_preview"),
    path("rules/backtest/", views.rule_backtest, name="rule_backtest"),
    path("events/", views.event_list, name="event_list"),
    path("events/<int:pk>/", views.event_detail, name="event_detail"),
]
