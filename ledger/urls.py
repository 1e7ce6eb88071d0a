from django.urls import path

from . import export_views, views

app_name = "ledger"

urlpatterns = [
    path("history/", views.history, name="history"),
    path("history/summary/", views.history_summary, name="history_summary"),
    path("adjust/", views.credit_adjust, name="credit_adjust"),
    path("customers/<int:customer_id>/adjust/", views.credit_adjust, name="customer_credit_adjust"),
    path("export/", export_views.export_csv, name="export_csv"),
    path("exports/", export_views.export_list, name="export_list"),
    path("exports/<int:pk>/", export_views.export_status, name="export_status"),
    path("exports/<int:pk>/download/", export_views.export_download, name="export_download"),
]
