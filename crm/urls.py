from django.urls import path

from . import views

app_name = "crm"

urlpatterns = [
    path("", views.customer_list, name="customer_list"),
    path("<int:pk>/", views.customer_detail, name="customer_detail"),
    path("<int:pk>/card/", views.customer_card_reveal, name="customer_card_reveal"),
    path("<int:pk>/memos/", views.memo_add, name="memo_add"),
]
