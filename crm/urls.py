from django.urls import path

from . import orders_views, views

app_name = "crm"

urlpatterns = [
    path("", views.customer_list, name="customer_list"),
    path("<int:pk>/", views.customer_detail, name="customer_detail"),
    path("<int:pk>/card/", views.customer_card_reveal, name="customer_card_reveal"),
    path("<int:pk>/memos/", views.memo_add, name="memo_add"),
    path("orders/", orders_views.order_list, name="order_list"),
    path("orders/<int:pk>/", orders_views.order_detail, name="order_detail"),
]
