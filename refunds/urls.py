app_name = "refunds"

urlpatterns = []
