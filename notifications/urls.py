from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("", views.email_settings, name="email_settings"),
    path("templates/<str:kind>/", views.template_edit, name="template_edit"),
    path("templates/<str:kind>/preview/", views.template_preview, name="template_preview"),
    path("templates/<str:kind>/reset/", views.template_reset, name="template_reset"),
    path("log/", views.email_log, name="email_log"),
    path("log/<int:pk>/", views.message_detail, name="message_detail"),
    path("log/<int:pk>/resend/", views.message_resend, name="message_resend"),
]
