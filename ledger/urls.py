from django.urls import path

from . import views

app_name = "ledger"

urlpatterns = [
    path("history/", views.history, name="history"),
    path("adjust/", views.credit_adjust, name="credit_adjust"),
    path("customers/<int:customer_id>/adjust/", views.credit_adjust, name="customer_credit_adjust"),
]
