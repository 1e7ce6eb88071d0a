from django.urls import path

from . import views

app_name = "refunds"

urlpatterns = [
    path("", views.request_list, name="request_list"),
    path("new/", views.request_create, name="request_create"),
    path("<int:pk>/", views.request_detail, name="request_detail"),
    path("<int:pk>/pending/", views.request_pend, name="request_pend"),
    path("<int:pk>/refund/", views.request_refund, name="request_refund"),
    path("<int:pk>/undo/", views.request_undo, name="request_undo"),
    path("<int:pk>/reject/", views.request_reject, name="request_reject"),
    path("<int:pk>/email/", views.request_email, name="request_email"),
    path("orders/<int:pk>/refund-with-credits/", views.order_refund_with_credits, name="order_refund_with_credits"),
]
