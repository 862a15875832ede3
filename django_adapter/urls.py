"""URLconf of the REST transport: ``path("bundles/", include("django_adapter.urls"))``.

Endpoints and protocol: docs/REST.md.
"""

from django.urls import path, re_path

from django_adapter.rest import views

app_name = "bundlekit"

urlpatterns = [
    path("", views.index, name="index"),
    path("uploads/<str:upload_id>", views.upload, name="upload"),
    path("outbox/", views.outbox_list, name="outbox"),
    path("outbox/<str:name>", views.outbox_file, name="outbox-file"),
    path("receipts/", views.receipts_list, name="receipts"),
    path("receipts/<str:name>", views.receipt_file, name="receipt-file"),
    # Anything else under the prefix (a "/" smuggled in as %2F, a typo) gets a JSON 404.
    re_path(r"^.*$", views.not_found),
]
