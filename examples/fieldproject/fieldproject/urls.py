"""The server's URLs: the REST hop (docs/REST.md) under /bundles/, and the data
manager's pages (docs/WORKFLOW.md, "The data manager's pages") under /sync/.

Only the server role serves them (ROOT_URLCONF is set for it alone); the laptops
push to it with ``bundle push http://SERVER/bundles/ OUTBOX``.
"""

from django.urls import include, path

urlpatterns = [
    path("bundles/", include("django_adapter.urls")),
    path("sync/", include("django_adapter.dashboard.urls")),
]
